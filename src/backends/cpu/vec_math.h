#pragma once
// Branch-free float math that GCC/Clang auto-vectorise, and KILN_CPU_MULTIVERSION: the function is compiled for
// AVX-512 and for the baseline ISA, and the loader picks one at run time (ifunc on the CPU's features).
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define KILN_CPU_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define KILN_CPU_MULTIVERSION
#endif

namespace kiln::backends::cpu {

/// Sum of n floats with 16 independent accumulators (vectorises; deterministic for a given n).
inline float sum16(const float* x, int64_t n) {
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] += x[i + l];
    float s = 0.f;
    for (; i < n; ++i) s += x[i];
    for (float a : acc) s += a;
    return s;
}

/// exp(x) to ~2 ulp over [-87, 88] (Cody-Waite range reduction + degree-6 polynomial); 0 below.
inline float exp_approx(float x) {
    x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
    float n = __builtin_floorf(x * 1.44269504089f + 0.5f);
    float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.f + r * (1.f + r * (0.5f + r * (0.16666666f + r * (0.041666668f + r * (0.008333337f +
                                                                                       r * 0.0013888889f)))));
    int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    return p * scale;
}

/// erf(x), Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
inline float erf_approx(float x) {
    float ax = x < 0.f ? -x : x;
    float t = 1.f / (1.f + 0.3275911f * ax);
    float y = 1.f - (((((1.061405429f * t - 1.453152027f) * t) + 1.421413741f) * t - 0.284496736f) * t +
                     0.254829592f) * t * exp_approx(-ax * ax);
    return x < 0.f ? -y : y;
}

inline float tanh_approx(float x) {
    float e = exp_approx(-2.f * (x < 0.f ? -x : x));
    float y = (1.f - e) / (1.f + e);
    return x < 0.f ? -y : y;
}

}  // namespace kiln::backends::cpu

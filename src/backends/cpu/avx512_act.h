#pragma once
// AVX-512 pieces shared by kiln's nChw16c convolution kernels (conv_depthwise.cc, conv_expand_depthwise.cc): the
// activations they fuse (none, Relu, Clip, Silu with a vscalefps exp), the mapping from kiln's Activation, and
// 64-byte aligned weight buffers.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "src/backends/activation.h"

namespace kiln::backends::cpu {

enum class DwAct { kNone, kRelu, kClip, kSilu };

#define KILN_AVX512 __attribute__((target("avx512f")))

// exp(x) for x in [-87, 88]: 2^n * p(r), r = x - n ln2, degree-6 Taylor polynomial (~2 ulp, as exp_approx).
KILN_AVX512 inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.f)), _mm512_set1_ps(88.f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(0.0013888889f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.008333337f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.041666668f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.16666666f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
    return _mm512_scalef_ps(p, n);
}

template <DwAct A>
KILN_AVX512 inline __m512 activate(__m512 v, __m512 lo, __m512 hi) {
    if constexpr (A == DwAct::kRelu) return _mm512_max_ps(v, _mm512_setzero_ps());
    if constexpr (A == DwAct::kClip) return _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    if constexpr (A == DwAct::kSilu) {
        // v / d with d = 1 + exp(-v): 1/d from rcp14 and one Newton step (a division costs more than the conv)
        const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), v)));
        __m512 r = _mm512_rcp14_ps(d);
        r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));
        return _mm512_mul_ps(v, r);
    }
    return v;
}

// 1 / (1 + exp(-v)): the reciprocal from rcp14 and one Newton step, as in Silu.
KILN_AVX512 inline __m512 sigmoid512(__m512 v) {
    const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), v)));
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));
}

// The activations the AVX-512 kernels take; false for the others. Clip only with min <= 0 <= max: the padding
// channels compute act(0), which must stay 0.
inline bool act_of(const Activation& act, DwAct* out) {
    switch (act.kind) {
        case ActivationKind::kNone: *out = DwAct::kNone; return true;
        case ActivationKind::kRelu: *out = DwAct::kRelu; return true;
        case ActivationKind::kSilu: *out = DwAct::kSilu; return true;
        case ActivationKind::kClip:  // the padding channels compute clip(0): it must be 0
            *out = DwAct::kClip;
            return act.alpha <= 0.f && act.beta >= 0.f;
        default: return false;
    }
}

// n zeroed floats, 64-byte aligned.
inline std::unique_ptr<float[], void (*)(void*)> aligned_floats(int64_t n) {
    const size_t bytes = (static_cast<size_t>(n) * sizeof(float) + 63) / 64 * 64;
    std::unique_ptr<float[], void (*)(void*)> p(static_cast<float*>(std::aligned_alloc(64, bytes)), std::free);
    std::memset(p.get(), 0, bytes);
    return p;
}

}  // namespace kiln::backends::cpu

// bf16 detection and conversion for the CPU backend. The vector path uses vcvtne2ps2bf16 (AVX512-BF16), which
// rounds to nearest even like kiln::float_to_bf16; the scalar tail and the fallback use float_to_bf16 itself.
#include "src/backends/cpu/bf16.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstdlib>

#include "kiln/tensor.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/common/check.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KILN_HAVE_X86 1
#endif

namespace kiln::backends::cpu {

namespace {

bool hardware_bf16() {
#ifdef KILN_HAVE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
#else
    return false;
#endif
}

#ifdef KILN_HAVE_X86
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) int64_t convert_avx512(const float* src,
                                                                                      uint16_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 lo = _mm512_loadu_ps(src + i);
        __m512 hi = _mm512_loadu_ps(src + i + 16);
        __m512bh packed = _mm512_cvtne2ps_pbh(hi, lo);  // elements 0..15 from lo, 16..31 from hi
        _mm512_storeu_si512(reinterpret_cast<void*>(dst + i), reinterpret_cast<__m512i>(packed));
    }
    return i;
}
#endif

void convert_range(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
#ifdef KILN_HAVE_X86
    static const bool kVector = hardware_bf16();
    if (kVector) i = convert_avx512(src, dst, n);
#endif
    for (; i < n; ++i) dst[i] = float_to_bf16(src[i]);
}

}  // namespace

bool cpu_has_bf16() {
    static const bool kHas = [] {
        const unsigned need = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
        const unsigned isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
        return hardware_bf16() && (isa & need) == need;
    }();
    return kHas;
}

void check_cpu_precision(const std::string& precision) {
    if (precision == "fp32") return;
    KILN_CHECK(precision == "bf16", kUnsupported, "precision ", precision,
               " is not supported by the 'cpu' backend: use fp32, or bf16 on a CPU with AVX512-BF16");
    KILN_CHECK(cpu_has_bf16(), kUnsupported,
               "precision bf16 needs a CPU with AVX512-BF16 (bf16 matmuls and convolutions with fp32 accumulation); ",
               "this processor lacks it (or DNNL_MAX_CPU_ISA excludes it): build the plan in fp32 (drop --bf16)");
}

bool bf16_activations() {
    const char* e = std::getenv("KILN_CPU_BF16_ACTIVATIONS");
    return !(e && std::string(e) == "0");
}

void f32_to_bf16(const float* src, uint16_t* dst, int64_t n, int threads) {
    constexpr int64_t kGrain = int64_t{1} << 16;  // below this a second thread costs more than it saves
    if (n < 2 * kGrain || threads <= 1) {
        convert_range(src, dst, n);
        return;
    }
    parallel_for(
        (n + 31) / 32, threads,
        [&](int64_t b, int64_t e) { convert_range(src + b * 32, dst + b * 32, std::min(n, e * 32) - b * 32); },
        kGrain / 32);
}

}  // namespace kiln::backends::cpu

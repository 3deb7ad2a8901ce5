#pragma once
// bf16 support of the CPU backend (--bf16): whether this processor (and oneDNN) can run bf16 matmuls and
// convolutions, and a fast float32 -> bf16 conversion of activations (round to nearest even, like vcvtne2ps2bf16).
#include <cstdint>
#include <string>

namespace kiln::backends::cpu {

/// True when the processor has AVX512-BF16 and oneDNN may use it (DNNL_MAX_CPU_ISA can lower that, e.g. to
/// AVX512_CORE_VNNI, which is how the tests exercise the "no bf16" path on a machine that has it).
bool cpu_has_bf16();

/// Throws Error(kUnsupported) unless the cpu backend can run plans of `precision` on this machine.
void check_cpu_precision(const std::string& precision);

/// Whether bf16 layers may exchange bf16 activations (nChw16c_bf16) instead of fp32 ones: on unless
/// KILN_CPU_BF16_ACTIVATIONS=0 (an experiment switch, read when a plan is built).
bool bf16_activations();

/// dst[i] = bf16(src[i]) for i < n, on up to `threads` threads (large arrays only).
void f32_to_bf16(const float* src, uint16_t* dst, int64_t n, int threads);

}  // namespace kiln::backends::cpu

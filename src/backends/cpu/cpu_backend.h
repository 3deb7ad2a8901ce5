#pragma once
// The optimised CPU backend ("cpu"): oneDNN for convolutions, matmuls and pooling, kiln's own vectorised kernels
// for attention, normalisations and elementwise ops. float32 only; everything else falls back to the reference
// backend at placement time. Each kernel family declares supports_<family> and make_cpu_<family> here.
#include <memory>

#include "src/backends/activation.h"
#include "src/backends/backend.h"
#include "src/common/check.h"

namespace kiln::backends {

std::unique_ptr<Backend> make_cpu_backend();

namespace cpu {

// layout_caps_<family>: which ports of the node may hold nChw16c activations (see src/common/layout.h); families
// without one take plain values only.
bool supports_conv(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_conv(const KernelNode& node);
LayoutCaps layout_caps_conv(const KernelNode& node);
/// A 1x1 convolution of a 1x1 image (squeeze-excite): a matrix-vector product per image (conv_matvec.cc).
bool conv_is_matvec(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_conv_matvec(const KernelNode& node);
/// A 3x3 / 5x5 depthwise convolution on nChw16c values, kiln's AVX-512 kernel (conv_depthwise.cc);
/// KILN_CPU_DEPTHWISE=0 leaves them to oneDNN.
bool conv_is_depthwise_blocked(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_conv_depthwise(const KernelNode& node);
/// A 1x1 convolution (stride 1, no padding) on a small nChw16c image: head convolutions, 7x7 projections
/// (conv1x1_small.cc); KILN_CPU_CONV1X1_SMALL=0 leaves them to oneDNN.
bool conv_is_1x1_small(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_conv_1x1_small(const KernelNode& node);
/// FusedExpandDepthwise: 1x1 expand + depthwise in one AVX-512 pass on nChw16c values (conv_expand_depthwise.cc).
bool supports_expand_depthwise(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_expand_depthwise(const KernelNode& node);
LayoutCaps layout_caps_expand_depthwise(const KernelNode& node);
/// The same node as ordinary convolution kernels (plain layouts, bf16, no AVX-512; conv_expand_depthwise_fallback.cc).
std::unique_ptr<Kernel> make_expand_depthwise_fallback(const KernelNode& node);
/// x = x * sigmoid(x) over n floats, AVX-512, on `threads` OpenMP threads (conv_depthwise.cc).
void silu_inplace(float* x, int64_t n, int threads);
bool supports_matmul(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_matmul(const KernelNode& node);
/// A matmul with a constant 2-D B and at most 4 static rows of A (a classifier at batch 1): kiln's AVX-512 gemv
/// over B packed in 16-column panels (matmul_gemv.cc); KILN_CPU_GEMV=0 leaves them to oneDNN.
bool matmul_is_gemv(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_matmul_gemv(const KernelNode& node);
LayoutCaps layout_caps_matmul(const KernelNode& node);
bool supports_gemm(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_gemm(const KernelNode& node);
bool supports_pool(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_pool(const KernelNode& node);
LayoutCaps layout_caps_pool(const KernelNode& node);

bool supports_attention(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_attention(const KernelNode& node);
bool supports_norm(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_norm(const KernelNode& node);
bool supports_softmax(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_softmax(const KernelNode& node);
bool supports_binary(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_binary(const KernelNode& node);
LayoutCaps layout_caps_binary(const KernelNode& node);
bool supports_transpose(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_transpose(const KernelNode& node);
bool supports_unary(const KernelNode& node);
std::unique_ptr<Kernel> make_cpu_unary(const KernelNode& node);
LayoutCaps layout_caps_unary(const KernelNode& node);

}  // namespace cpu
}  // namespace kiln::backends

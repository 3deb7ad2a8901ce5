// Data movement and pooling kernels: Gather along one axis, Max/AveragePool 2-D (NCHW; the kernel is conv_layout.cu's
// pool2d_chain), GlobalAveragePool.
#include <cfloat>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

// I: uint32_t when x and y have fewer than 2^31 elements (32-bit divisions; see fused_elementwise.cu)
template <typename T, typename I>
__global__ void gather_axis(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ y,
                            int64_t outer, int64_t axis_len, int64_t n_idx, int64_t inner) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    const int64_t n = outer * n_idx * inner;
    const I in_n = static_cast<I>(inner), idx_n = static_cast<I>(n_idx);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const I ii = static_cast<I>(i);
        const I in = ii % in_n, t = ii / in_n;
        const I j = t % idx_n, o = t / idx_n;
        int64_t g = idx[j];
        if (g < 0) g += axis_len;
        g = g < 0 ? 0 : (g >= axis_len ? axis_len - 1 : g);  // out-of-range indices are clamped, never a fault
        y[i] = x[(static_cast<int64_t>(o) * axis_len + g) * inner + in];
    }
}

// one warp per (n, c) plane
__global__ void global_avg_pool_f32_nchw(const float* __restrict__ x, float* __restrict__ y, int64_t nc, int64_t hw) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    int64_t plane = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (plane >= nc) return;
    const float* xp = x + plane * hw;
    float s = 0.f;
    for (int64_t i = lane; i < hw; i += 32) s += xp[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) y[plane] = s / static_cast<float>(hw);
}

}  // namespace

void launch_gather(const void* x, const int64_t* idx, void* y, int64_t outer, int64_t axis_len, int64_t n_idx,
                   int64_t inner, int elem_size, cudaStream_t s) {
    int64_t n = outer * n_idx * inner;
    if (n == 0) return;
    auto go = [&](auto tag) {
        using T = decltype(tag);
        auto kernel = n < (int64_t(1) << 31) ? gather_axis<T, uint32_t> : gather_axis<T, int64_t>;
        launch_pdl(kernel, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, static_cast<const T*>(x), idx,
                   static_cast<T*>(y), outer, axis_len, n_idx, inner);
    };
    if (elem_size == 8) go(uint64_t{});
    else if (elem_size == 2) go(uint16_t{});
    else if (elem_size == 1) go(uint8_t{});
    else go(uint32_t{});
}

void launch_pool2d_f32_nchw(const float* x, float* y, const PoolDims& p, cudaStream_t s) {
    launch_pool2d_chain(x, false, y, false, LowType::kF16, p, s);  // fp32 NCHW on both sides: one pool kernel
}

void launch_global_avg_pool_f32_nchw(const float* x, float* y, int64_t nc, int64_t hw, cudaStream_t s) {
    if (nc == 0) return;
    launch_pdl(global_avg_pool_f32_nchw, dim3(static_cast<unsigned>((nc + 7) / 8)), dim3(256), 0, s, x, y, nc, hw);
}

}  // namespace kiln::cuda

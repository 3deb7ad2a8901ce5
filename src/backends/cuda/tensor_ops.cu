// Data movement and pooling kernels: Gather along one axis, Max/AveragePool 2-D (NCHW), GlobalAveragePool.
#include <cfloat>

#include "src/backends/cuda/cuda_launch.h"

namespace kiln::cuda {

namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    return static_cast<unsigned>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

template <typename T>
__global__ void gather_axis(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ y,
                            int64_t outer, int64_t axis_len, int64_t n_idx, int64_t inner) {
    int64_t n = outer * n_idx * inner;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t in = i % inner, t = i / inner;
        int64_t j = t % n_idx, o = t / n_idx;
        int64_t g = idx[j];
        if (g < 0) g += axis_len;
        g = g < 0 ? 0 : (g >= axis_len ? axis_len - 1 : g);  // out-of-range indices are clamped, never a fault
        y[i] = x[(o * axis_len + g) * inner + in];
    }
}

__global__ void pool2d_f32_nchw(const float* __restrict__ x, float* __restrict__ y, PoolDims p) {
    int64_t n = p.n * p.c * p.oh * p.ow;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t ox = i % p.ow, t = i / p.ow;
        int64_t oy = t % p.oh, nc = t / p.oh;
        const float* xp = x + nc * p.h * p.w;
        float acc = p.max ? -FLT_MAX : 0.f;
        int count = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
            int64_t iy = oy * p.sh - p.ph + ky * p.dh;
            for (int kx = 0; kx < p.kw; ++kx) {
                int64_t ix = ox * p.sw - p.pw + kx * p.dw;
                bool inside = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
                if (inside) {
                    float v = xp[iy * p.w + ix];
                    acc = p.max ? fmaxf(acc, v) : acc + v;
                    ++count;
                } else if (p.count_include_pad && iy < p.h + p.ph && ix < p.w + p.pw) {
                    ++count;
                }
            }
        }
        y[i] = p.max ? acc : (count ? acc / count : 0.f);
    }
}

// one warp per (n, c) plane
__global__ void global_avg_pool_f32_nchw(const float* __restrict__ x, float* __restrict__ y, int64_t nc, int64_t hw) {
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
    if (elem_size == 8)
        gather_axis<uint64_t><<<blocks_for(n), kThreads, 0, s>>>(static_cast<const uint64_t*>(x), idx,
                                                                  static_cast<uint64_t*>(y), outer, axis_len, n_idx,
                                                                  inner);
    else if (elem_size == 2)
        gather_axis<uint16_t><<<blocks_for(n), kThreads, 0, s>>>(static_cast<const uint16_t*>(x), idx,
                                                                  static_cast<uint16_t*>(y), outer, axis_len, n_idx,
                                                                  inner);
    else if (elem_size == 1)
        gather_axis<uint8_t><<<blocks_for(n), kThreads, 0, s>>>(static_cast<const uint8_t*>(x), idx,
                                                                 static_cast<uint8_t*>(y), outer, axis_len, n_idx,
                                                                 inner);
    else
        gather_axis<uint32_t><<<blocks_for(n), kThreads, 0, s>>>(static_cast<const uint32_t*>(x), idx,
                                                                  static_cast<uint32_t*>(y), outer, axis_len, n_idx,
                                                                  inner);
}

void launch_pool2d_f32_nchw(const float* x, float* y, const PoolDims& p, cudaStream_t s) {
    int64_t n = p.n * p.c * p.oh * p.ow;
    if (n) pool2d_f32_nchw<<<blocks_for(n), kThreads, 0, s>>>(x, y, p);
}

void launch_global_avg_pool_f32_nchw(const float* x, float* y, int64_t nc, int64_t hw, cudaStream_t s) {
    if (nc == 0) return;
    global_avg_pool_f32_nchw<<<static_cast<unsigned>((nc + 7) / 8), 256, 0, s>>>(x, y, nc, hw);
}

}  // namespace kiln::cuda

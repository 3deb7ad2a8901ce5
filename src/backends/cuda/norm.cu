// Row-wise normalisations with fp32 statistics: LayerNormalization / RMSNormalization (one block per row, fp32 statistics) and
// Softmax / LogSoftmax over one axis.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <type_traits>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/device_math.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

constexpr int kThreads = 256;

__device__ float block_max(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = lane < nw ? shared[lane] : -FLT_MAX;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float ld(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void st(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16_rn(v); }

// y = (x - mean) / sqrt(var + eps) * scale + bias  (rms: y = x / sqrt(mean(x^2) + eps) * scale); statistics in fp32
// whatever the storage types TX / TY (fp32, fp16, bf16)
template <typename TX, typename TY>
__global__ void layer_norm_rowwise(const TX* __restrict__ x, const float* __restrict__ scale,
                                   const float* __restrict__ bias, TY* __restrict__ y, int64_t cols, float eps,
                                   bool rms) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    __shared__ float shared[32];
    const TX* xr = x + blockIdx.x * cols;
    TY* yr = y + blockIdx.x * cols;
    float mean = 0.f;
    if (!rms) {
        float s = 0.f;
        for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += ld(xr, i);
        mean = block_sum(s, shared) / static_cast<float>(cols);
    }
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = ld(xr, i) - mean;
        ss += d * d;
    }
    float inv = rsqrtf(block_sum(ss, shared) / static_cast<float>(cols) + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = (ld(xr, i) - mean) * inv * scale[i];
        if (bias) v += bias[i];
        st(yr, i, v);
    }
}

// The same with one warp per row and the row held in registers (cols <= 32 * kLnPerLane): one read of x, no block
// barriers; for the transformer widths (768, 1024) where a block per row leaves most threads idle.
constexpr int kLnPerLane = 32, kLnWarps = 4;
template <typename TX, typename TY>
__global__ void __launch_bounds__(kLnWarps * 32) layer_norm_warp(const TX* __restrict__ x,
                                                                 const float* __restrict__ scale,
                                                                 const float* __restrict__ bias, TY* __restrict__ y,
                                                                 int64_t rows, int cols, float eps, bool rms) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    const int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const TX* xr = x + row * cols;
    TY* yr = y + row * cols;
    // the row, scale and bias in one round trip of loads
    float v[kLnPerLane], sc[kLnPerLane], bi[kLnPerLane];
#pragma unroll
    for (int k = 0; k < kLnPerLane; ++k) {
        const int i = lane + 32 * k;
        v[k] = i < cols ? ld(xr, i) : 0.f;
        sc[k] = i < cols ? scale[i] : 0.f;
        bi[k] = i < cols && bias ? bias[i] : 0.f;
    }
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < kLnPerLane; ++k) s += v[k];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float mean = rms ? 0.f : s / static_cast<float>(cols);
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < kLnPerLane; ++k) {
        const int i = lane + 32 * k;
        const float d = i < cols ? v[k] - mean : 0.f;
        ss += d * d;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = rsqrtf(ss / static_cast<float>(cols) + eps);
#pragma unroll
    for (int k = 0; k < kLnPerLane; ++k) {
        const int i = lane + 32 * k;
        if (i < cols) st(yr, i, (v[k] - mean) * inv * sc[k] + bi[k]);
    }
}

__global__ void softmax_f32_rowwise(const float* __restrict__ x, float* __restrict__ y, int64_t cols, bool log) {
    __shared__ float shared[32];
    const float* xr = x + blockIdx.x * cols;
    float* yr = y + blockIdx.x * cols;
    float m = -FLT_MAX;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m, shared);
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += expf(xr[i] - m);
    s = block_sum(s, shared);
    float ls = logf(s), inv = 1.f / s;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
        yr[i] = log ? xr[i] - m - ls : expf(xr[i] - m) * inv;
}

// Softmax over a middle axis: one thread per (outer, inner) position.
__global__ void softmax_f32_strided(const float* __restrict__ x, float* __restrict__ y, int64_t outer, int64_t len,
                                    int64_t inner, bool log) {
    int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (t >= outer * inner) return;
    int64_t o = t / inner, in = t % inner;
    const float* xp = x + o * len * inner + in;
    float* yp = y + o * len * inner + in;
    float m = -FLT_MAX;
    for (int64_t i = 0; i < len; ++i) m = fmaxf(m, xp[i * inner]);
    float s = 0.f;
    for (int64_t i = 0; i < len; ++i) s += expf(xp[i * inner] - m);
    float ls = logf(s), inv = 1.f / s;
    for (int64_t i = 0; i < len; ++i) yp[i * inner] = log ? xp[i * inner] - m - ls : expf(xp[i * inner] - m) * inv;
}

}  // namespace

void launch_layer_norm_rowwise(const void* x, LowType xt, const float* scale, const float* bias, void* y, LowType yt,
                               int64_t rows, int64_t cols, float eps, bool rms, cudaStream_t s) {
    if (rows == 0 || cols == 0) return;
    const unsigned grid = static_cast<unsigned>(rows), threads = cols >= 1024 ? 512 : cols >= 512 ? kThreads : 128;
    const bool warp = cols <= 32 * kLnPerLane;
    // a warp per row; kLnWarps rows per block only once there are rows enough to fill the GPU (BERT at batch 1 has
    // 128: one-warp blocks spread them over 128 multiprocessors instead of 32)
    const int warps = rows >= 2048 ? kLnWarps : 1;
    const unsigned wgrid = static_cast<unsigned>((rows + warps - 1) / warps), wthreads = warps * 32;
    const int c = static_cast<int>(cols);
    auto go = [&](auto* xp) {
        using TX = std::remove_const_t<std::remove_pointer_t<decltype(xp)>>;
        auto typed = [&](auto* yp) {
            using TY = std::remove_pointer_t<decltype(yp)>;
            if (warp)
                launch_pdl(layer_norm_warp<TX, TY>, dim3(wgrid), dim3(wthreads), 0, s, xp, scale, bias, yp, rows, c,
                           eps, rms);
            else
                launch_pdl(layer_norm_rowwise<TX, TY>, dim3(grid), dim3(threads), 0, s, xp, scale, bias, yp, cols,
                           eps, rms);
        };
        if (yt == LowType::kF16) typed(static_cast<__half*>(y));
        else if (yt == LowType::kBF16) typed(static_cast<__nv_bfloat16*>(y));
        else typed(static_cast<float*>(y));
    };
    if (xt == LowType::kF16) go(static_cast<const __half*>(x));
    else if (xt == LowType::kBF16) go(static_cast<const __nv_bfloat16*>(x));
    else go(static_cast<const float*>(x));
}

void launch_softmax_f32(const float* x, float* y, int64_t outer, int64_t axis_len, int64_t inner, bool log,
                        cudaStream_t s) {
    if (outer * axis_len * inner == 0) return;
    if (inner == 1)
        softmax_f32_rowwise<<<static_cast<unsigned>(outer), kThreads, 0, s>>>(x, y, axis_len, log);
    else
        softmax_f32_strided<<<static_cast<unsigned>((outer * inner + kThreads - 1) / kThreads), kThreads, 0, s>>>(
            x, y, outer, axis_len, inner, log);
}

}  // namespace kiln::cuda

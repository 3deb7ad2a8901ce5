// Layout kernels of the reduced-precision convolution chain: activations that flow only from convolution to
// convolution stay in fp16/bf16 NHWC (the layout Hopper's tensor-core convolutions read), the rest of the graph sees
// fp32 NCHW. One kernel converts an fp32 NCHW input into the chain, one epilogue adds bias and residual, applies the
// activation and writes either layout.
#include <cfloat>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/device_math.cuh"

namespace kiln::cuda {

namespace {

__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void from_f(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void from_f(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// dst[n, h, w, c] = src[n, c, h, w], converted; i walks dst (NHWC) so the writes are coalesced.
template <typename T>
__global__ void nchw_f32_to_nhwc(const float* __restrict__ src, T* __restrict__ dst, int64_t total, int64_t c,
                                 int64_t hw) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t ch = i % c, rest = i / c, p = rest % hw, n = rest / hw;
        from_f(dst + i, src[(n * c + ch) * hw + p]);
    }
}

// y = act(conv + bias[c] + z); conv is NHWC of type T; z and y are NHWC of type T or fp32 NCHW.
template <typename T>
__global__ void conv_epilogue_nhwc(const T* __restrict__ conv, const float* __restrict__ bias,
                                   const void* __restrict__ z, bool z_low, void* __restrict__ y, bool y_low,
                                   int64_t total, int64_t c, int64_t hw, DevAct act) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t ch = i % c, rest = i / c, p = rest % hw, n = rest / hw;
        int64_t nchw = (n * c + ch) * hw + p;
        float v = to_f(conv[i]);
        if (bias) v += bias[ch];
        if (z) v += z_low ? to_f(static_cast<const T*>(z)[i]) : static_cast<const float*>(z)[nchw];
        v = apply_act(v, act);
        if (y_low) from_f(static_cast<T*>(y) + i, v);
        else static_cast<float*>(y)[nchw] = v;
    }
}

// Max/AveragePool 2-D inside the chain: x read as fp16/bf16 NHWC (x_low) or fp32 NCHW, y written likewise; i walks y
// in its own layout so the writes are coalesced. Same padding / count_include_pad rules as pool2d_f32_nchw.
template <typename T>
__global__ void pool2d_chain(const void* __restrict__ x, bool x_low, void* __restrict__ y, bool y_low, PoolDims p) {
    int64_t total = p.n * p.c * p.oh * p.ow;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t n, ch, oy, ox, t;
        if (y_low) {
            ch = i % p.c, t = i / p.c, ox = t % p.ow, t /= p.ow, oy = t % p.oh, n = t / p.oh;
        } else {
            ox = i % p.ow, t = i / p.ow, oy = t % p.oh, t /= p.oh, ch = t % p.c, n = t / p.c;
        }
        float acc = p.max ? -FLT_MAX : 0.f;
        int count = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
            int64_t iy = oy * p.sh - p.ph + ky * p.dh;
            for (int kx = 0; kx < p.kw; ++kx) {
                int64_t ix = ox * p.sw - p.pw + kx * p.dw;
                if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
                    float v = x_low ? to_f(static_cast<const T*>(x)[((n * p.h + iy) * p.w + ix) * p.c + ch])
                                    : static_cast<const float*>(x)[((n * p.c + ch) * p.h + iy) * p.w + ix];
                    acc = p.max ? fmaxf(acc, v) : acc + v;
                    ++count;
                } else if (p.count_include_pad && iy < p.h + p.ph && ix < p.w + p.pw) {
                    ++count;
                }
            }
        }
        float r = p.max ? acc : (count ? acc / count : 0.f);
        if (y_low) from_f(static_cast<T*>(y) + i, r);
        else static_cast<float*>(y)[i] = r;
    }
}

}  // namespace

void launch_pool2d_chain(const void* x, bool x_low, void* y, bool y_low, LowType t, const PoolDims& p,
                         cudaStream_t s) {
    int64_t total = p.n * p.c * p.oh * p.ow;
    if (total == 0) return;
    if (t == LowType::kBF16)
        pool2d_chain<__nv_bfloat16><<<ew_blocks(total), kEwThreads, 0, s>>>(x, x_low, y, y_low, p);
    else
        pool2d_chain<__half><<<ew_blocks(total), kEwThreads, 0, s>>>(x, x_low, y, y_low, p);
}

void launch_nchw_f32_to_nhwc_low(const float* src, void* dst, LowType t, int64_t n, int64_t c, int64_t hw,
                                 cudaStream_t s) {
    int64_t total = n * c * hw;
    if (total == 0) return;
    if (t == LowType::kBF16)
        nchw_f32_to_nhwc<<<ew_blocks(total), kEwThreads, 0, s>>>(src, static_cast<__nv_bfloat16*>(dst), total, c, hw);
    else
        nchw_f32_to_nhwc<<<ew_blocks(total), kEwThreads, 0, s>>>(src, static_cast<__half*>(dst), total, c, hw);
}

void launch_conv_epilogue_nhwc(const void* conv, LowType t, const float* bias, const void* z, bool z_low, void* y,
                               bool y_low, int64_t n, int64_t c, int64_t hw, DevAct act, cudaStream_t s) {
    int64_t total = n * c * hw;
    if (total == 0) return;
    if (t == LowType::kBF16)
        conv_epilogue_nhwc<<<ew_blocks(total), kEwThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(conv), bias, z,
                                                                  z_low, y, y_low, total, c, hw, act);
    else
        conv_epilogue_nhwc<<<ew_blocks(total), kEwThreads, 0, s>>>(static_cast<const __half*>(conv), bias, z, z_low, y,
                                                                  y_low, total, c, hw, act);
}

}  // namespace kiln::cuda

// Layout kernels of the reduced-precision convolution chain: activations that flow only from convolution to
// convolution stay in fp16/bf16 NHWC (the layout Hopper's tensor-core convolutions read), the rest of the graph sees
// fp32 NCHW. One kernel converts an fp32 NCHW input into the chain, one epilogue adds bias and residual, applies the
// activation and writes either layout.
#include <cfloat>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/device_math.cuh"

namespace kiln::cuda {

namespace {


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

// pool2d_chain for x and y both in the chain (NHWC, fp16/bf16) with channels a multiple of 8: one thread per 8
// channels of an output pixel, 16-byte loads and stores, 32-bit index arithmetic (the launcher checks the sizes).
// The generic kernel above spent ResNet-50's 3x3/2 max pool at batch 256 (1.5 ms on an H100, 12x its memory time)
// in 64-bit divisions and 2-byte loads.
template <typename T>
__global__ void pool2d_nhwc_vec8(const uint4* __restrict__ x, uint4* __restrict__ y, PoolDims p, uint32_t groups,
                                 uint32_t total) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const uint32_t g = i % groups, pix = i / groups;
        const uint32_t ox = pix % static_cast<uint32_t>(p.ow), t = pix / static_cast<uint32_t>(p.ow);
        const uint32_t oy = t % static_cast<uint32_t>(p.oh), n = t / static_cast<uint32_t>(p.oh);
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] = p.max ? -FLT_MAX : 0.f;
        int count = 0;
        for (int ky = 0; ky < p.kh; ++ky) {
            const int iy = static_cast<int>(oy) * p.sh - p.ph + ky * p.dh;
            for (int kx = 0; kx < p.kw; ++kx) {
                const int ix = static_cast<int>(ox) * p.sw - p.pw + kx * p.dw;
                if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
                    const uint4 raw = x[((static_cast<int64_t>(n) * p.h + iy) * p.w + ix) * groups + g];
                    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
                    for (int e = 0; e < 8; ++e) acc[e] = p.max ? fmaxf(acc[e], to_f(v[e])) : acc[e] + to_f(v[e]);
                    ++count;
                } else if (p.count_include_pad && iy < p.h + p.ph && ix < p.w + p.pw) {
                    ++count;
                }
            }
        }
        uint4 out;
        T* o = reinterpret_cast<T*>(&out);
#pragma unroll
        for (int e = 0; e < 8; ++e) from_f(o + e, p.max ? acc[e] : (count ? acc[e] / count : 0.f));
        y[i] = out;
    }
}

// launch_subsample_nhwc_16bit: one thread per 16-byte (V = uint4) or 2-byte (V = uint16_t) piece of an output pixel.
template <typename V>
__global__ void subsample_nhwc(const V* __restrict__ x, V* __restrict__ y, int64_t total, int64_t pieces, int64_t h,
                               int64_t w, int sh, int sw, int64_t oh, int64_t ow) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t pc = i % pieces, pix = i / pieces, ox = pix % ow, t = pix / ow, oy = t % oh, n = t / oh;
        y[i] = x[((n * h + oy * sh) * w + ox * sw) * pieces + pc];
    }
}

}  // namespace

void launch_pool2d_chain(const void* x, bool x_low, void* y, bool y_low, LowType t, const PoolDims& p,
                         cudaStream_t s) {
    int64_t total = p.n * p.c * p.oh * p.ow;
    if (total == 0) return;
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
    if (x_low && y_low && p.c % 8 == 0 && aligned && total / 8 < (int64_t(1) << 31)) {
        const uint32_t groups = static_cast<uint32_t>(p.c / 8), n = static_cast<uint32_t>(total / 8);
        const unsigned blocks = ew_blocks(n);
        if (t == LowType::kBF16)
            pool2d_nhwc_vec8<__nv_bfloat16><<<blocks, kEwThreads, 0, s>>>(static_cast<const uint4*>(x),
                                                                         static_cast<uint4*>(y), p, groups, n);
        else
            pool2d_nhwc_vec8<__half><<<blocks, kEwThreads, 0, s>>>(static_cast<const uint4*>(x), static_cast<uint4*>(y),
                                                                  p, groups, n);
        return;
    }
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

void launch_subsample_nhwc_16bit(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c, int sh, int sw,
                                 int64_t oh, int64_t ow, cudaStream_t s) {
    if (n * oh * ow * c == 0) return;
    const bool vec = c % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0;
    const int64_t pieces = vec ? c / 8 : c, total = n * oh * ow * pieces;
    if (vec)
        subsample_nhwc<<<ew_blocks(total), kEwThreads, 0, s>>>(static_cast<const uint4*>(x), static_cast<uint4*>(y),
                                                                total, pieces, h, w, sh, sw, oh, ow);
    else
        subsample_nhwc<<<ew_blocks(total), kEwThreads, 0, s>>>(static_cast<const uint16_t*>(x),
                                                                static_cast<uint16_t*>(y), total, pieces, h, w, sh,
                                                                sw, oh, ow);
}

}  // namespace kiln::cuda

// Depthwise convolution inside the fp16/bf16 NHWC chain (MobileNetV2 / EfficientNet blocks): cuDNN's legacy NHWC
// path rejects grouped convolutions, which left every depthwise layer in fp32 NCHW with a layout conversion on each
// side. Here one thread computes 8 channels of an output pixel (16-byte loads of x, fp32 weights [kh * kw, c] read as
// float4s, fp32 accumulation), with the bias, the residual and the activation applied before the single store;
// channels not a multiple of 8 take one thread per channel.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/backends/cuda/device_math.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

// V = 8: 8 channels a thread (uint4 loads, c % 8 == 0, 16-byte aligned tensors); V = 1: one channel a thread.
template <typename T, int V>
__global__ void depthwise_nhwc(DepthwiseArgs a, uint32_t groups, uint32_t total) {
    pdl_wait();  // launched with launch_pdl(): x and z come from the kernels before
    pdl_launch_dependents();
    const PoolDims& p = a.p;
    const T* x = static_cast<const T*>(a.x);
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const uint32_t g = i % groups, pix = i / groups;
        const uint32_t ox = pix % static_cast<uint32_t>(p.ow), t = pix / static_cast<uint32_t>(p.ow);
        const uint32_t oy = t % static_cast<uint32_t>(p.oh), n = t / static_cast<uint32_t>(p.oh);
        const int c0 = static_cast<int>(g) * V;
        float acc[V];
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] = a.bias ? a.bias[c0 + e] : 0.f;
        for (int ky = 0; ky < p.kh; ++ky) {
            const int iy = static_cast<int>(oy) * p.sh - p.ph + ky * p.dh;
            if (iy < 0 || iy >= p.h) continue;
            for (int kx = 0; kx < p.kw; ++kx) {
                const int ix = static_cast<int>(ox) * p.sw - p.pw + kx * p.dw;
                if (ix < 0 || ix >= p.w) continue;
                const int64_t at = ((static_cast<int64_t>(n) * p.h + iy) * p.w + ix) * p.c + c0;
                const float* wk = a.w + (ky * p.kw + kx) * p.c + c0;
                if constexpr (V == 8) {
                    const uint4 raw = *reinterpret_cast<const uint4*>(x + at);
                    const T* v = reinterpret_cast<const T*>(&raw);
                    const float4 w0 = __ldg(reinterpret_cast<const float4*>(wk)),
                                 w1 = __ldg(reinterpret_cast<const float4*>(wk) + 1);
                    const float wv[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
                    for (int e = 0; e < 8; ++e) acc[e] = fmaf(to_f(v[e]), wv[e], acc[e]);
                } else {
                    acc[0] = fmaf(to_f(x[at]), __ldg(wk), acc[0]);
                }
            }
        }
        const int64_t out = static_cast<int64_t>(i) * V;
        T res[V];
        if constexpr (V == 8) {
            if (a.z) *reinterpret_cast<uint4*>(res) = *reinterpret_cast<const uint4*>(static_cast<const T*>(a.z) + out);
        } else {
            if (a.z) res[0] = static_cast<const T*>(a.z)[out];
        }
#pragma unroll
        for (int e = 0; e < V; ++e) from_f(res + e, apply_act(acc[e] + (a.z ? to_f(res[e]) : 0.f), a.act));
        if constexpr (V == 8) *reinterpret_cast<uint4*>(static_cast<T*>(a.y) + out) = *reinterpret_cast<uint4*>(res);
        else static_cast<T*>(a.y)[out] = res[0];
    }
}

template <typename T>
void launch_typed(const DepthwiseArgs& a, cudaStream_t s) {
    const PoolDims& p = a.p;
    const int64_t pixels = p.n * p.oh * p.ow;
    bool vec = p.c % 8 == 0;
    for (const void* q : {a.x, static_cast<const void*>(a.y), a.z}) vec &= reinterpret_cast<uintptr_t>(q) % 16 == 0;
    const uint32_t groups = static_cast<uint32_t>(vec ? p.c / 8 : p.c);
    const uint32_t total = static_cast<uint32_t>(pixels * groups);
    if (vec) launch_pdl(depthwise_nhwc<T, 8>, dim3(ew_blocks(total)), dim3(kEwThreads), 0, s, a, groups, total);
    else launch_pdl(depthwise_nhwc<T, 1>, dim3(ew_blocks(total)), dim3(kEwThreads), 0, s, a, groups, total);
}

}  // namespace

void launch_depthwise_nhwc(const DepthwiseArgs& a, LowType t, cudaStream_t s) {
    if (a.p.n * a.p.oh * a.p.ow * a.p.c == 0) return;
    if (t == LowType::kBF16) launch_typed<__nv_bfloat16>(a, s);
    else launch_typed<__half>(a, s);
}

}  // namespace kiln::cuda

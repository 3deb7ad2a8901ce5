#pragma once
// Device helpers shared by kiln's CUDA kernels (*.cu only).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/backends/cuda/cuda_launch.h"

namespace kiln::cuda {

// A stored value as fp32, and fp32 rounded to the storage type (fp32, fp16 or bf16), for kernels templated on it.
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void from_f(float* p, float v) { *p = v; }
__device__ __forceinline__ void from_f(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void from_f(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Sum over the block; every thread gets the result. `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    int nw = (blockDim.x + 31) >> 5;
    v = lane < nw ? shared[lane] : 0.f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Same kinds and order as backends::ActivationKind.
__device__ __forceinline__ float apply_act(float x, const DevAct& a) {
    switch (a.kind) {
        case 1: return x > 0.f ? x : 0.f;
        case 2: return x >= 0.f ? x : a.alpha * x;
        case 3: return fminf(fmaxf(x, a.alpha), a.beta);
        case 4: return 1.f / (1.f + expf(-x));
        case 5: return x / (1.f + expf(-x));
        case 6: return fmaxf(0.f, fminf(1.f, a.alpha * x + a.beta));
        case 7: return x * fmaxf(0.f, fminf(1.f, x / 6.f + 0.5f));
        case 8: return tanhf(x);
        case 9: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
        case 10: return 0.5f * x * (1.f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
        case 11: return x >= 0.f ? x : a.alpha * (expf(x) - 1.f);
        default: return x;
    }
}

}  // namespace kiln::cuda

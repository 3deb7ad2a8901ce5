// The epilogue of FusedMatMulNorm (cuda_gemm_norm.cc): per row, S = sum of the GEMM's split-K partial products
// (fp32) + bias + residual Z, then Y = LayerNormalization(S) with fp32 statistics. One warp per row holds the row in
// registers (rows up to 32 * kPerLane wide); wider rows only get S here and the LayerNormalization kernel after it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "src/backends/cuda/cuda_launch.h"

namespace kiln::cuda {

namespace {

constexpr int kPerLane = 32;

// element i of a tensor stored as T (low) or fp32
template <typename T>
__device__ __forceinline__ float load(const void* p, int64_t i, bool low) {
    if (!low) return static_cast<const float*>(p)[i];
    if constexpr (std::is_same_v<T, __half>)
        return __half2float(static_cast<const T*>(p)[i]);
    else
        return __bfloat162float(static_cast<const T*>(p)[i]);
}
template <typename T>
__device__ __forceinline__ void store(void* p, int64_t i, float v, bool low) {
    if (!low)
        static_cast<float*>(p)[i] = v;
    else if constexpr (std::is_same_v<T, __half>)
        static_cast<T*>(p)[i] = __float2half_rn(v);
    else
        static_cast<T*>(p)[i] = __float2bfloat16_rn(v);
}

// The loads of one pass over the row (bias + z, then one partial product at a time) are independent and unrolled,
// so a warp has a whole row's worth in flight: a loop over the partials inside the loop over columns would wait
// once per column and partial (24 us per row block at BERT's size, measured).
template <typename T>
__global__ void matmul_norm_epilogue(const MatMulNormArgs a) {
    const int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = int64_t(blockIdx.x) * warps + (threadIdx.x >> 5);
    if (row >= a.rows) return;
    const int cols = a.cols, parts = a.parts;
    const int64_t base = row * cols, stride = a.part_stride;
    const float* __restrict__ part = a.part + base;
    const float* __restrict__ bias = a.bias;
    const void* z = a.z;
    const bool z_low = a.z_low;
    if (!a.normalize) {  // wide rows: S only
        for (int i = lane; i < cols; i += 32) {
            float acc = (bias ? bias[i] : 0.f) + (z ? load<T>(z, base + i, z_low) : 0.f);
            for (int p = 0; p < parts; ++p) acc += part[p * stride + i];
            store<T>(a.s, base + i, acc, a.s_low);
        }
        return;
    }
    float v[kPerLane];
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
        const int i = lane + 32 * k;
        v[k] = i < cols ? (bias ? bias[i] : 0.f) + (z ? load<T>(z, base + i, z_low) : 0.f) : 0.f;
    }
    for (int p = 0; p < parts; ++p) {
        const float* __restrict__ pp = part + p * stride;
#pragma unroll
        for (int k = 0; k < kPerLane; ++k) {
            const int i = lane + 32 * k;
            if (i < cols) v[k] += pp[i];
        }
    }
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) sum += v[k];
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float mean = sum / static_cast<float>(cols);
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
        const float d = lane + 32 * k < cols ? v[k] - mean : 0.f;
        ss += d * d;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = rsqrtf(ss / static_cast<float>(cols) + a.eps);
    const float* __restrict__ gamma = a.gamma;
    const float* __restrict__ beta = a.beta;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
        const int i = lane + 32 * k;
        if (i >= cols) continue;
        if (a.s) store<T>(a.s, base + i, v[k], a.s_low);
        store<T>(a.y, base + i, (v[k] - mean) * inv * gamma[i] + (beta ? beta[i] : 0.f), a.y_low);
    }
}

}  // namespace

void launch_matmul_norm_epilogue(const MatMulNormArgs& args, LowType t, cudaStream_t s) {
    if (args.rows == 0 || args.cols == 0) return;
    MatMulNormArgs a = args;
    a.normalize = a.cols <= 32 * kPerLane;
    float* wide_s = nullptr;
    if (!a.normalize && !a.s) {  // S into scratch, then the LayerNormalization kernel
        cudaMallocAsync(reinterpret_cast<void**>(&wide_s), a.rows * a.cols * sizeof(float), s);
        a.s = wide_s;
        a.s_low = false;
    }
    // one warp per row; 4 per block once there are rows enough to fill the GPU that way
    const int warps = a.rows >= 2048 ? 4 : 1;
    const unsigned grid = static_cast<unsigned>((a.rows + warps - 1) / warps);
    if (t == LowType::kBF16)
        matmul_norm_epilogue<__nv_bfloat16><<<grid, 32 * warps, 0, s>>>(a);
    else
        matmul_norm_epilogue<__half><<<grid, 32 * warps, 0, s>>>(a);
    if (!a.normalize) {
        const LowType st = a.s_low ? t : LowType::kF32, yt = a.y_low ? t : LowType::kF32;
        launch_layer_norm_rowwise(a.s, st, a.gamma, a.beta, a.y, yt, a.rows, a.cols, a.eps, false, s);
    }
    if (wide_s) cudaFreeAsync(wide_s, s);
}

}  // namespace kiln::cuda

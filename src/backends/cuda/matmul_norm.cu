// The epilogue of FusedMatMulNorm (cuda_gemm_norm.cc): per row, S = sum of the GEMM's split-K partial products
// (fp32) + bias + residual Z, then Y = LayerNormalization(S) with fp32 statistics. One warp per row holds the row in
// registers (rows up to 32 * kPerLane wide); wider rows only get S here and the LayerNormalization kernel after it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "src/backends/cuda/cuda_launch.h"

namespace kiln::cuda {

namespace {

constexpr int kPerLane = kMatMulNormMaxCols / 32;

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

// Every load is unconditional (past the row's end the index is clamped to its last column, and those lanes' values
// are masked out of the statistics and never stored) and the residual's type is a template parameter, so a warp has
// a whole pass over its row in flight at once: loads behind per-column branches were waited on one by one (17-24 us
// per call at BERT's size, measured). kN: values per lane (cols <= 32 kN).
// Rows too wide for the registers: S alone, one element per thread (the LayerNormalization kernel follows).
template <typename T>
__global__ void matmul_norm_sum(const MatMulNormArgs a) {
    const int64_t n = a.rows * a.cols;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int c = static_cast<int>(e % a.cols);
        float acc = (a.bias ? a.bias[c] : 0.f) + (a.z ? load<T>(a.z, e, a.z_low) : 0.f);
        for (int p = 0; p < a.parts; ++p) acc += a.part[p * a.part_stride + e];
        store<T>(a.s, e, acc, a.s_low);
    }
}

template <typename T, bool kZLow, int kN>
__global__ void matmul_norm_epilogue(const MatMulNormArgs a) {
    const int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
    const int64_t row = int64_t(blockIdx.x) * warps + (threadIdx.x >> 5);
    if (row >= a.rows) return;
    const int cols = a.cols, parts = a.parts;
    const int64_t base = row * cols, stride = a.part_stride;
    const float* __restrict__ part = a.part + base;
    int idx[kN];
#pragma unroll
    for (int k = 0; k < kN; ++k) idx[k] = min(lane + 32 * k, cols - 1);
    float v[kN];
#pragma unroll
    for (int k = 0; k < kN; ++k) v[k] = 0.f;
    if (a.bias) {
#pragma unroll
        for (int k = 0; k < kN; ++k) v[k] = a.bias[idx[k]];
    }
    if (a.z) {
        const auto* z = static_cast<const std::conditional_t<kZLow, T, float>*>(a.z) + base;
#pragma unroll
        for (int k = 0; k < kN; ++k) {
            if constexpr (!kZLow)
                v[k] += z[idx[k]];
            else if constexpr (std::is_same_v<T, __half>)
                v[k] += __half2float(z[idx[k]]);
            else
                v[k] += __bfloat162float(z[idx[k]]);
        }
    }
#pragma unroll 2
    for (int p = 0; p < parts; ++p) {
        const float* __restrict__ pp = part + p * stride;
#pragma unroll
        for (int k = 0; k < kN; ++k) v[k] += pp[idx[k]];
    }
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < kN; ++k) sum += lane + 32 * k < cols ? v[k] : 0.f;
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float mean = sum / static_cast<float>(cols);
    float ss = 0.f;
#pragma unroll
    for (int k = 0; k < kN; ++k) {
        const float d = lane + 32 * k < cols ? v[k] - mean : 0.f;
        ss += d * d;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    const float inv = rsqrtf(ss / static_cast<float>(cols) + a.eps);
    float g[kN], be[kN];
#pragma unroll
    for (int k = 0; k < kN; ++k) {
        g[k] = a.gamma[idx[k]];
        be[k] = a.beta ? a.beta[idx[k]] : 0.f;
    }
#pragma unroll
    for (int k = 0; k < kN; ++k) {
        const int i = lane + 32 * k;
        if (i >= cols) continue;
        if (a.s) store<T>(a.s, base + i, v[k], a.s_low);
        store<T>(a.y, base + i, (v[k] - mean) * inv * g[k] + be[k], a.y_low);
    }
}

}  // namespace

void launch_matmul_norm_epilogue(const MatMulNormArgs& args, LowType t, cudaStream_t s) {
    if (args.rows == 0 || args.cols == 0) return;
    MatMulNormArgs a = args;
    a.normalize = a.cols <= 32 * kPerLane;
    if (!a.normalize && !a.s) {  // S into the caller's scratch, then the LayerNormalization kernel
        a.s = a.wide;
        a.s_low = false;
    }
    auto go = [&](auto low_tag, auto z_low_tag) {
        using T = decltype(low_tag);
        constexpr bool kZLow = decltype(z_low_tag)::value;
        if (!a.normalize) {
            const int64_t n = a.rows * a.cols;
            const unsigned blocks = static_cast<unsigned>((n + 255) / 256 < 65535 * 8 ? (n + 255) / 256 : 65535 * 8);
            matmul_norm_sum<T><<<blocks, 256, 0, s>>>(a);
            return;
        }
        // one warp per row; 4 per block once there are rows enough to fill the GPU that way
        const int warps = a.rows >= 2048 ? 4 : 1;
        const unsigned grid = static_cast<unsigned>((a.rows + warps - 1) / warps);
        const int n = (a.cols + 31) / 32;
        if (n <= 8)
            matmul_norm_epilogue<T, kZLow, 8><<<grid, 32 * warps, 0, s>>>(a);
        else if (n <= 16)
            matmul_norm_epilogue<T, kZLow, 16><<<grid, 32 * warps, 0, s>>>(a);
        else if (n <= 24)
            matmul_norm_epilogue<T, kZLow, 24><<<grid, 32 * warps, 0, s>>>(a);
        else
            matmul_norm_epilogue<T, kZLow, 32><<<grid, 32 * warps, 0, s>>>(a);
    };
    if (t == LowType::kBF16) {
        if (a.z_low)
            go(__nv_bfloat16{}, std::true_type{});
        else
            go(__nv_bfloat16{}, std::false_type{});
    } else {
        if (a.z_low)
            go(__half{}, std::true_type{});
        else
            go(__half{}, std::false_type{});
    }
    if (!a.normalize) {
        const LowType st = a.s_low ? t : LowType::kF32, yt = a.y_low ? t : LowType::kF32;
        launch_layer_norm_rowwise(a.s, st, a.gamma, a.beta, a.y, yt, a.rows, a.cols, a.eps, false, s);
    }
}

}  // namespace kiln::cuda

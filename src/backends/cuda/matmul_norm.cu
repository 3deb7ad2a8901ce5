// The epilogue of FusedMatMulNorm (cuda_gemm_norm.cc): per row, S = sum of the GEMM's split-K partial products
// (fp32) + bias + residual Z, then Y = LayerNormalization(S) with fp32 statistics. One warp per row holds the row in
// registers (rows up to 32 * kPerLane wide); wider rows only get S here and the LayerNormalization kernel after it.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/device_math.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

constexpr int kPerLane = kMatMulNormMaxCols / 32;

// element i of a tensor stored as T (low) or fp32
template <typename T>
__device__ __forceinline__ float load(const void* p, int64_t i, bool low) {
    return low ? to_f(static_cast<const T*>(p)[i]) : static_cast<const float*>(p)[i];
}
template <typename T>
__device__ __forceinline__ void store(void* p, int64_t i, float v, bool low) {
    if (low) from_f(static_cast<T*>(p) + i, v);
    else static_cast<float*>(p)[i] = v;
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
        for (int k = 0; k < kN; ++k) v[k] += to_f(z[idx[k]]);
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

// 4 values of a row of T / fp32 at column c (16-byte aligned for fp32, 8-byte for T: cols % 4 == 0)
template <typename T, bool kLow>
__device__ __forceinline__ float4 load4(const void* p, int64_t i) {
    if constexpr (!kLow) {
        return *reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    } else {
        const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const T*>(p) + i);
        const T* h = reinterpret_cast<const T*>(&raw);
        return make_float4(to_f(h[0]), to_f(h[1]), to_f(h[2]), to_f(h[3]));
    }
}
template <typename T>
__device__ __forceinline__ void store4(void* p, int64_t i, float4 v, bool low) {
    if (!low) {
        *reinterpret_cast<float4*>(static_cast<float*>(p) + i) = v;
        return;
    }
    uint2 raw;
    T* h = reinterpret_cast<T*>(&raw);
    from_f(h, v.x), from_f(h + 1, v.y), from_f(h + 2, v.z), from_f(h + 3, v.w);
    *reinterpret_cast<uint2*>(static_cast<T*>(p) + i) = raw;
}

// Mean and sum of squared deviations of a row spread over the block (blockDim.x a multiple of 32, at most 1024),
// merged pairwise (Chan et al.): numerically as safe as two passes, with one barrier instead of two.
struct Moments {
    float n, mean, m2;
};
__device__ __forceinline__ Moments merge(Moments a, Moments b) {
    const float n = a.n + b.n;
    if (n == 0.f) return a;
    const float d = b.mean - a.mean, f = b.n / n;
    return {n, a.mean + d * f, a.m2 + b.m2 + d * d * a.n * f};
}
__device__ __forceinline__ Moments block_moments(Moments t, Moments* red) {
    for (int o = 16; o > 0; o >>= 1) {
        Moments u{__shfl_xor_sync(0xffffffffu, t.n, o), __shfl_xor_sync(0xffffffffu, t.mean, o),
                  __shfl_xor_sync(0xffffffffu, t.m2, o)};
        t = merge(t, u);
    }
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = t;
    __syncthreads();
    Moments r = red[0];
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) r = merge(r, red[w]);
    return r;
}

// One block per row, one thread per 4 columns (cols % 4 == 0, cols <= 4096): 16-byte loads of the partial products,
// and the row spread over cols / 4 threads (6 warps at 768 columns) so each multiprocessor keeps many loads in flight.
// The one-warp-per-row kernel below took 5.6 us per call at BERT's size (128 x 768, 3 partial products) on an H100.
// Latency is what it costs, so its loads take as few round trips as possible: the bias, scale and norm bias before
// pdl_wait() (the kernel before this one is FusedMatMulNorm's own GEMM, which writes only the partial products, and
// anything older has finished by the time this kernel starts), then the residual and up to kMaxParts partial products
// all in flight at once.
constexpr int kMaxParts = 8;
template <typename T, bool kZLow>
__global__ void __launch_bounds__(1024) matmul_norm_rows_vec4(const MatMulNormArgs a) {
    __shared__ Moments red[32];
    const int64_t row = blockIdx.x;
    const int c = threadIdx.x * 4;
    const bool on = c < a.cols;
    const int64_t base = row * a.cols + c;
    const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
    float4 v = zero, g = zero, b = zero;
    if (on) {
        if (a.bias) v = *reinterpret_cast<const float4*>(a.bias + c);
        g = *reinterpret_cast<const float4*>(a.gamma + c);
        if (a.beta) b = *reinterpret_cast<const float4*>(a.beta + c);
    }
    pdl_wait();  // launched with launch_pdl(): the partial products come from the GEMM before
    pdl_launch_dependents();
    if (on) {
        float4 q[kMaxParts];
#pragma unroll
        for (int p = 0; p < kMaxParts; ++p)
            if (p < a.parts) q[p] = *reinterpret_cast<const float4*>(a.part + p * a.part_stride + base);
        if (a.z) {
            const float4 z = load4<T, kZLow>(a.z, base);
            v.x += z.x, v.y += z.y, v.z += z.z, v.w += z.w;
        }
#pragma unroll
        for (int p = 0; p < kMaxParts; ++p)
            if (p < a.parts) v.x += q[p].x, v.y += q[p].y, v.z += q[p].z, v.w += q[p].w;
        for (int p = kMaxParts; p < a.parts; ++p) {
            const float4 r = *reinterpret_cast<const float4*>(a.part + p * a.part_stride + base);
            v.x += r.x, v.y += r.y, v.z += r.z, v.w += r.w;
        }
    }
    Moments t{0.f, 0.f, 0.f};
    if (on) {
        const float m = 0.25f * (v.x + v.y + v.z + v.w);
        const float ex = v.x - m, ey = v.y - m, ez = v.z - m, ew = v.w - m;
        t = {4.f, m, ex * ex + ey * ey + ez * ez + ew * ew};
    }
    const Moments row_m = block_moments(t, red);
    const float mean = row_m.mean, inv = rsqrtf(row_m.m2 / static_cast<float>(a.cols) + a.eps);
    const float dx = v.x - mean, dy = v.y - mean, dz = v.z - mean, dw = v.w - mean;
    if (!on) return;
    if (a.s) store4<T>(a.s, base, v, a.s_low);
    store4<T>(a.y, base, make_float4(dx * inv * g.x + b.x, dy * inv * g.y + b.y, dz * inv * g.z + b.z,
                                     dw * inv * g.w + b.w),
              a.y_low);
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
        auto al = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };  // nullptr passes
        const bool vec4 = a.cols % 4 == 0 && a.cols <= 4096 && a.part_stride % 4 == 0 && al(a.part) && al(a.bias) &&
                          al(a.z) && al(a.gamma) && al(a.beta) && al(a.y) && al(a.s);
        if (vec4) {
            const unsigned threads = static_cast<unsigned>((a.cols / 4 + 31) / 32 * 32);
            launch_pdl(matmul_norm_rows_vec4<T, kZLow>, dim3(static_cast<unsigned>(a.rows)), dim3(threads), 0, s, a);
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

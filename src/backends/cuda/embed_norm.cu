// EmbedLayerNorm on the GPU: look the row up in the table, add the addend row, normalise with fp32 statistics and
// write Y (and S when asked) in their storage types. A block per row with a thread per 4 columns when the columns
// allow 16-byte loads (BERT, GPT-2); else one warp per row holding it in registers, or, for rows wider than
// 32 * kPerLane, a block per row that reads it three times (from L1/L2).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/device_math.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

constexpr int kPerLane = 32, kWideThreads = 256;

__device__ __forceinline__ void store(void* p, int64_t i, float v, LowType t) {
    if (t == LowType::kF16) static_cast<__half*>(p)[i] = __float2half_rn(v);
    else if (t == LowType::kBF16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
    else static_cast<float*>(p)[i] = v;
}

// The table row of row r (clamped index) and its addend row (nullptr when none).
__device__ __forceinline__ const float* table_row(const EmbedNormArgs& a, int64_t r) {
    int64_t id = a.ids32 ? static_cast<const int32_t*>(a.ids)[r] : static_cast<const int64_t*>(a.ids)[r];
    if (id < 0) id += a.vocab;
    id = id < 0 ? 0 : (id >= a.vocab ? a.vocab - 1 : id);
    return a.table + id * a.cols;
}

__global__ void embed_layer_norm_warp(EmbedNormArgs a) {
    const int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, cols = a.cols;
    float g[kPerLane], b[kPerLane];  // constants: loaded before waiting for the previous kernel
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
        const int i = lane + 32 * k;
        g[k] = i < cols ? a.gamma[i] : 0.f;
        b[k] = i < cols ? a.beta[i] : 0.f;
    }
    pdl_wait();  // launched with launch_pdl(): ids (and the memory Y / S reuse) belong to earlier work
    pdl_launch_dependents();
    if (row >= a.rows) return;
    const float* t = table_row(a, row);
    const float* add = a.addend ? a.addend + (row % a.addend_rows) * cols : nullptr;
    float v[kPerLane];
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
        const int i = lane + 32 * k;
        v[k] = i < cols ? t[i] + (add ? add[i] : 0.f) : 0.f;
        sum += v[k];
    }
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
    const int64_t base = row * cols;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
        const int i = lane + 32 * k;
        if (i >= cols) continue;
        store(a.y, base + i, (v[k] - mean) * inv * g[k] + b[k], a.y_type);
        if (a.s) store(a.s, base + i, v[k], a.s_type);
    }
}

// A block per row, one thread per 4 columns (cols % 4 == 0, cols <= 4 * 1024): every load of the row is in flight
// at once (a warp per row issues them 32 columns at a time, which left BERT's 128 rows latency-bound: 14.7 us in
// Nsight Compute against ~4 us for this form).
__global__ void embed_layer_norm_vec4(EmbedNormArgs a) {
    __shared__ float shared[32];
    const int c4 = a.cols / 4, j = threadIdx.x;
    const bool on = j < c4;
    float4 g = {}, b = {};
    if (on) g = reinterpret_cast<const float4*>(a.gamma)[j], b = reinterpret_cast<const float4*>(a.beta)[j];
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    const int64_t row = blockIdx.x;
    float4 v = {};
    if (on) {
        v = reinterpret_cast<const float4*>(table_row(a, row))[j];
        if (a.addend) {
            const float4 d = reinterpret_cast<const float4*>(a.addend + (row % a.addend_rows) * a.cols)[j];
            v.x += d.x, v.y += d.y, v.z += d.z, v.w += d.w;
        }
    }
    const float mean = block_sum(v.x + v.y + v.z + v.w, shared) / static_cast<float>(a.cols);
    const float dx = v.x - mean, dy = v.y - mean, dz = v.z - mean, dw = v.w - mean;
    const float var = block_sum(on ? dx * dx + dy * dy + dz * dz + dw * dw : 0.f, shared) / static_cast<float>(a.cols);
    const float inv = rsqrtf(var + a.eps);
    if (!on) return;
    const int64_t base = row * a.cols + 4 * j;
    store(a.y, base + 0, dx * inv * g.x + b.x, a.y_type);
    store(a.y, base + 1, dy * inv * g.y + b.y, a.y_type);
    store(a.y, base + 2, dz * inv * g.z + b.z, a.y_type);
    store(a.y, base + 3, dw * inv * g.w + b.w, a.y_type);
    if (a.s) {
        store(a.s, base + 0, v.x, a.s_type);
        store(a.s, base + 1, v.y, a.s_type);
        store(a.s, base + 2, v.z, a.s_type);
        store(a.s, base + 3, v.w, a.s_type);
    }
}

__global__ void embed_layer_norm_wide(EmbedNormArgs a) {
    __shared__ float shared[32];
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    const int64_t row = blockIdx.x, cols = a.cols;
    const float* t = table_row(a, row);
    const float* add = a.addend ? a.addend + (row % a.addend_rows) * cols : nullptr;
    auto at = [&](int64_t i) { return t[i] + (add ? add[i] : 0.f); };
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += at(i);
    const float mean = block_sum(s, shared) / static_cast<float>(cols);
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        const float d = at(i) - mean;
        ss += d * d;
    }
    const float inv = rsqrtf(block_sum(ss, shared) / static_cast<float>(cols) + a.eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        const float v = at(i);
        store(a.y, row * cols + i, (v - mean) * inv * a.gamma[i] + a.beta[i], a.y_type);
        if (a.s) store(a.s, row * cols + i, v, a.s_type);
    }
}

}  // namespace

void launch_embed_layer_norm(const EmbedNormArgs& a, cudaStream_t s) {
    if (a.rows == 0 || a.cols == 0) return;
    const bool aligned = a.cols % 4 == 0 && a.cols <= 4 * 1024 &&
                         (reinterpret_cast<uintptr_t>(a.table) | reinterpret_cast<uintptr_t>(a.addend) |
                          reinterpret_cast<uintptr_t>(a.gamma) | reinterpret_cast<uintptr_t>(a.beta)) % 16 == 0;
    if (aligned) {
        const unsigned threads = static_cast<unsigned>((a.cols / 4 + 31) / 32 * 32);
        launch_pdl(embed_layer_norm_vec4, dim3(static_cast<unsigned>(a.rows)), dim3(threads), 0, s, a);
    } else if (a.cols <= 32 * kPerLane) {
        // a warp per row; 4 rows per block once there are rows enough to fill the GPU (as layer_norm_warp)
        const int warps = a.rows >= 2048 ? 4 : 1;
        launch_pdl(embed_layer_norm_warp, dim3(static_cast<unsigned>((a.rows + warps - 1) / warps)), dim3(warps * 32),
                   0, s, a);
    } else {
        launch_pdl(embed_layer_norm_wide, dim3(static_cast<unsigned>(a.rows)), dim3(kWideThreads), 0, s, a);
    }
}

}  // namespace kiln::cuda

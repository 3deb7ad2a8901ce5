// Fused attention, fp32: out = softmax(scale * Q K^T + mask) V.
// attention_f32_tiled (head dims up to 128): flash-style. A block owns 8 query rows of one (batch, head), one per
// warp; it walks the keys in tiles of 32 staged in shared memory (K padded against bank conflicts), each lane scores
// one key, and an online softmax (running max and sum per row) rescales the output accumulators, so the scores are
// never stored. attention_f32_rowmajor (any head dim): one block per (batch*head, 8 query rows) with one row's
// scores in shared memory (sk floats).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cfloat>
#include <type_traits>

#include "src/backends/cuda/attention_common.cuh"
#include "src/backends/cuda/device_math.cuh"

namespace kiln::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int kRowsPerBlock = 8;

__device__ float block_reduce(float v, float* red, bool is_max) {
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = red[0];
    for (int w = 1; w < kThreads / 32; ++w) v = is_max ? fmaxf(v, red[w]) : v + red[w];
    return v;
}

__global__ void attention_f32_rowmajor(const float* __restrict__ q, const float* __restrict__ k,
                                       const float* __restrict__ v, const void* __restrict__ mask,
                                       float* __restrict__ out, AttentionDims d) {
    extern __shared__ float smem[];  // [sk] scores, then [d] query row
    __shared__ float red[kThreads / 32];
    float* s = smem;
    float* qrow = smem + d.sk;
    const AttentionOffsets ofs = attention_offsets(d, blockIdx.x);
    const int64_t mo = ofs.m;
    const float *qp = q + ofs.q, *kp = k + ofs.k, *vp = v + ofs.v;
    float* op = out + ofs.o;
    int64_t row_end = min(d.sq, int64_t(blockIdx.y + 1) * kRowsPerBlock);
    for (int64_t i = int64_t(blockIdx.y) * kRowsPerBlock; i < row_end; ++i) {
        __syncthreads();
        for (int64_t c = threadIdx.x; c < d.d; c += blockDim.x) qrow[c] = qp[i * d.q_row + c] * d.scale;
        __syncthreads();
        float mx = -FLT_MAX;
        for (int64_t j = threadIdx.x; j < d.sk; j += blockDim.x) {
            float acc = 0.f;
            if (d.k_transposed)
                for (int64_t c = 0; c < d.d; ++c) acc += qrow[c] * kp[c * d.k_row + j];
            else
                for (int64_t c = 0; c < d.d; ++c) acc += qrow[c] * kp[j * d.k_row + c];
            acc = masked_score(acc, d, mask, mo, i, j);
            s[j] = acc;
            mx = fmaxf(mx, acc);
        }
        mx = block_reduce(mx, red, true);
        float sum = 0.f;
        for (int64_t j = threadIdx.x; j < d.sk; j += blockDim.x) {
            float e = expf(s[j] - mx);
            s[j] = e;
            sum += e;
        }
        sum = block_reduce(sum, red, false);  // its __syncthreads also publishes s[]
        float inv = 1.f / sum;
        for (int64_t c = threadIdx.x; c < d.dv; c += blockDim.x) {
            float acc = 0.f;
            for (int64_t j = 0; j < d.sk; ++j) acc += s[j] * vp[j * d.v_row + c];
            op[i * d.o_row + c] = acc * inv;
        }
    }
}

// 8 warps of one query row each: 8-row blocks give 192 blocks for BERT-base batch 1 (12 heads x 128 rows), enough
// warps per SM to hide the shared-memory latency of the score loop (4 rows per warp was 1.6x slower on an H200).
constexpr int kTileK = 32, kWarps = 8, kRowsPerWarp = 1, kTileQ = kWarps * kRowsPerWarp, kMaxTiledD = 128;

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int kColsPerLane>  // output columns per lane: dv <= 32 * kColsPerLane
__global__ void __launch_bounds__(kWarps * 32) attention_f32_tiled(const float* __restrict__ q,
                                                                   const float* __restrict__ k,
                                                                   const float* __restrict__ v,
                                                                   const void* __restrict__ mask,
                                                                   float* __restrict__ out, AttentionDims d) {
    __shared__ float qs[kTileQ][kMaxTiledD];
    __shared__ float ks[kTileK][kMaxTiledD + 1];
    __shared__ float vs[kTileK][kMaxTiledD];
    const AttentionOffsets ofs = attention_offsets(d, blockIdx.x);
    const int64_t mo = ofs.m;
    const float *qp = q + ofs.q, *kp = k + ofs.k, *vp = v + ofs.v;
    float* op = out + ofs.o;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nd = static_cast<int>(d.d);
    const int ndv = static_cast<int>(d.dv);
    const int64_t row0 = int64_t(blockIdx.y) * kTileQ;
    for (int idx = threadIdx.x; idx < kTileQ * nd; idx += blockDim.x) {
        int r = idx / nd, c = idx % nd;
        int64_t i = row0 + r;
        qs[r][c] = i < d.sq ? qp[i * d.q_row + c] * d.scale : 0.f;
    }
    float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kColsPerLane];
    for (int r = 0; r < kRowsPerWarp; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.f;
        for (int t = 0; t < kColsPerLane; ++t) acc[r][t] = 0.f;
    }
    for (int64_t j0 = 0; j0 < d.sk; j0 += kTileK) {
        __syncthreads();  // the previous tile is consumed (and, the first time, qs is written)
        for (int idx = threadIdx.x; idx < kTileK * nd; idx += blockDim.x) {
            int jj = idx / nd, c = idx % nd;
            int64_t j = j0 + jj;
            ks[jj][c] = j < d.sk ? (d.k_transposed ? kp[c * d.k_row + j] : kp[j * d.k_row + c]) : 0.f;
        }
        for (int idx = threadIdx.x; idx < kTileK * ndv; idx += blockDim.x) {
            int jj = idx / ndv, c = idx % ndv;
            int64_t j = j0 + jj;
            vs[jj][c] = j < d.sk ? vp[j * d.v_row + c] : 0.f;
        }
        __syncthreads();
        const int64_t j = j0 + lane;
        const bool valid = j < d.sk;
        for (int r = 0; r < kRowsPerWarp; ++r) {
            const int rr = warp * kRowsPerWarp + r;
            const int64_t i = row0 + rr;
            float sc = -INFINITY;  // keys past the end weigh exactly 0
            if (valid) {
                float a = 0.f;
                for (int c = 0; c < nd; ++c) a += qs[rr][c] * ks[lane][c];
                if (i < d.sq) a = masked_score(a, d, mask, mo, i, j);
                sc = a;
            }
            const float m_new = fmaxf(m[r], warp_max(sc));
            const float p = valid ? expf(sc - m_new) : 0.f;
            const float corr = expf(m[r] - m_new);
            l[r] = l[r] * corr + warp_sum(p);
            for (int t = 0; t < kColsPerLane; ++t) acc[r][t] *= corr;
            for (int jj = 0; jj < kTileK; ++jj) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
                for (int t = 0; t < kColsPerLane; ++t) {
                    int c = lane + 32 * t;
                    if (c < ndv) acc[r][t] += pj * vs[jj][c];
                }
            }
            m[r] = m_new;
        }
    }
    for (int r = 0; r < kRowsPerWarp; ++r) {
        int64_t i = row0 + warp * kRowsPerWarp + r;
        if (i >= d.sq) continue;
        float inv = 1.f / l[r];
        for (int t = 0; t < kColsPerLane; ++t) {
            int c = lane + 32 * t;
            if (c < ndv) op[i * d.o_row + c] = acc[r][t] * inv;
        }
    }
}

// Row softmax of the scaled scores S [batch, sq, sk] (fp32, from the Q K^T GEMM) plus the mask, written as the
// probabilities P in fp16/bf16 for the P V GEMM: one warp per row, statistics in fp32.
template <typename T>
__global__ void attention_softmax_low(const float* __restrict__ s, const void* __restrict__ mask, T* __restrict__ p,
                                      AttentionDims d, int64_t rows) {
    int64_t row = blockIdx.x * int64_t(blockDim.x / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    int64_t b = row / d.sq, i = row % d.sq;
    const int64_t mo = attention_offsets(d, b).m;
    const float* sr = s + row * d.sk;
    T* pr = p + row * d.sk;
    auto score = [&](int64_t j) { return masked_score(sr[j], d, mask, mo, i, j); };
    float mx = -INFINITY;
    for (int64_t j = lane; j < d.sk; j += 32) mx = fmaxf(mx, score(j));
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    for (int64_t j = lane; j < d.sk; j += 32) sum += mx == -INFINITY ? 0.f : __expf(score(j) - mx);
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = sum > 0.f ? 1.f / sum : 0.f;
    for (int64_t j = lane; j < d.sk; j += 32) {
        float e = mx == -INFINITY ? 0.f : __expf(score(j) - mx) * inv;
        if constexpr (sizeof(T) == 2 && std::is_same_v<T, __half>) pr[j] = __float2half(e);
        else pr[j] = __float2bfloat16(e);
    }
}

// K given transposed ([.., d, sk] per head, k_transposed) -> dense [nb, sk, d] of the reduced type, for the
// tensor-core kernel, which stages 16-byte key rows. 32 x 32 tiles through shared memory, so both the reads (along sk)
// and the writes (along d) are coalesced. blockIdx.z: the head-batch index.
template <typename TIn, typename T>
__global__ void k_rows_low(const TIn* __restrict__ k, T* __restrict__ dst, AttentionDims a) {
    __shared__ float tile[32][33];
    int64_t hb = blockIdx.z, off = a.k_base;
    for (int i = a.batch_rank - 1; i >= 0; --i) {
        off += (hb % a.batch[i]) * a.k_bstride[i];
        hb /= a.batch[i];
    }
    const int64_t r0 = int64_t(blockIdx.x) * 32, c0 = int64_t(blockIdx.y) * 32;  // key rows, head-dim columns
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {  // read: head-dim row c0 + j, keys r0 + threadIdx.x
        const int64_t c = c0 + j, r = r0 + threadIdx.x;
        tile[j][threadIdx.x] = c < a.d && r < a.sk ? to_f(k[off + c * a.k_row + r]) : 0.f;
    }
    __syncthreads();
    T* out = dst + int64_t(blockIdx.z) * a.sk * a.d;
    for (int j = threadIdx.y; j < 32; j += blockDim.y) {  // write: key row r0 + j, head-dim columns c0 + threadIdx.x
        const int64_t r = r0 + j, c = c0 + threadIdx.x;
        if (r < a.sk && c < a.d) from_f(out + r * a.d + c, tile[threadIdx.x][j]);
    }
}

}  // namespace

void launch_attention_softmax_low(const float* scores, const void* mask, void* probs, LowType t,
                                  const AttentionDims& d, int64_t rows, cudaStream_t s) {
    if (rows == 0 || d.sk == 0) return;
    constexpr int kRowsPerSoftmaxBlock = 4;
    unsigned grid = static_cast<unsigned>((rows + kRowsPerSoftmaxBlock - 1) / kRowsPerSoftmaxBlock);
    if (t == LowType::kBF16)
        attention_softmax_low<__nv_bfloat16><<<grid, 32 * kRowsPerSoftmaxBlock, 0, s>>>(
            scores, mask, static_cast<__nv_bfloat16*>(probs), d, rows);
    else
        attention_softmax_low<__half><<<grid, 32 * kRowsPerSoftmaxBlock, 0, s>>>(
            scores, mask, static_cast<__half*>(probs), d, rows);
}

void launch_attention_f32(const float* q, const float* k, const float* v, const void* mask, float* out,
                          const AttentionDims& d, cudaStream_t s) {
    int64_t nb = 1;
    for (int i = 0; i < d.batch_rank; ++i) nb *= d.batch[i];
    if (nb == 0 || d.sq == 0) return;
    if (d.d <= kMaxTiledD && d.dv <= kMaxTiledD && d.sk > 0) {
        dim3 grid(static_cast<unsigned>(nb), static_cast<unsigned>((d.sq + kTileQ - 1) / kTileQ));
        if (d.dv <= 32) attention_f32_tiled<1><<<grid, kWarps * 32, 0, s>>>(q, k, v, mask, out, d);
        else if (d.dv <= 64) attention_f32_tiled<2><<<grid, kWarps * 32, 0, s>>>(q, k, v, mask, out, d);
        else attention_f32_tiled<4><<<grid, kWarps * 32, 0, s>>>(q, k, v, mask, out, d);
        return;
    }
    size_t smem = static_cast<size_t>(d.sk + d.d) * sizeof(float);
    if (smem > 48 * 1024)
        cudaFuncSetAttribute(attention_f32_rowmajor, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem));
    dim3 grid(static_cast<unsigned>(nb), static_cast<unsigned>((d.sq + kRowsPerBlock - 1) / kRowsPerBlock));
    attention_f32_rowmajor<<<grid, kThreads, smem, s>>>(q, k, v, mask, out, d);
}

bool launch_k_rows_low(const void* k, bool k_low, void* dst, LowType t, const AttentionDims& d,
                       AttentionDims* dense, cudaStream_t s) {
    int64_t nb = 1;
    for (int i = 0; i < d.batch_rank; ++i) nb *= d.batch[i];
    if (!d.k_transposed || nb > 65535 || nb == 0 || d.sk == 0) return false;
    const dim3 grid(static_cast<unsigned>((d.sk + 31) / 32), static_cast<unsigned>((d.d + 31) / 32),
                    static_cast<unsigned>(nb));
    const dim3 block(32, 8);
    auto go = [&](auto in_tag, auto out_tag) {
        using TIn = decltype(in_tag);
        using T = decltype(out_tag);
        k_rows_low<TIn, T><<<grid, block, 0, s>>>(static_cast<const TIn*>(k), static_cast<T*>(dst), d);
    };
    if (t == LowType::kBF16) {
        if (k_low) go(__nv_bfloat16{}, __nv_bfloat16{});
        else go(float{}, __nv_bfloat16{});
    } else {
        if (k_low) go(__half{}, __half{});
        else go(float{}, __half{});
    }
    *dense = d;
    dense->k_transposed = false;
    dense->k_base = 0;
    dense->k_row = d.d;
    int64_t stride = d.sk * d.d;
    for (int i = d.batch_rank - 1; i >= 0; --i) {
        dense->k_bstride[i] = stride;
        stride *= d.batch[i];
    }
    return true;
}

}  // namespace kiln::cuda

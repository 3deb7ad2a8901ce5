// Fused attention on tensor cores: out = softmax(scale * Q K^T + mask) V with fp16/bf16 operands (mma.sync
// m16n8k16, fp32 accumulation) and fp32 softmax statistics, flash style (FlashAttention-2's register scheme).
//
// A block owns 16 query rows per warp of one head-batch entry. Its Q rows are staged once through shared memory
// into mma A fragments kept in registers. The keys are walked in tiles of 64: K (row-major, as the "col" B operand of
// S = Q K^T) and V (read as the B operand of O = P V by ldmatrix.trans) are staged in shared memory: 16-byte loads
// when the inputs are already fp16/bf16 with aligned rows, converted from fp32 otherwise. Each warp scores its 16 rows against the tile (S stays in registers), applies scale and mask,
// and updates an online softmax: the running max and sum per row rescale the output accumulators. The C fragment of
// S maps one to one onto the A fragment of P, so P never touches shared memory. Rows are read through the row
// strides of AttentionDims, so the head-packed layout ([b, s, h*d] rows, no head-split transposes) and the classic
// one run alike.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "src/backends/cuda/attention_common.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

// Keys per tile: with the keys split over the warps (small grids) 128 for head dims up to 64, so that BERT / GPT-2 at
// sequence 128 stage K and V once; 64 otherwise (a warp scoring 128 keys alone needs 209 registers, and halves the
// blocks per multiprocessor).
template <int D, bool kSplit>
__host__ __device__ constexpr int tile_keys() { return kSplit && D <= 64 ? 128 : 64; }
constexpr int kMaxWarps = 4;
constexpr int kThreads = kMaxWarps * 32;  // every launch
constexpr int kPad = 8;  // elements of padding per shared row: rows 16 bytes apart in bank terms, conflict-free

template <typename T>
__device__ __forceinline__ T to_low(float x) {
    if constexpr (std::is_same_v<T, __half>) return __float2half_rn(x);
    else return __float2bfloat16_rn(x);
}
template <typename T>
__device__ __forceinline__ float low_to_f32(T x) {
    if constexpr (std::is_same_v<T, __half>) return __half2float(x);
    else return __bfloat162float(x);
}
template <typename T, typename S>
__device__ __forceinline__ T load_as(const S* p, int64_t i) {
    if constexpr (std::is_same_v<S, float>) return to_low<T>(p[i]);
    else return p[i];
}
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    uint32_t r;
    if constexpr (std::is_same_v<T, __half>) {
        __half2 h = __floats2half2_rn(lo, hi);
        r = *reinterpret_cast<uint32_t*>(&h);
    } else {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        r = *reinterpret_cast<uint32_t*>(&h);
    }
    return r;
}
template <typename T>
__device__ __forceinline__ uint32_t ld32(const T* p) {
    return *reinterpret_cast<const uint32_t*>(p);
}

// The B fragment of a 16x8 (k x n) tile stored row-major [k][n] in shared memory: lanes 0-15 give the addresses of
// rows k = 0..15 (8 contiguous elements each); .trans hands each lane its (k = 2 (lane % 4) + {0, 1}, n = lane / 4)
// pairs, the mma B layout.
template <typename T>
__device__ __forceinline__ void ldmatrix_x2_trans(const T* row, uint32_t* b0, uint32_t* b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(*b0), "=r"(*b1) : "r"(addr));
#endif
}

// c += a (16x16, row) * b (16x8, col), fp32 accumulators
template <typename T>
__device__ __forceinline__ void mma16816(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (std::is_same_v<T, __half>)
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    else
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// 16-byte asynchronous copy global -> shared (cp.async, no registers, all of a tile in flight at once); `valid`
// false fills the 16 bytes with zeros instead.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(bytes));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
#endif
}

// 16-byte staging (inputs already of type T, rows and offsets multiples of 8 elements): rows [r0, r0 + kRows) of a
// [rows, cols] matrix at `base` with row stride `row` into dst[r][c] (zeros past `rows` / `cols`). The block's kThreads
// threads each own one 16-byte column chunk and walk the rows kThreads / (D / 8) at a time, so the addresses are set
// up once. Asynchronous: commit, wait and a barrier before reading dst.
template <typename T, int D, int kRows, typename TIn>
__device__ __forceinline__ void stage_rows(const TIn* src, int64_t base, int64_t row, int64_t r0, int64_t rows,
                                           int cols, T (*dst)[D + kPad]) {
    if constexpr (std::is_same_v<TIn, T>) {
        constexpr int kChunks = D / 8, kStep = kThreads / kChunks;
        const int c = static_cast<int>(threadIdx.x) % kChunks * 8, r = static_cast<int>(threadIdx.x) / kChunks;
        const bool col_ok = c < cols;
        const int64_t left = rows - r0 - r;  // valid rows from this thread's first one
        const TIn* p = src + base + (r0 + r) * row + c;
#pragma unroll
        for (int it = 0; it * kStep < kRows; ++it) {
            if (kRows % kStep != 0 && r + it * kStep >= kRows) break;
            const bool valid = col_ok && it * kStep < left;
            cp_async16(&dst[r + it * kStep][c], valid ? p + it * kStep * row : src, valid);
        }
    }
}

// T: the operand type; D: head dims padded to a multiple of 16 (d, dv <= D); TIn: Q/K/V storage (float or T);
// TOut: out storage (float or T). kSplit: the block's warps share 16 query rows and split each key tile (a quarter
// each), then merge their partial softmax states through shared memory: 4x the warps for small grids (BERT at
// batch 1: 96 row blocks for 132 multiprocessors), whose single warp per SM would leave every latency exposed.
template <typename T, int D, typename TIn, typename TOut, bool kSplit>
__global__ void __launch_bounds__(kThreads) attention_mma(const TIn* __restrict__ q, const TIn* __restrict__ k,
                                                                const TIn* __restrict__ v,
                                                                const void* __restrict__ mask,
                                                                TOut* __restrict__ out, AttentionDims d,
                                                                bool vec) {
    pdl_wait();  // launched with launch_pdl(): Q, K, V and the mask come from the kernels before
    pdl_launch_dependents();
    // dynamic shared memory: Q rows [64][D + kPad], then the K and V tiles [kKeys][D + kPad] (V read as the B
    // operand through ldmatrix.trans); kSplit reuses the K/V region for the warps' partial results
    constexpr int kKeys = tile_keys<D, kSplit>();
    using Row = T[D + kPad];
    extern __shared__ __align__(16) unsigned char smem_raw[];
    Row* qs = reinterpret_cast<Row*>(smem_raw);
    Row* ks = qs + kMaxWarps * 16;
    Row* vs = ks + kKeys;
    constexpr int kNt = kSplit ? kKeys / 8 / kMaxWarps : kKeys / 8;  // 8-key score tiles per warp and key tile
    constexpr int kQRows = kSplit ? 16 : 16 * kMaxWarps;                // query rows per block
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t4 = lane & 3;  // mma fragment coordinates: row group, thread in group
    const AttentionOffsets ofs = attention_offsets(d, blockIdx.x);
    const int my_rows = kSplit ? 0 : warp * 16;    // this warp's first row within the block's
    const int key0 = kSplit ? warp * kNt * 8 : 0;  // this warp's first key within each tile
    const int64_t row0 = int64_t(blockIdx.y) * kQRows;
    const int nd = static_cast<int>(d.d), ndv = static_cast<int>(d.dv), sk = static_cast<int>(d.sk);

    // K / V tile at key j0 -> ks / vs: 16-byte copies in flight (commit, wait and a barrier follow), or element by
    // element (fp32 inputs, unaligned rows); consecutive threads read consecutive addresses, along a key row or
    // along the keys of a transposed K
    auto stage_k = [&](int j0) {
        if (vec) return stage_rows<T, D, kKeys>(k, ofs.k, d.k_row, j0, d.sk, nd, ks);
#pragma unroll 4
        for (int idx = threadIdx.x; idx < kKeys * D; idx += kThreads) {
            const int jj = d.k_transposed ? idx % kKeys : idx / D, c = d.k_transposed ? idx / kKeys : idx % D;
            const int64_t j = j0 + jj;
            ks[jj][c] = j < d.sk && c < nd
                            ? load_as<T>(k, ofs.k + (d.k_transposed ? c * d.k_row + j : j * d.k_row + c))
                            : to_low<T>(0.f);
        }
    };
    auto stage_v = [&](int j0) {
        if (vec) return stage_rows<T, D, kKeys>(v, ofs.v, d.v_row, j0, d.sk, ndv, vs);
#pragma unroll 4
        for (int idx = threadIdx.x; idx < kKeys * D; idx += kThreads) {
            const int jj = idx / D, c = idx % D;
            const int64_t j = j0 + jj;
            vs[jj][c] = j < d.sk && c < ndv ? load_as<T>(v, ofs.v + j * d.v_row + c) : to_low<T>(0.f);
        }
    };
    // Q with the first K tile in one copy group and the first V tile in a second: the scores start while V is on
    // its way
    if (vec) {
        stage_rows<T, D, kQRows>(q, ofs.q, d.q_row, row0, d.sq, nd, qs);
    } else {
        for (int idx = threadIdx.x; idx < kQRows * D; idx += kThreads) {
            const int r = idx / D, c = idx % D;
            const int64_t i = row0 + r;
            qs[r][c] = i < d.sq && c < nd ? load_as<T>(q, ofs.q + i * d.q_row + c) : to_low<T>(0.f);
        }
    }
    stage_k(0);
    cp_async_commit();
    stage_v(0);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        const int r = my_rows + g, c = kk * 16 + t4 * 2;
        qf[kk][0] = ld32(&qs[r][c]);
        qf[kk][1] = ld32(&qs[r + 8][c]);
        qf[kk][2] = ld32(&qs[r][c + 8]);
        qf[kk][3] = ld32(&qs[r + 8][c + 8]);
    }
    float o[D / 8][4];
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f};  // rows g and g + 8 of the warp
    const int64_t i_row[2] = {row0 + my_rows + g, row0 + my_rows + g + 8};
    // the mask rows of this thread's two query rows (rows past the end read the last one; they are never stored)
    int64_t m_row[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) m_row[h] = ofs.m + (i_row[h] < d.sq ? i_row[h] : d.sq - 1) * d.m_row_stride;

    for (int j0 = 0; j0 < sk; j0 += kKeys) {
        if (j0 > 0) {
            __syncthreads();  // the previous tile is consumed
            stage_k(j0);
            cp_async_commit();
            stage_v(j0);
            cp_async_commit();
            cp_async_wait<1>();
            __syncthreads();
        }
        // S = Q K^T for this warp's 16 rows and its keys of the tile
        float s[kNt][4];
#pragma unroll
        for (int nt = 0; nt < kNt; ++nt) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; ++kk) {
                const T* kr = &ks[key0 + nt * 8 + g][kk * 16 + t4 * 2];
                mma16816<T>(s[nt], qf[kk], ld32(kr), ld32(kr + 8));
            }
        }
        // scale, mask, keys past the end; the tile's row max
        float mx[2] = {m_run[0], m_run[1]};
#pragma unroll
        for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int j = j0 + key0 + nt * 8 + t4 * 2 + (e & 1);
                float x = s[nt][e] * d.scale;
                if (j >= sk) {
                    x = -INFINITY;
                } else if (d.has_mask) {
                    const int64_t m = m_row[e >> 1] + j * d.m_col_stride;
                    if (d.mask_bool) x = static_cast<const uint8_t*>(mask)[m] ? x : -3.402823466e38f;
                    else x += static_cast<const float*>(mask)[m];
                }
                s[nt][e] = x;
                mx[e >> 1] = fmaxf(mx[e >> 1], x);
            }
        float corr[2], base[2];
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
            mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
            base[h] = mx[h] == -INFINITY ? 0.f : mx[h];
            corr[h] = __expf(m_run[h] - base[h]);
            m_run[h] = mx[h];
            l_run[h] *= corr[h];
        }
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt) {
            o[nt][0] *= corr[0];
            o[nt][1] *= corr[0];
            o[nt][2] *= corr[1];
            o[nt][3] *= corr[1];
        }
        cp_async_wait<0>();
        __syncthreads();  // the V tile is in
        // P = exp(S - max) as A fragments (two score tiles per 16 keys), O += P V
#pragma unroll
        for (int kk = 0; kk < kNt / 2; ++kk) {
            float p[2][4];
#pragma unroll
            for (int h = 0; h < 2; ++h)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    p[h][e] = __expf(s[2 * kk + h][e] - base[e >> 1]);
                    l_run[e >> 1] += p[h][e];
                }
            uint32_t a[4] = {pack2<T>(p[0][0], p[0][1]), pack2<T>(p[0][2], p[0][3]), pack2<T>(p[1][0], p[1][1]),
                             pack2<T>(p[1][2], p[1][3])};
#pragma unroll
            for (int nt = 0; nt < D / 8; ++nt) {
                uint32_t b0, b1;
                ldmatrix_x2_trans(&vs[key0 + kk * 16 + (lane & 15)][nt * 8], &b0, &b1);
                mma16816<T>(o[nt], a, b0, b1);
            }
        }
    }
    // the row sums are spread over the 4 threads of each row group
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 1);
        l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 2);
    }
    auto store = [&](int64_t i, int c, float val) {
        if constexpr (std::is_same_v<TOut, float>) out[ofs.o + i * d.o_row + c] = val;
        else out[ofs.o + i * d.o_row + c] = to_low<T>(val);
    };
    if constexpr (!kSplit) {
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int c = nt * 8 + t4 * 2 + (e & 1);
                const int64_t i = i_row[e >> 1];
                const float l = l_run[e >> 1];
                if (c < ndv && i < d.sq) store(i, c, l > 0.f ? o[nt][e] / l : 0.f);
            }
    } else {
        // merge the warps' states (max m_w, sum l_w, unnormalised o_w per row): m = max m_w,
        // out = sum_w o_w e^(m_w - m) / sum_w l_w e^(m_w - m). Partial outputs go to the K/V region (rows of D + 8
        // floats: the float2 stores of a half-warp hit 32 distinct banks), the statistics to the Q region.
        constexpr int kRed = D + 8;
        static_assert(kMaxWarps * 16 * kRed * 4 <= 2 * kKeys * (D + kPad) * int(sizeof(T)), "merge buffer");
        __syncthreads();  // every warp is done with the tiles
        float* red_o = reinterpret_cast<float*>(&ks[0][0]);  // [warps][16][kRed]
        float* red_m = reinterpret_cast<float*>(&qs[0][0]);  // [warps][16]
        float* red_l = red_m + kMaxWarps * 16;
#pragma unroll
        for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h)
                *reinterpret_cast<float2*>(&red_o[(warp * 16 + g + 8 * h) * kRed + nt * 8 + t4 * 2]) =
                    make_float2(o[nt][2 * h], o[nt][2 * h + 1]);
        if (t4 == 0)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                red_m[warp * 16 + g + 8 * h] = m_run[h];
                red_l[warp * 16 + g + 8 * h] = l_run[h];
            }
        __syncthreads();
        // 8 threads per row, each with 4 consecutive columns of every 32 (a quarter-warp reads 32 distinct banks)
        const int r = threadIdx.x >> 3, cq = (threadIdx.x & 7) * 4;
        const int64_t i = row0 + r;
        float m = -INFINITY;
#pragma unroll
        for (int w = 0; w < kMaxWarps; ++w) m = fmaxf(m, red_m[w * 16 + r]);
        float f[kMaxWarps], l = 0.f;
#pragma unroll
        for (int w = 0; w < kMaxWarps; ++w) {
            f[w] = red_m[w * 16 + r] == -INFINITY ? 0.f : __expf(red_m[w * 16 + r] - m);
            l += red_l[w * 16 + r] * f[w];
        }
        const float inv = l > 0.f ? 1.f / l : 0.f;
        if (i < d.sq)
#pragma unroll
            for (int part = 0; part < D / 32; ++part) {
                const int c = part * 32 + cq;
                float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
                for (int w = 0; w < kMaxWarps; ++w) {
                    const float4 x = *reinterpret_cast<const float4*>(&red_o[(w * 16 + r) * kRed + c]);
                    acc[0] += f[w] * x.x;
                    acc[1] += f[w] * x.y;
                    acc[2] += f[w] * x.z;
                    acc[3] += f[w] * x.w;
                }
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    if (c + e < ndv) store(i, c + e, acc[e] * inv);
            }
    }
}

template <typename T, int D>
void launch_typed(const void* q, const void* k, const void* v, bool in_low, const void* mask, void* out,
                  bool out_low, const AttentionDims& d, dim3 grid, int threads, bool split, bool vec, cudaStream_t s) {
    auto go = [&](auto in_tag, auto out_tag) {
        using TIn = decltype(in_tag);
        using TOut = decltype(out_tag);
        auto kernel = split ? attention_mma<T, D, TIn, TOut, true> : attention_mma<T, D, TIn, TOut, false>;
        const int keys = split ? tile_keys<D, true>() : tile_keys<D, false>();
        const int smem = (kMaxWarps * 16 + 2 * keys) * (D + kPad) * static_cast<int>(sizeof(T));
        if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
        launch_pdl(kernel, grid, dim3(threads), static_cast<size_t>(smem), s, static_cast<const TIn*>(q),
                   static_cast<const TIn*>(k), static_cast<const TIn*>(v), mask, static_cast<TOut*>(out), d,
                   vec && std::is_same_v<TIn, T>);
    };
    if (in_low && out_low) go(T{}, T{});
    else if (in_low) go(T{}, float{});
    else if (out_low) go(float{}, T{});
    else go(float{}, float{});
}

}  // namespace

bool attention_mma_fits(int64_t d, int64_t dv) {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) !=
                                                  cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return major >= 8 && d > 0 && dv > 0 && d % 16 == 0 && dv % 16 == 0 && d <= 128 && dv <= 128;
}

void launch_attention_mma(const void* q, const void* k, const void* v, bool in_low, const void* mask, void* out,
                          bool out_low, LowType t, const AttentionDims& d, int sms, cudaStream_t s) {
    int64_t nb = 1;
    for (int i = 0; i < d.batch_rank; ++i) nb *= d.batch[i];
    if (nb == 0 || d.sq == 0) return;
    // 4 warps per block: each with its own 16 query rows (64 per block) when that still fills the GPU twice over,
    // else all four on the same 16 rows, splitting the keys (BERT-base at batch 1: 12 heads x 128 rows)
    const bool split = nb * ((d.sq + 63) / 64) < 2 * sms;
    const int rows_per_block = split ? 16 : 16 * kMaxWarps;
    dim3 grid(static_cast<unsigned>(nb), static_cast<unsigned>((d.sq + rows_per_block - 1) / rows_per_block));
    const int threads = kThreads;
    // 16-byte loads when every row and offset is a multiple of 8 elements of 16-byte aligned tensors
    bool vec = in_low && !d.k_transposed && d.d % 8 == 0 && d.dv % 8 == 0;
    for (int64_t x : {d.q_row, d.k_row, d.v_row, d.q_base, d.k_base, d.v_base}) vec &= x % 8 == 0;
    for (int i = 0; i < d.batch_rank; ++i) vec &= d.q_bstride[i] % 8 == 0 && d.k_bstride[i] % 8 == 0 &&
                                                 d.v_bstride[i] % 8 == 0;
    for (const void* p : {q, k, v}) vec &= reinterpret_cast<uintptr_t>(p) % 16 == 0;
    const bool wide = d.d > 64 || d.dv > 64;
    if (t == LowType::kBF16) {
        if (wide) launch_typed<__nv_bfloat16, 128>(q, k, v, in_low, mask, out, out_low, d, grid, threads, split, vec, s);
        else launch_typed<__nv_bfloat16, 64>(q, k, v, in_low, mask, out, out_low, d, grid, threads, split, vec, s);
    } else {
        if (wide) launch_typed<__half, 128>(q, k, v, in_low, mask, out, out_low, d, grid, threads, split, vec, s);
        else launch_typed<__half, 64>(q, k, v, in_low, mask, out, out_low, d, grid, threads, split, vec, s);
    }
}

}  // namespace kiln::cuda

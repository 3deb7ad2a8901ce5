// Attention(Q, K, V, mask?) = softmax(scale * Q @ K^T + mask) @ V, fused: per (batch*head, block of 32 query rows)
// a task computes the block's scores S = scale * Q K^T into a small buffer, applies mask and softmax row by row, and
// multiplies P @ V, so the [seq_q, seq_k] score matrix is never materialised. Both products run through one
// register-blocked kernel (up to 6 rows x 64 columns of fp32 accumulators, AVX-512; a plain loop elsewhere).
// Q, K, V and the output are addressed through attention_geometry.h, so the head-packed layout (`num_heads`: heads
// read in place from [b, s, h*d] rows, e.g. straight from the projection MatMuls) costs nothing extra.
// With --bf16 both products take bf16 operands (Q, K, V and the softmax numerators P rounded to bf16, K and V
// re-laid as pairs along the reduction dim for vdpbf16ps) and accumulate in fp32; mask and softmax stay fp32.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "src/backends/attention_geometry.h"
#include "src/backends/cpu/bf16.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/backends/cpu/vec_math.h"
#include "src/ops/shape_utils.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KILN_ATTN_AVX512 1
#endif

namespace kiln::backends::cpu {

namespace {

constexpr int64_t kQueryBlock = 32;
constexpr int kMaxRows = 6;  // rows of the register block: 6 x 4 accumulators + 4 B vectors fit 32 zmm registers

// C[r, :ncols] = scale[r] * (A[r, :kdim] @ B[:kdim, :ncols]) for r < rows; A, B, C row-major with leading dims.
struct Gemm {
    const float* a;
    int64_t lda;
    const float* b;
    int64_t ldb;
    float* c;
    int64_t ldc;
    int64_t kdim, ncols;
    const float* scale;  // [rows]
};

void gemm_rows_plain(const Gemm& g, int rows) {
    for (int r = 0; r < rows; ++r) {
        float* c = g.c + r * g.ldc;
        for (int64_t j = 0; j < g.ncols; ++j) c[j] = 0.f;
        for (int64_t k = 0; k < g.kdim; ++k) {
            const float x = g.a[r * g.lda + k];
            const float* b = g.b + k * g.ldb;
            for (int64_t j = 0; j < g.ncols; ++j) c[j] += x * b[j];
        }
        for (int64_t j = 0; j < g.ncols; ++j) c[j] *= g.scale[r];
    }
}

#ifdef KILN_ATTN_AVX512
__attribute__((target("avx512f"))) inline __mmask16 tail_mask(int64_t rem) {
    return rem >= 16 ? static_cast<__mmask16>(0xFFFF) : rem <= 0 ? 0 : static_cast<__mmask16>((1u << rem) - 1);
}

// Columns [j_begin, ncols) of R rows, 16 NV at a time (vectors past ncols masked). The same shape as the kernel
// before it took NV: written differently (one tile per call), GCC stored the accumulators on every step of k.
template <int R, int NV>
__attribute__((target("avx512f"))) void gemm_cols_avx512(const Gemm& g, int64_t j_begin) {
    for (int64_t j0 = j_begin; j0 < g.ncols; j0 += 16 * NV) {
        __mmask16 m[NV];
        for (int t = 0; t < NV; ++t) m[t] = tail_mask(g.ncols - j0 - 16 * t);
        __m512 acc[R][NV];
        for (int r = 0; r < R; ++r)
            for (int t = 0; t < NV; ++t) acc[r][t] = _mm512_setzero_ps();
        const float* bp = g.b + j0;
        for (int64_t k = 0; k < g.kdim; ++k, bp += g.ldb) {
            __m512 bv[NV];
            for (int t = 0; t < NV; ++t) bv[t] = _mm512_maskz_loadu_ps(m[t], bp + 16 * t);
            for (int r = 0; r < R; ++r) {
                const __m512 av = _mm512_set1_ps(g.a[r * g.lda + k]);
                for (int t = 0; t < NV; ++t) acc[r][t] = _mm512_fmadd_ps(av, bv[t], acc[r][t]);
            }
        }
        for (int r = 0; r < R; ++r) {
            const __m512 sc = _mm512_set1_ps(g.scale[r]);
            for (int t = 0; t < NV; ++t)
                _mm512_mask_storeu_ps(g.c + r * g.ldc + j0 + 16 * t, m[t], _mm512_mul_ps(acc[r][t], sc));
        }
    }
}

// 64 columns at a time, then the rest with only as many vectors as columns remain (a key length of 197 ends in
// one of 5 columns: one masked vector instead of four).
template <int R>
__attribute__((target("avx512f"))) void gemm_rows_avx512(const Gemm& g) {
    const int64_t full = g.ncols / 64 * 64;
    if (full > 0) {
        Gemm h = g;
        h.ncols = full;
        gemm_cols_avx512<R, 4>(h, 0);
    }
    switch ((g.ncols - full + 15) / 16) {
        case 0: break;
        case 1: gemm_cols_avx512<R, 1>(g, full); break;
        case 2: gemm_cols_avx512<R, 2>(g, full); break;
        case 3: gemm_cols_avx512<R, 3>(g, full); break;
        default: gemm_cols_avx512<R, 4>(g, full); break;
    }
}
#endif

// The whole block of `rows` rows, kMaxRows at a time.
void gemm_block(Gemm g, int64_t rows) {
#ifdef KILN_ATTN_AVX512
    static const bool kAvx512 = __builtin_cpu_supports("avx512f");
#else
    constexpr bool kAvx512 = false;
#endif
    for (int64_t r0 = 0; r0 < rows; r0 += kMaxRows) {
        const int n = static_cast<int>(std::min<int64_t>(kMaxRows, rows - r0));
        Gemm h = g;
        h.a = g.a + r0 * g.lda;
        h.c = g.c + r0 * g.ldc;
        h.scale = g.scale + r0;
        if (!kAvx512) {
            gemm_rows_plain(h, n);
            continue;
        }
#ifdef KILN_ATTN_AVX512
        switch (n) {
            case 1: gemm_rows_avx512<1>(h); break;
            case 2: gemm_rows_avx512<2>(h); break;
            case 3: gemm_rows_avx512<3>(h); break;
            case 4: gemm_rows_avx512<4>(h); break;
            case 5: gemm_rows_avx512<5>(h); break;
            default: gemm_rows_avx512<6>(h); break;
        }
#endif
    }
}

// --- bf16: C[r, :ncols] = scale[r] * sum_k A[r, k] B[k, :ncols] with A as bf16 rows (an even number of entries,
// zero padded) and B as pairs: b[k2 * ldb + j] holds B[2 k2, j] (low half) and B[2 k2 + 1, j] (high half).
struct GemmBf16 {
    const uint16_t* a;
    int64_t lda;  // in bf16 entries (even)
    const uint32_t* b;
    int64_t ldb;  // in pairs
    float* c;
    int64_t ldc;
    int64_t kdim2, ncols;  // pairs along the reduction, columns
    const float* scale;
};

// Round to nearest even (quiet NaN kept), inline so that the packing loops vectorise.
inline uint16_t to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
    return static_cast<uint16_t>((x & 0x7fffffffu) > 0x7f800000u ? (x >> 16) | 0x40u : rounded);
}

inline uint32_t pair(float lo, float hi) { return uint32_t{to_bf16(lo)} | (uint32_t{to_bf16(hi)} << 16); }

// rows x n floats (row stride ld) -> rows x n2 bf16 with n2 = n rounded up to even, zero padded
KILN_CPU_MULTIVERSION void rows_to_bf16(const float* x, int64_t ld, int64_t rows, int64_t n, uint16_t* out,
                                        int64_t n2) {
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < n; ++j) out[r * n2 + j] = to_bf16(x[r * ld + j]);
        for (int64_t j = n; j < n2; ++j) out[r * n2 + j] = 0;
    }
}

// out[j] = (lo[j], hi[j]) for j < n; hi == nullptr reads zeros (the padding row of an odd count).
KILN_CPU_MULTIVERSION void interleave(const float* lo, const float* hi, int64_t n, uint32_t* out) {
    if (hi) {
        for (int64_t j = 0; j < n; ++j) out[j] = pair(lo[j], hi[j]);
    } else {
        for (int64_t j = 0; j < n; ++j) out[j] = to_bf16(lo[j]);
    }
}

// K^T as pairs: out[c2 * sk + j] = (K[j, 2 c2], K[j, 2 c2 + 1]); K is [sk, d] or, when `kt`, already [d, sk]
// (rows `ld` apart either way).
KILN_CPU_MULTIVERSION void pack_k(const float* k, int64_t ld, bool kt, int64_t sk, int64_t d, uint32_t* out) {
    const int64_t d2 = (d + 1) / 2;
    if (kt) {  // rows 2 c2 and 2 c2 + 1 of K^T are contiguous
        for (int64_t c2 = 0; c2 < d2; ++c2)
            interleave(k + 2 * c2 * ld, 2 * c2 + 1 < d ? k + (2 * c2 + 1) * ld : nullptr, sk, out + c2 * sk);
        return;
    }
    // row j of K holds column j of every output row: read it contiguously, write with stride sk
    for (int64_t j = 0; j < sk; ++j) {
        const float* row = k + j * ld;
        for (int64_t c2 = 0; c2 < d / 2; ++c2) out[c2 * sk + j] = pair(row[2 * c2], row[2 * c2 + 1]);
        if (d % 2) out[(d2 - 1) * sk + j] = to_bf16(row[d - 1]);
    }
}

// V as pairs of rows: out[j2 * dv + c] = (V[2 j2, c], V[2 j2 + 1, c]); V's rows are `ld` apart.
void pack_v(const float* v, int64_t ld, int64_t sk, int64_t dv, uint32_t* out) {
    for (int64_t j2 = 0; j2 < (sk + 1) / 2; ++j2)
        interleave(v + 2 * j2 * ld, 2 * j2 + 1 < sk ? v + (2 * j2 + 1) * ld : nullptr, dv, out + j2 * dv);
}

#ifdef KILN_ATTN_AVX512
template <int R>
__attribute__((target("avx512f,avx512bf16"))) void gemm_rows_bf16(const GemmBf16& g) {
    for (int64_t j0 = 0; j0 < g.ncols; j0 += 64) {
        __mmask16 m[4];
        for (int t = 0; t < 4; ++t) m[t] = tail_mask(g.ncols - j0 - 16 * t);
        __m512 acc[R][4];
        for (int r = 0; r < R; ++r)
            for (int t = 0; t < 4; ++t) acc[r][t] = _mm512_setzero_ps();
        const uint32_t* bp = g.b + j0;
        for (int64_t k2 = 0; k2 < g.kdim2; ++k2, bp += g.ldb) {
            __m512i bv[4];
            for (int t = 0; t < 4; ++t) bv[t] = _mm512_maskz_loadu_epi32(m[t], bp + 16 * t);
            for (int r = 0; r < R; ++r) {
                uint32_t ap;
                std::memcpy(&ap, g.a + r * g.lda + 2 * k2, 4);
                const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(ap)));
                for (int t = 0; t < 4; ++t)
                    acc[r][t] = _mm512_dpbf16_ps(acc[r][t], av, reinterpret_cast<__m512bh>(bv[t]));
            }
        }
        for (int r = 0; r < R; ++r) {
            const __m512 sc = _mm512_set1_ps(g.scale[r]);
            for (int t = 0; t < 4; ++t)
                _mm512_mask_storeu_ps(g.c + r * g.ldc + j0 + 16 * t, m[t], _mm512_mul_ps(acc[r][t], sc));
        }
    }
}
#endif

// Only reached when cpu_has_bf16() (the plan's precision check guarantees it).
void gemm_block_bf16(GemmBf16 g, int64_t rows) {
#ifdef KILN_ATTN_AVX512
    for (int64_t r0 = 0; r0 < rows; r0 += kMaxRows) {
        GemmBf16 h = g;
        h.a = g.a + r0 * g.lda;
        h.c = g.c + r0 * g.ldc;
        h.scale = g.scale + r0;
        switch (std::min<int64_t>(kMaxRows, rows - r0)) {
            case 1: gemm_rows_bf16<1>(h); break;
            case 2: gemm_rows_bf16<2>(h); break;
            case 3: gemm_rows_bf16<3>(h); break;
            case 4: gemm_rows_bf16<4>(h); break;
            case 5: gemm_rows_bf16<5>(h); break;
            default: gemm_rows_bf16<6>(h); break;
        }
    }
#else
    KILN_FAIL(kUnsupported, "bf16 attention needs AVX512-BF16");
#endif
}

#ifdef KILN_ATTN_AVX512
// exp_approx (vec_math.h) on 16 lanes: the same range reduction and polynomial.
__attribute__((target("avx512f"))) inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.f), _mm512_min_ps(x, _mm512_set1_ps(88.f)));
    const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504089f), _mm512_set1_ps(0.5f)),
                                          _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(0.0013888889f);
    for (float c : {0.008333337f, 0.041666668f, 0.16666666f, 0.5f, 1.f, 1.f}) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

// s = exp(s - max(s)) in place; returns 1 / sum.
__attribute__((target("avx512f"))) float exp_normalise_avx512(float* s, int64_t sk) {
    const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    __m512 vmax = lowest;
    for (int64_t j = 0; j < sk; j += 16)
        vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(lowest, tail_mask(sk - j), s + j));
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < sk; j += 16) {
        const __mmask16 m = tail_mask(sk - j);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), mx));
        _mm512_mask_storeu_ps(s + j, m, e);
        sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    return 1.f / _mm512_reduce_add_ps(sum);
}
#endif

// s[:sk] += mask, then s = exp(s - max(s)); returns 1 / sum (the row's normalisation, applied after P @ V).
KILN_CPU_MULTIVERSION float softmax_row(float* s, int64_t sk, const float* mask_f, const uint8_t* mask_b,
                                        int64_t mask_stride) {
    if (mask_f)
        for (int64_t j = 0; j < sk; ++j) s[j] += mask_f[j * mask_stride];
    if (mask_b)
        for (int64_t j = 0; j < sk; ++j) s[j] = mask_b[j * mask_stride] ? s[j] : std::numeric_limits<float>::lowest();
#ifdef KILN_ATTN_AVX512
    static const bool kAvx512 = __builtin_cpu_supports("avx512f");
    if (kAvx512) return exp_normalise_avx512(s, sk);  // the loops below vectorise poorly (max reduction, floor)
#endif
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < sk; ++j) mx = std::max(mx, s[j]);
    float acc[16] = {};
    int64_t j = 0;
    for (; j + 16 <= sk; j += 16)
        for (int l = 0; l < 16; ++l) acc[l] += (s[j + l] = exp_approx(s[j + l] - mx));
    float sum = 0.f;
    for (; j < sk; ++j) sum += (s[j] = exp_approx(s[j] - mx));
    for (float a : acc) sum += a;
    return 1.f / sum;
}

// out[r, :n] = x[r * ld, :n] for r < rows.
void copy_rows(const float* x, int64_t ld, int64_t rows, int64_t n, float* out) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * n, x + r * ld, n * sizeof(float));
}

// kt[c, j] = k[j, c] for a [sk, d] K with rows `ld` apart.
KILN_CPU_MULTIVERSION void transpose(const float* k, int64_t ld, float* kt, int64_t sk, int64_t d) {
    for (int64_t j = 0; j < sk; ++j)
        for (int64_t c = 0; c < d; ++c) kt[c * sk + j] = k[j * ld + c];
}

}  // namespace

bool supports_attention(const KernelNode& node) {
    if (node.inputs.size() > 3 && node.inputs[3].present) {
        bool mask_bool = node.attrs.get_int("mask_is_bool", 0) != 0;
        if (node.inputs[3].dtype != (mask_bool ? DataType::kBool : DataType::kFloat32)) return false;
    }
    return node.inputs[0].rank() >= 2;
}

std::unique_ptr<Kernel> make_cpu_attention(const KernelNode& node) {
    const bool mask_bool = node.attrs.get_int("mask_is_bool", 0) != 0;
    const float scale_attr = node.attrs.get_float("scale", 0.f);
    const bool bf16 = node.precision == "bf16" && cpu_has_bf16();
    const AttributeMap attrs = node.attrs;
    const std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& q = *a.inputs[0];
            const Tensor& k = *a.inputs[1];
            const Tensor& v = *a.inputs[2];
            const Tensor* mask = a.inputs.size() > 3 ? a.inputs[3] : nullptr;
            Tensor& out = *a.outputs[0];
            const AttentionGeometry g =
                attention_geometry(attrs, q.shape(), k.shape(), v.shape(), mask ? &mask->shape() : nullptr, where);
            const int64_t sq = g.sq, d = g.d, sk = g.sk, dv = g.dv;
            const bool kt = g.kt;
            const float scale = scale_attr != 0.f ? scale_attr : 1.f / std::sqrt(static_cast<float>(d));
            const size_t nbd = g.batch.size();
            const int64_t nb = g.count(), nblk = (sq + kQueryBlock - 1) / kQueryBlock;
            parallel_for(nb * nblk, a.num_threads, [&](int64_t begin, int64_t end) {
                thread_local std::vector<float> kt_buf, s_buf, q_buf, v_buf;
                thread_local std::vector<uint32_t> k2_buf, v2_buf;
                thread_local std::vector<uint16_t> a16_buf;
                s_buf.resize(kQueryBlock * (sk + 1));
                int64_t cached_ko = -1, cached_vo = -1;
                for (int64_t t = begin; t < end; ++t) {
                    const int64_t b = t / nblk, blk = t % nblk;
                    const AttentionGeometry::Offsets o = g.offsets(b);
                    const int64_t i0 = blk * kQueryBlock, rows = std::min(sq, i0 + kQueryBlock) - i0;
                    float* sb = s_buf.data();
                    float* inv = s_buf.data() + kQueryBlock * sk;
                    for (int64_t row = 0; row < rows; ++row) inv[row] = scale;
                    const float* qp = q.data<float>() + o.q + i0 * g.q_row;
                    const float* kp = k.data<float>() + o.k;
                    const float* vp = v.data<float>() + o.v;
                    float* op = out.data<float>() + o.o + i0 * g.o_row;
                    const int64_t d2 = (d + 1) / 2, sk2 = (sk + 1) / 2;
                    if (bf16) {  // S = scale * Q K^T
                        k2_buf.resize(d2 * sk);
                        v2_buf.resize(sk2 * dv);
                        a16_buf.resize(kQueryBlock * 2 * std::max(d2, sk2));
                        if (cached_ko != o.k) pack_k(kp, g.k_row, kt, sk, d, k2_buf.data());
                        if (cached_vo != o.v) pack_v(vp, g.v_row, sk, dv, v2_buf.data());
                        cached_ko = o.k;
                        cached_vo = o.v;
                        rows_to_bf16(qp, g.q_row, rows, d, a16_buf.data(), 2 * d2);
                        gemm_block_bf16({a16_buf.data(), 2 * d2, k2_buf.data(), sk, sb, sk, d2, sk, inv}, rows);
                    } else {
                        const float* ktp = kp;
                        if (!kt) {
                            kt_buf.resize(sk * d);
                            if (cached_ko != o.k) transpose(kp, g.k_row, kt_buf.data(), sk, d);
                            cached_ko = o.k;
                            ktp = kt_buf.data();
                        }
                        // rows of the head-packed layout are [h*d] floats apart: a multiple of 4 KB or close to it
                        // maps them onto a few L1 sets, so copy Q's block and V to contiguous buffers first
                        if (g.q_row != d) {
                            q_buf.resize(kQueryBlock * d);
                            copy_rows(qp, g.q_row, rows, d, q_buf.data());
                            qp = q_buf.data();
                        }
                        if (g.v_row != dv) {
                            v_buf.resize(sk * dv);
                            if (cached_vo != o.v) copy_rows(vp, g.v_row, sk, dv, v_buf.data());
                            cached_vo = o.v;
                            vp = v_buf.data();
                        }
                        gemm_block({qp, d, ktp, kt ? g.k_row : sk, sb, sk, d, sk, inv}, rows);
                    }
                    const int64_t mask_stride = mask ? g.m_str[nbd + 1] : 0;
                    for (int64_t row = 0; row < rows; ++row) {
                        const int64_t m = mask ? o.m + (i0 + row) * g.m_str[nbd] : 0;
                        const float* mf = mask && !mask_bool ? mask->data<float>() + m : nullptr;
                        const uint8_t* mb = mask && mask_bool ? mask->data<uint8_t>() + m : nullptr;
                        inv[row] = softmax_row(sb + row * sk, sk, mf, mb, mask_stride);
                    }
                    if (bf16) {  // O = P V / sum
                        rows_to_bf16(sb, sk, rows, sk, a16_buf.data(), 2 * sk2);
                        gemm_block_bf16({a16_buf.data(), 2 * sk2, v2_buf.data(), dv, op, g.o_row, sk2, dv, inv},
                                        rows);
                    } else {
                        gemm_block({sb, sk, vp, dv, op, g.o_row, sk, dv, inv}, rows);  // V contiguous here
                    }
                }
            });
        },
        bf16 ? "attention_bf16f32acc_fused_avx512" : "attention_f32_fused_avx512", true);
}

}  // namespace kiln::backends::cpu

#pragma once
// Device helpers shared by the attention kernels (attention.cu, attention_mma.cu).
#include "src/backends/cuda/cuda_launch.h"

namespace kiln::cuda {

struct AttentionOffsets {
    int64_t q, k, v, o, m;  // elements
};

// Where head-batch entry b (row-major over d.batch; broadcast dims have stride 0) starts in Q, K, V, out and mask.
// The index arithmetic is 32-bit (a grid dimension never exceeds 2^31 entries): 64-bit division costs about a
// hundred instructions, which at BERT's batch-1 size is a visible part of a warp's work.
__device__ __forceinline__ AttentionOffsets attention_offsets(const AttentionDims& d, int64_t entry) {
    AttentionOffsets r{d.q_base, d.k_base, d.v_base, 0, 0};
    uint32_t b = static_cast<uint32_t>(entry);
    for (int i = d.batch_rank - 1; i >= 0; --i) {
        const uint32_t n = static_cast<uint32_t>(d.batch[i]);
        const uint32_t idx = b % n;
        b /= n;
        r.q += idx * d.q_bstride[i];
        r.k += idx * d.k_bstride[i];
        r.v += idx * d.v_bstride[i];
        r.o += idx * d.o_bstride[i];
        r.m += idx * d.m_bstride[i];
    }
    return r;
}

// Score s of (query i, key j) with the mask applied: additive, or boolean (false -> the lowest float, as the
// reference backend does).
__device__ __forceinline__ float masked_score(float s, const AttentionDims& d, const void* mask, int64_t mo,
                                              int64_t i, int64_t j) {
    if (!d.has_mask) return s;
    const int64_t m = mo + i * d.m_row_stride + j * d.m_col_stride;
    if (d.mask_bool) return static_cast<const uint8_t*>(mask)[m] ? s : -3.402823466e38f;
    return s + static_cast<const float*>(mask)[m];
}

}  // namespace kiln::cuda

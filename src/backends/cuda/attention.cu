// Fused attention, fp32: out = softmax(scale * Q K^T + mask) V. One block per (batch*head, tile of query rows);
// the scores of one query row live in shared memory (sk floats), the softmax is computed in fp32.
#include <cfloat>

#include "src/backends/cuda/cuda_launch.h"

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
    int64_t b = blockIdx.x;
    int64_t qo = 0, ko = 0, vo = 0, mo = 0, rem = b;
    for (int i = d.batch_rank - 1; i >= 0; --i) {
        int64_t idx = rem % d.batch[i];
        rem /= d.batch[i];
        qo += idx * d.q_bstride[i];
        ko += idx * d.k_bstride[i];
        vo += idx * d.v_bstride[i];
        mo += idx * d.m_bstride[i];
    }
    const float* qp = q + qo * d.sq * d.d;
    const float* kp = k + ko * d.sk * d.d;
    const float* vp = v + vo * d.sk * d.dv;
    float* op = out + b * d.sq * d.dv;
    int64_t row_end = min(d.sq, int64_t(blockIdx.y + 1) * kRowsPerBlock);
    for (int64_t i = int64_t(blockIdx.y) * kRowsPerBlock; i < row_end; ++i) {
        __syncthreads();
        for (int64_t c = threadIdx.x; c < d.d; c += blockDim.x) qrow[c] = qp[i * d.d + c] * d.scale;
        __syncthreads();
        float mx = -FLT_MAX;
        for (int64_t j = threadIdx.x; j < d.sk; j += blockDim.x) {
            float acc = 0.f;
            if (d.k_transposed)
                for (int64_t c = 0; c < d.d; ++c) acc += qrow[c] * kp[c * d.sk + j];
            else
                for (int64_t c = 0; c < d.d; ++c) acc += qrow[c] * kp[j * d.d + c];
            if (d.has_mask) {
                int64_t m = mo + i * d.m_row_stride + j * d.m_col_stride;
                if (d.mask_bool)
                    acc = static_cast<const uint8_t*>(mask)[m] ? acc : -FLT_MAX;
                else
                    acc += static_cast<const float*>(mask)[m];
            }
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
            for (int64_t j = 0; j < d.sk; ++j) acc += s[j] * vp[j * d.dv + c];
            op[i * d.dv + c] = acc * inv;
        }
    }
}

}  // namespace

void launch_attention_f32(const float* q, const float* k, const float* v, const void* mask, float* out,
                          const AttentionDims& d, cudaStream_t s) {
    int64_t nb = 1;
    for (int i = 0; i < d.batch_rank; ++i) nb *= d.batch[i];
    if (nb == 0 || d.sq == 0) return;
    size_t smem = static_cast<size_t>(d.sk + d.d) * sizeof(float);
    if (smem > 48 * 1024)
        cudaFuncSetAttribute(attention_f32_rowmajor, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem));
    dim3 grid(static_cast<unsigned>(nb), static_cast<unsigned>((d.sq + kRowsPerBlock - 1) / kRowsPerBlock));
    attention_f32_rowmajor<<<grid, kThreads, smem, s>>>(q, k, v, mask, out, d);
}

}  // namespace kiln::cuda

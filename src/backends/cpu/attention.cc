// Attention(Q, K, V, mask?) = softmax(scale * Q @ K^T + mask) @ V, fused: per (batch*head, block of query rows) a
// task computes the scores row by row into a small buffer, applies mask and softmax, and accumulates P @ V, so
// the [seq_q, seq_k] score matrix is never materialised. Loops are in axpy form (no reductions) so they vectorise.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/backends/cpu/vec_math.h"
#include "src/ops/shape_utils.h"

namespace kiln::backends::cpu {

namespace {

constexpr int64_t kQueryBlock = 32;

struct Row {
    const float* q;   // [d]
    const float* kt;  // [d, sk]
    const float* v;   // [sk, dv]
    const float* mask_f;
    const uint8_t* mask_b;
    int64_t mask_stride;  // 0 or 1 along sk
    float* out;           // [dv]
    float* s;             // [sk] scratch
    int64_t d, sk, dv;
    float scale;
};

KILN_CPU_MULTIVERSION void attention_row(const Row& r) {
    float* s = r.s;
    const int64_t sk = r.sk, dv = r.dv;
    for (int64_t j = 0; j < sk; ++j) s[j] = 0.f;
    for (int64_t c = 0; c < r.d; ++c) {
        const float qc = r.q[c] * r.scale;
        const float* k = r.kt + c * sk;
        for (int64_t j = 0; j < sk; ++j) s[j] += qc * k[j];
    }
    if (r.mask_f)
        for (int64_t j = 0; j < sk; ++j) s[j] += r.mask_f[j * r.mask_stride];
    if (r.mask_b)
        for (int64_t j = 0; j < sk; ++j)
            s[j] = r.mask_b[j * r.mask_stride] ? s[j] : std::numeric_limits<float>::lowest();
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < sk; ++j) mx = std::max(mx, s[j]);
    float acc[16] = {};
    int64_t j = 0;
    for (; j + 16 <= sk; j += 16)
        for (int l = 0; l < 16; ++l) acc[l] += (s[j + l] = exp_approx(s[j + l] - mx));
    float sum = 0.f;
    for (; j < sk; ++j) sum += (s[j] = exp_approx(s[j] - mx));
    for (float a : acc) sum += a;
    const float inv = 1.f / sum;
    float* o = r.out;
    for (int64_t c = 0; c < dv; ++c) o[c] = 0.f;
    for (int64_t jj = 0; jj < sk; ++jj) {
        const float p = s[jj] * inv;
        const float* v = r.v + jj * dv;
        for (int64_t c = 0; c < dv; ++c) o[c] += p * v[c];
    }
}

KILN_CPU_MULTIVERSION void transpose(const float* k, float* kt, int64_t sk, int64_t d) {
    for (int64_t j = 0; j < sk; ++j)
        for (int64_t c = 0; c < d; ++c) kt[c * sk + j] = k[j * d + c];
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
    const bool kt = node.attrs.get_int("k_transposed", 0) != 0;
    const bool mask_bool = node.attrs.get_int("mask_is_bool", 0) != 0;
    const float scale_attr = node.attrs.get_float("scale", 0.f);
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& q = *a.inputs[0];
            const Tensor& k = *a.inputs[1];
            const Tensor& v = *a.inputs[2];
            const Tensor* mask = a.inputs.size() > 3 ? a.inputs[3] : nullptr;
            Tensor& out = *a.outputs[0];
            const int r = q.rank();
            const int64_t sq = q.dim(r - 2), d = q.dim(r - 1), sk = kt ? k.dim(r - 1) : k.dim(r - 2),
                          dv = v.dim(r - 1);
            const float scale = scale_attr != 0.f ? scale_attr : 1.f / std::sqrt(static_cast<float>(d));
            Shape batch(out.shape().begin(), out.shape().end() - 2);
            const size_t nbd = batch.size();
            std::vector<int64_t> qs = ops::broadcast_strides(Shape(q.shape().begin(), q.shape().end() - 2), batch);
            std::vector<int64_t> ks = ops::broadcast_strides(Shape(k.shape().begin(), k.shape().end() - 2), batch);
            std::vector<int64_t> vs = ops::broadcast_strides(Shape(v.shape().begin(), v.shape().end() - 2), batch);
            Shape score_shape = batch;
            score_shape.push_back(sq);
            score_shape.push_back(sk);
            std::vector<int64_t> ms;
            if (mask) ms = ops::broadcast_strides(mask->shape(), score_shape);
            const int64_t nb = shape_numel(batch), nblk = (sq + kQueryBlock - 1) / kQueryBlock;
            parallel_for(nb * nblk, a.num_threads, [&](int64_t begin, int64_t end) {
                thread_local std::vector<float> kt_buf, s_buf;
                s_buf.resize(sk);
                int64_t cached_ko = -1;
                for (int64_t t = begin; t < end; ++t) {
                    int64_t b = t / nblk, blk = t % nblk;
                    int64_t qo = 0, ko = 0, vo = 0, mo = 0, rem = b;
                    for (int i = static_cast<int>(nbd) - 1; i >= 0; --i) {
                        int64_t idx = rem % batch[i];
                        rem /= batch[i];
                        qo += idx * qs[i];
                        ko += idx * ks[i];
                        vo += idx * vs[i];
                        if (mask) mo += idx * ms[i];
                    }
                    const float* kp = k.data<float>() + ko * sk * d;
                    const float* ktp = kp;
                    if (!kt) {
                        kt_buf.resize(sk * d);
                        if (cached_ko != ko) transpose(kp, kt_buf.data(), sk, d);
                        cached_ko = ko;
                        ktp = kt_buf.data();
                    }
                    Row row{};
                    row.kt = ktp;
                    row.v = v.data<float>() + vo * sk * dv;
                    row.s = s_buf.data();
                    row.d = d;
                    row.sk = sk;
                    row.dv = dv;
                    row.scale = scale;
                    row.mask_stride = mask ? ms[nbd + 1] : 0;
                    for (int64_t i = blk * kQueryBlock; i < std::min(sq, (blk + 1) * kQueryBlock); ++i) {
                        row.q = q.data<float>() + qo * sq * d + i * d;
                        row.out = out.data<float>() + b * sq * dv + i * dv;
                        if (mask) {
                            int64_t m = mo + i * ms[nbd];
                            if (mask_bool)
                                row.mask_b = mask->data<uint8_t>() + m;
                            else
                                row.mask_f = mask->data<float>() + m;
                        }
                        attention_row(row);
                    }
                }
            });
        },
        "attention_f32_fused_avx512");
}

}  // namespace kiln::backends::cpu

// The Attention op on the GPU, classic or head-packed layout (src/backends/attention_geometry.h). Three kernels:
//  - fp16/bf16 builds, head dims multiples of 16 up to 128: attention_mma (attention_mma.cu), flash style on tensor
//    cores; its Q/K/V and output may be the reduced type itself (low_io), so a transformer's activations stay fp16
//    from projection to projection;
//  - fp16/bf16 builds otherwise, classic layout without broadcast: Q K^T and P V as two strided-batched cuBLASLt
//    GEMMs around a row softmax;
//  - fp32, or anything else: attention_f32_tiled (attention.cu), an fp32 online-softmax kernel.
#include <cmath>
#include <cstdlib>

#include "src/backends/attention_geometry.h"
#include "src/backends/cuda/cuda_common.h"

namespace kiln::cuda {

using backends::AttentionGeometry;
using backends::KernelNode;

namespace {

using In = std::vector<const DevTensor*>;
using Out = std::vector<DevTensor*>;

// The head dims a node's attributes and build-time shapes give (0 when not known before the run).
void head_dims(const KernelNode& n, int64_t* d, int64_t* dv) {
    *d = *dv = 0;
    if (n.attrs.get_int("num_heads", 0) > 0) {
        *d = n.attrs.get_int("head_dim", 0);
        *dv = n.attrs.get_int("v_head_dim", *d);
        return;
    }
    const auto& q = n.inputs[0].dims;
    const auto& v = n.inputs[2].dims;
    if (!q.empty() && q.back().is_static()) *d = q.back().value;
    if (!v.empty() && v.back().is_static()) *dv = v.back().value;
}

AttentionDims dims_of(const AttentionGeometry& g, float scale_attr, bool mask_bool,
                      const std::string& where) {
    AttentionDims d;
    KILN_CHECK(g.batch.size() <= static_cast<size_t>(kMaxAttentionBatch), kUnsupported, where, ": attention with ",
               g.batch.size(), " head-batch dims (at most ", kMaxAttentionBatch, ")");
    d.batch_rank = static_cast<int>(g.batch.size());
    for (int i = 0; i < d.batch_rank; ++i) {
        d.batch[i] = g.batch[i];
        d.q_bstride[i] = g.q_str[i];
        d.k_bstride[i] = g.k_str[i];
        d.v_bstride[i] = g.v_str[i];
        d.o_bstride[i] = g.o_str[i];
        if (!g.m_str.empty()) d.m_bstride[i] = g.m_str[i];
    }
    d.q_base = g.q_base, d.k_base = g.k_base, d.v_base = g.v_base;
    d.q_row = g.q_row, d.k_row = g.k_row, d.v_row = g.v_row, d.o_row = g.o_row;
    d.sq = g.sq, d.sk = g.sk, d.d = g.d, d.dv = g.dv;
    d.k_transposed = g.kt;
    d.scale = scale_attr != 0.f ? scale_attr : 1.f / std::sqrt(static_cast<float>(g.d));
    if (!g.m_str.empty()) {
        d.has_mask = true;
        d.mask_bool = mask_bool;
        d.m_row_stride = g.m_str[d.batch_rank];
        d.m_col_stride = g.m_str[d.batch_rank + 1];
    }
    return d;
}

// Q K^T and P V as strided-batched cuBLASLt GEMMs around a row softmax (classic layout, no broadcast, fp32 inputs).
void attention_gemm_low(const RunCtx& c, const DevTensor& q, const DevTensor& k, const DevTensor& v,
                        const DevTensor* mask, float* out, const AttentionDims& d, LowType low, LtAlgoCache& qk,
                        LtAlgoCache& pv, TacticTable* tactics) {
    int64_t nb = 1;
    for (int i = 0; i < d.batch_rank; ++i) nb *= d.batch[i];
    Scratch scratch(c.stream, *c.node);
    void* ql = scratch.get(q.numel() * 2);
    void* kl = scratch.get(k.numel() * 2);
    void* vl = scratch.get(v.numel() * 2);
    launch_f32_to_low(q.as<float>(), ql, low, q.numel(), c.stream);
    launch_f32_to_low(k.as<float>(), kl, low, k.numel(), c.stream);
    launch_f32_to_low(v.as<float>(), vl, low, v.numel(), c.stream);
    float* scores = static_cast<float*>(scratch.get(static_cast<size_t>(nb * d.sq * d.sk) * sizeof(float)));
    lt_gemm_strided_low(c, d.sq, d.sk, d.d, nb, ql, d.sq * d.d, kl, d.sk * d.d, !d.k_transposed, low, scores,
                        d.sq * d.sk, d.scale, qk, tactics);
    void* probs = scratch.get(static_cast<size_t>(nb * d.sq * d.sk) * 2);
    launch_attention_softmax_low(scores, mask ? mask->data : nullptr, probs, low, d, nb * d.sq, c.stream);
    lt_gemm_strided_low(c, d.sq, d.dv, d.sk, nb, probs, d.sq * d.sk, vl, d.sk * d.dv, false, low, out, d.sq * d.dv,
                        1.f, pv, tactics);
}

}  // namespace

bool supports_attention(const KernelNode& n) {
    if (n.inputs.size() < 3 || n.inputs[0].rank() < 2 || n.inputs[0].rank() > 6) return false;
    if (n.inputs.size() > 3 && n.inputs[3].present) {
        bool mb = n.attrs.get_int("mask_is_bool", 0) != 0;
        if (n.inputs[3].dtype != (mb ? DataType::kBool : DataType::kFloat32)) return false;
    }
    return true;
}

// KILN_CUDA_ATTN_KT_MMA=0: K given transposed takes the cuBLASLt path (Q K^T GEMM, softmax, P V GEMM) instead.
bool k_transposed_on_tensor_cores() {
    const char* e = std::getenv("KILN_CUDA_ATTN_KT_MMA");
    return !(e && std::string(e) == "0");
}

bool attention_on_tensor_cores(const KernelNode& n, LowType low) {
    if (low == LowType::kF32) return false;
    // K given transposed ([d, sk] per head, torchvision's ViT export) is copied as key rows first (k_rows_low); only
    // in the classic layout (the head-packed one never has it)
    if (n.attrs.get_int("k_transposed", 0) != 0 &&
        (n.attrs.get_int("num_heads", 0) > 0 || !k_transposed_on_tensor_cores()))
        return false;
    int64_t d = 0, dv = 0;
    head_dims(n, &d, &dv);
    return attention_mma_fits(d, dv);
}

std::unique_ptr<DeviceKernel> make_attention(const KernelRequest& r) {
    const KernelNode& n = r.node;
    const LowType low = r.low;
    TacticTable* tactics = r.tactics;
    auto qk = make_lt_algo_cache(), pv = make_lt_algo_cache();
    const bool mask_bool = n.attrs.get_int("mask_is_bool", 0) != 0;
    const bool packed = n.attrs.get_int("num_heads", 0) > 0;
    const float scale_attr = n.attrs.get_float("scale", 0.f);
    const bool mma = attention_on_tensor_cores(n, low);
    int sms = 0, dev = 0;
    if (mma) {
        KILN_CUDA_CHECK(cudaGetDevice(&dev), n.where());
        KILN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), n.where());
    }
    const AttributeMap attrs = n.attrs;
    const std::string where = n.where();
    return std::make_unique<FnDeviceKernel>([=](const RunCtx& c, const In& in, const Out& out) {
        const DevTensor &q = *in[0], &k = *in[1], &v = *in[2];
        const DevTensor* mask = in.size() > 3 ? in[3] : nullptr;
        const AttentionGeometry g =
            backends::attention_geometry(attrs, q.shape, k.shape, v.shape, mask ? &mask->shape : nullptr, where);
        const AttentionDims d = dims_of(g, scale_attr, mask_bool, where);
        const bool any_low = q.dtype != DataType::kFloat32 || k.dtype != DataType::kFloat32 ||
                             v.dtype != DataType::kFloat32;
        int64_t nb = g.count();
        const bool gemm_fits = low != LowType::kF32 && !packed && q.numel() == nb * d.sq * d.d &&
                               k.numel() == nb * d.sk * d.d && v.numel() == nb * d.sk * d.dv && d.sk > 0 && d.sq > 0;
        // fp32 Q, V and K given transposed in the classic layout (ViT's exporter scales Q and K with fp32 Muls):
        // converted, K into key rows, then the flash kernel (at batch 32 the cuBLASLt path's fp32 scores alone were
        // 60 MB per layer); without k_transposed, fp32 classic inputs keep the cuBLASLt path
        const bool kt = d.k_transposed && nb <= 65535;
        if (mma && (any_low || !gemm_fits || out[0]->dtype != DataType::kFloat32 || kt) &&
            (!d.k_transposed || kt)) {
            // Q, K, V as fp16/bf16: fp32 ones are converted whole (coalesced), so that the kernel stages 16-byte rows
            Scratch scratch(c.stream, *c.node);
            const void* p[3] = {q.data, k.data, v.data};
            const DevTensor* t[3] = {&q, &k, &v};
            AttentionDims dd = d;
            if (kt) {  // K as dense key rows [nb, sk, d] of the reduced type
                void* kr = scratch.get(static_cast<size_t>(nb * d.sk * d.d) * 2);
                launch_k_rows_low(k.data, k.dtype != DataType::kFloat32, kr, low, d, &dd, c.stream);
                p[1] = kr;
            }
            for (int i = 0; i < 3; ++i) {
                if (t[i]->dtype != DataType::kFloat32 || (i == 1 && kt)) continue;
                if (i > 0 && t[i]->data == t[i - 1]->data && !(i == 2 && kt)) {  // one packed QKV tensor: once
                    p[i] = p[i - 1];
                    continue;
                }
                void* lp = scratch.get(t[i]->numel() * 2);
                launch_f32_to_low(t[i]->as<float>(), lp, low, t[i]->numel(), c.stream);
                p[i] = lp;
            }
            launch_attention_mma(p[0], p[1], p[2], true, mask ? mask->data : nullptr, out[0]->data,
                                 out[0]->dtype != DataType::kFloat32, low, dd, sms, c.stream);
            return;
        }
        if (gemm_fits) {
            attention_gemm_low(c, q, k, v, mask, out[0]->as<float>(), d, low, *qk, *pv, tactics);
            return;
        }
        launch_attention_f32(q.as<float>(), k.as<float>(), v.as<float>(), mask ? mask->data : nullptr,
                             out[0]->as<float>(), d, c.stream);
    }, mma ? cat("attention_", low_name(low), "_mma_flash")
           : low != LowType::kF32 ? cat("attention_", low_name(low), "_cublaslt_qk_softmax_pv")
                                  : "attention_f32_tiled_online_softmax");
}

}  // namespace kiln::cuda

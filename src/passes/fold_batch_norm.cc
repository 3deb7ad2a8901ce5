// Folds an inference BatchNormalization into the Conv, ConvTranspose or Gemm that produces its input.
//
// With s = gamma / sqrt(var + eps) per output channel:
//   w' = w * s        (Conv: W[m, ...]; ConvTranspose: W[ci, j, ...] with m = group(ci) * M/groups + j;
//                      Gemm: column n of B, i.e. B[:, n], or B[n, :] when transB)
//   b' = (b - mean) * s + beta    (Gemm: b = beta_gemm * C, and the Gemm's beta becomes 1)
//
// Preconditions (otherwise the graph is left alone): BN in inference mode with constant float32 params of C
// elements and its extra outputs unused; its input produced by the layer's first output, read by nothing else and
// not a graph output; the layer's weight (and bias, if any) constant float32 with C output channels; for Gemm a
// rank-2 output and a bias of shape [], [1], [N] or [1, N]. New weights are new constants (the originals may be
// shared); the layer takes over the BN's output value so graph output names stay.
#include <cmath>
#include <vector>

#include "src/passes/pass.h"

namespace kiln::passes {

namespace {

const Tensor* const_f32(const ir::Value* v) {
    return v && v->is_constant() && v->constant->dtype() == DataType::kFloat32 ? &*v->constant : nullptr;
}

struct BnParams {
    std::vector<float> scale;  ///< gamma / sqrt(var + eps)
    std::vector<float> mean;
    std::vector<float> beta;
};

bool read_bn(const ir::Graph& g, const ir::Node* bn, BnParams* p) {
    if (bn->inputs.size() < 5 || bn->attrs.get_int("training_mode", 0) != 0) return false;
    for (size_t i = 1; i < bn->outputs.size(); ++i)
        if (bn->outputs[i]->is_output || !g.consumers(bn->outputs[i]).empty()) return false;
    const Tensor* gamma = const_f32(bn->input(1));
    const Tensor* beta = const_f32(bn->input(2));
    const Tensor* mean = const_f32(bn->input(3));
    const Tensor* var = const_f32(bn->input(4));
    if (!gamma || !beta || !mean || !var) return false;
    int64_t c = gamma->numel();
    if (beta->numel() != c || mean->numel() != c || var->numel() != c) return false;
    float eps = bn->attrs.get_float("epsilon", 1e-5f);
    for (int64_t i = 0; i < c; ++i) {
        float s = gamma->data<float>()[i] / std::sqrt(var->data<float>()[i] + eps);
        p->scale.push_back(s);
        p->mean.push_back(mean->data<float>()[i]);
        p->beta.push_back(beta->data<float>()[i]);
    }
    return true;
}

/// b' = (b - mean) * s + beta; `bias` may be null (b = 0) or hold one value per channel or a single value.
Tensor folded_bias(const Tensor* bias, float bias_mult, const BnParams& p) {
    int64_t c = static_cast<int64_t>(p.scale.size());
    Tensor out(DataType::kFloat32, {c});
    for (int64_t m = 0; m < c; ++m) {
        float b = bias ? bias_mult * bias->data<float>()[bias->numel() == 1 ? 0 : m] : 0.f;
        out.data<float>()[m] = (b - p.mean[m]) * p.scale[m] + p.beta[m];
    }
    return out;
}

/// w' for Conv / ConvTranspose / Gemm, or an undefined tensor when the layer's shapes do not match the BN.
Tensor folded_weight(const ir::Node* layer, const Tensor& w, const BnParams& p) {
    int64_t c = static_cast<int64_t>(p.scale.size());
    Tensor out = w.clone();
    float* d = out.data<float>();
    if (layer->op_type == "Conv") {
        if (w.rank() < 2 || w.dim(0) != c) return Tensor();
        int64_t inner = w.numel() / c;
        for (int64_t m = 0; m < c; ++m)
            for (int64_t k = 0; k < inner; ++k) d[m * inner + k] *= p.scale[m];
        return out;
    }
    if (layer->op_type == "ConvTranspose") {
        int64_t groups = layer->attrs.get_int("group", 1);
        if (w.rank() < 2 || groups <= 0 || w.dim(0) % groups != 0 || w.dim(1) * groups != c) return Tensor();
        int64_t cin = w.dim(0), m_per_group = w.dim(1), inner = w.numel() / (cin * m_per_group);
        int64_t cin_per_group = cin / groups;
        for (int64_t ci = 0; ci < cin; ++ci)
            for (int64_t j = 0; j < m_per_group; ++j) {
                float s = p.scale[(ci / cin_per_group) * m_per_group + j];
                for (int64_t k = 0; k < inner; ++k) d[(ci * m_per_group + j) * inner + k] *= s;
            }
        return out;
    }
    // Gemm: B is [K, N], or [N, K] with transB.
    bool trans_b = layer->attrs.get_int("transB", 0) != 0;
    if (w.rank() != 2 || w.dim(trans_b ? 0 : 1) != c) return Tensor();
    int64_t rows = w.dim(0), cols = w.dim(1);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < cols; ++k) d[r * cols + k] *= p.scale[trans_b ? r : k];
    return out;
}

bool bias_shape_ok(const ir::Node* layer, const Tensor* bias, int64_t c) {
    if (!bias) return true;
    if (layer->op_type != "Gemm") return bias->rank() == 1 && bias->numel() == c;
    const Shape& s = bias->shape();
    if (bias->numel() == 1) return s.size() <= 2;
    return (s.size() == 1 && s[0] == c) || (s.size() == 2 && s[0] == 1 && s[1] == c);
}

std::vector<std::string> origins(const ir::Node* n) {
    return n->fused_from.empty() ? std::vector<std::string>{n->name} : n->fused_from;
}

bool fold_one(ir::Graph& g, ir::Node* bn) {
    ir::Value* x = bn->input(0);
    ir::Node* layer = x ? x->producer : nullptr;
    if (!layer || !(layer->domain.empty() || layer->domain == "ai.onnx")) return false;
    if (layer->op_type != "Conv" && layer->op_type != "ConvTranspose" && layer->op_type != "Gemm") return false;
    if (layer->outputs.empty() || layer->outputs[0] != x || x->is_output) return false;
    if (g.consumers(x).size() != 1) return false;
    if (layer->op_type == "Gemm" && (!x->shape_known || x->dims.size() != 2)) return false;
    const Tensor* w = const_f32(layer->input(1));
    if (!w) return false;
    const ir::Value* bias_v = layer->input(2);
    const Tensor* bias = const_f32(bias_v);
    if (bias_v && !bias) return false;
    BnParams p;
    if (!read_bn(g, bn, &p)) return false;
    int64_t c = static_cast<int64_t>(p.scale.size());
    if (!bias_shape_ok(layer, bias, c)) return false;
    Tensor new_w = folded_weight(layer, *w, p);
    if (!new_w.defined()) return false;
    float bias_mult = 1.f;
    if (layer->op_type == "Gemm") {
        bias_mult = layer->attrs.get_float("beta", 1.f);
        layer->attrs.set("beta", 1.f);
    }
    Tensor new_b = folded_bias(bias, bias_mult, p);

    ir::Value* wv = g.add_constant(g.unique_name(layer->input(1)->name + "_bnfold"), std::move(new_w));
    ir::Value* bv = g.add_constant(g.unique_name(layer->name + "_bnfold_bias"), std::move(new_b));
    layer->inputs[1] = wv;
    if (layer->inputs.size() < 3) layer->inputs.resize(3, nullptr);
    layer->inputs[2] = bv;
    std::vector<std::string> fused = origins(layer);
    for (const std::string& s : origins(bn)) fused.push_back(s);
    layer->fused_from = fused;
    // The layer now writes the BN's output value (keeps its name and consumers).
    ir::Value* y = bn->outputs[0];
    g.remove_node(bn);
    layer->outputs[0] = y;
    x->producer = nullptr;
    y->producer = layer;
    return true;
}

}  // namespace

bool fold_batch_norm(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (ir::Node* n : g.nodes())
        if (n->op_type == "BatchNormalization" && (n->domain.empty() || n->domain == "ai.onnx") && fold_one(g, n))
            changed = true;
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

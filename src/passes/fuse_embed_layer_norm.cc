// A transformer's embedding layer becomes one EmbedLayerNorm:
//   e = Gather(table, ids)                 (axis 0 of a constant 2-D [V, H] float32 table)
//   s = e + c1 + c2 ...                    (Adds of constants: position / token-type embeddings after folding)
//   y = LayerNormalization(s, gamma, beta) (last axis, constant gamma / beta)
//   -> y [, s] = EmbedLayerNorm(ids, table, gamma, beta, c1 + c2 + ...)
// The constants are summed at build time (broadcast to their common shape, which must broadcast into s). s stays
// an output when something else reads it (pre-norm GPT-2 carries it as the first residual). BERT's embedding is
// a Gather, two Adds and a LayerNormalization; with the Adds fused that was three launches on the GPU, ~18 us of
// a 0.41 ms batch-1 inference on an H100 (docs/PERFORMANCE.md); one kernel reads the table rows and writes Y.
// Only for cuda (like TensorRT's and ONNX Runtime's embedding-layernorm fusions); KILN_CUDA_EMBED_NORM=0 turns it
// off. Runs after constant_folding and fuse_layer_norm, before fuse_elementwise (which would take the Adds).
#include <cstdlib>
#include <string>

#include "src/ops/shape_utils.h"
#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool norm_vector(const ir::Value* v, int64_t n) {
    return v && v->is_constant() && v->dtype == DataType::kFloat32 && v->constant->shape().size() == 1 &&
           v->constant->numel() == n;
}

bool f32_constant(const ir::Value* v) { return v && v->is_constant() && v->dtype == DataType::kFloat32; }

// The numpy broadcast of the constants' shapes, or false when it would not broadcast into `into` unchanged.
bool addend_shape(const std::vector<const ir::Value*>& consts, const SymShape& into, Shape* out) {
    Shape b;
    for (const ir::Value* c : consts) {
        const Shape& s = c->constant->shape();
        if (s.size() > b.size()) b.insert(b.begin(), s.size() - b.size(), 1);
        for (size_t i = 0; i < s.size(); ++i) {
            int64_t& d = b[b.size() - s.size() + i];
            if (s[i] != 1 && d != 1 && s[i] != d) return false;
            if (d == 1) d = s[i];
        }
    }
    if (b.size() > into.size()) return false;
    for (size_t i = 0; i < b.size(); ++i) {
        const Dim& d = into[into.size() - b.size() + i];
        if (b[i] != 1 && (!d.is_static() || d.value != b[i])) return false;
    }
    *out = b;
    return true;
}

Tensor sum_broadcast(const std::vector<const ir::Value*>& consts, const Shape& shape) {
    Tensor t(DataType::kFloat32, shape);
    float* y = t.data<float>();
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) y[i] = 0.f;
    for (const ir::Value* c : consts) {
        const std::vector<int64_t> st = ops::broadcast_strides(c->constant->shape(), shape);
        const float* x = c->constant->data<float>();
        std::vector<int64_t> idx(shape.size(), 0);
        for (int64_t i = 0; i < n; ++i) {
            int64_t off = 0;
            for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * st[d];
            y[i] += x[off];
            for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
                if (++idx[d] < shape[d]) break;
                idx[d] = 0;
            }
        }
    }
    return t;
}

bool try_fuse(ir::Graph& g, ir::Node* ln, const UseMap& uses) {
    if (ln->inputs.size() != 3 || ln->outputs.size() != 1) return false;
    ir::Value* s = ln->input(0);
    if (!s || s->dtype != DataType::kFloat32 || s->dims.empty() || !s->dims.back().is_static()) return false;
    const int rank = static_cast<int>(s->dims.size());
    const int64_t axis = ln->attrs.get_int("axis", -1);
    if (axis != -1 && axis != rank - 1) return false;
    const int64_t h = s->dims.back().value;
    if (!norm_vector(ln->input(1), h) || !norm_vector(ln->input(2), h)) return false;

    // walk the Adds of constants from s up to the Gather
    std::vector<ir::Node*> matched;
    std::vector<const ir::Value*> consts;
    ir::Value* v = s;
    while (ir::Node* add = producer_of(v, "Add")) {
        if (add->inputs.size() != 2 || (v != s && !uses.single_use(v))) return false;
        const bool c0 = f32_constant(add->input(0)), c1 = f32_constant(add->input(1));
        if (c0 == c1) return false;
        consts.push_back(add->input(c0 ? 0 : 1));
        matched.push_back(add);
        v = add->input(c0 ? 1 : 0);
    }
    ir::Node* gather = producer_of(v, "Gather");
    if (!gather || gather->attrs.get_int("axis", 0) != 0 || (v != s && !uses.single_use(v))) return false;
    const ir::Value* table = gather->input(0);
    ir::Value* ids = gather->input(1);
    if (!f32_constant(table) || table->constant->shape().size() != 2 || table->constant->shape()[1] != h) return false;
    if (ids->is_constant() || (ids->dtype != DataType::kInt64 && ids->dtype != DataType::kInt32)) return false;
    Shape ashape;
    if (!consts.empty() && !addend_shape(consts, s->dims, &ashape)) return false;

    const bool keep_sum = !uses.single_use(s);
    matched.push_back(gather);
    matched.push_back(ln);
    std::vector<std::string> names = fused_names(matched);
    std::vector<ir::Value*> inputs = {ids, gather->inputs[0], ln->inputs[1], ln->inputs[2]};
    if (!consts.empty())
        inputs.push_back(g.add_constant(g.unique_name(ln->name + "_embed_addend"), sum_broadcast(consts, ashape)));
    std::vector<ir::Value*> outputs = {ln->outputs[0]};
    if (keep_sum) outputs.push_back(s);
    AttributeMap attrs;
    attrs.set("epsilon", ln->attrs.get_float("epsilon", 1e-5f));
    const std::string name = g.unique_name(ln->name + "_embed");
    remove_nodes(g, matched);
    g.add_node("EmbedLayerNorm", name, inputs, outputs, attrs, "kiln")->fused_from = names;
    return true;
}

}  // namespace

bool fuse_embed_layer_norm(ir::Graph& g, PassContext& ctx) {
    if (ctx.backend != "cuda") return false;
    if (const char* e = std::getenv("KILN_CUDA_EMBED_NORM"); e && std::string(e) == "0") return false;
    bool changed = rewrite_until_stable(g, "LayerNormalization", "", try_fuse);
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

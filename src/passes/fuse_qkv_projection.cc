// Merges the three projections feeding a head-packed Attention into one matmul (after fuse_attention_heads and
// fuse_matmul_epilogue):
//   q = FusedMatMul(x, Wq, bq)   k = FusedMatMul(x, Wk, bk)   v = FusedMatMul(x, Wv, bv)
//   y = Attention(q, k, v, mask) {num_heads, qkv_offsets = [0, 0, 0]}
//   -> qkv = FusedMatMul(x, [Wq | Wk | Wv], [bq | bk | bv])
//      y = Attention(qkv, qkv, qkv, mask) {qkv_offsets = [0, Nq, Nq + Nk]}
// One GEMM of width Nq + Nk + Nv instead of three: two launches fewer per attention and a wider grid, which is what
// small batches on a GPU are short of. The Attention reads the three column ranges in place (the packed layout's
// offsets, as for GPT-2's fused c_attn). Only for cuda: on the cpu backend one wide GEMM measured the same as three.
#include <cstring>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

// A projection q = x @ W (+ b): FusedMatMul with a constant 2-D [K, N] weight, an optional constant [N] bias, no
// residual, no activation, read only by `att`.
ir::Node* projection(ir::Value* v, const ir::Node* att, const UseMap& uses) {
    ir::Node* p = v->producer;
    if (!p || p->op_type != "FusedMatMul" || p->domain != "kiln" || p->inputs.size() > 3) return nullptr;
    if (p->attrs.get_int("trans_b", 0) != 0 || !p->attrs.get_string("activation", "").empty()) return nullptr;
    const ir::Value* w = p->input(1);
    if (!w->is_constant() || w->constant->shape().size() != 2 || w->dtype != DataType::kFloat32) return nullptr;
    if (p->inputs.size() == 3) {
        const ir::Value* b = p->input(2);
        if (!b || !b->is_constant() || b->constant->numel() != w->constant->shape()[1]) return nullptr;
    }
    if (!uses.single_use(v) || uses.uses(v)[0] != att) return nullptr;
    return p;
}

// Concatenates [K, N_i] row-major matrices along the columns.
Tensor concat_columns(const std::vector<const Tensor*>& parts) {
    const int64_t k = parts[0]->shape()[0];
    int64_t n = 0;
    for (const Tensor* t : parts) n += t->shape()[1];
    Tensor out(DataType::kFloat32, {k, n});
    float* o = out.data<float>();
    int64_t col = 0;
    for (const Tensor* t : parts) {
        const int64_t ni = t->shape()[1];
        for (int64_t r = 0; r < k; ++r) std::memcpy(o + r * n + col, t->data<float>() + r * ni, ni * sizeof(float));
        col += ni;
    }
    return out;
}

bool try_fuse(ir::Graph& g, ir::Node* att, const UseMap& uses) {
    if (att->attrs.get_int("num_heads", 0) <= 0 || att->inputs.size() < 3) return false;
    if (att->attrs.get_ints("qkv_offsets", {0, 0, 0}) != std::vector<int64_t>{0, 0, 0}) return false;
    ir::Value* in[3] = {att->input(0), att->input(1), att->input(2)};
    if (in[0] == in[1] || in[1] == in[2] || in[0] == in[2]) return false;
    ir::Node* p[3];
    for (int i = 0; i < 3; ++i)
        if (!(p[i] = projection(in[i], att, uses))) return false;
    ir::Value* x = p[0]->input(0);
    const bool biased = p[0]->inputs.size() == 3;
    const int64_t k = p[0]->input(1)->constant->shape()[0];
    for (int i = 1; i < 3; ++i)
        if (p[i]->input(0) != x || (p[i]->inputs.size() == 3) != biased ||
            p[i]->input(1)->constant->shape()[0] != k)
            return false;
    if (x->dims.empty()) return false;

    std::vector<const Tensor*> ws, bs;
    int64_t n[3];
    for (int i = 0; i < 3; ++i) {
        ws.push_back(&*p[i]->input(1)->constant);
        n[i] = ws.back()->shape()[1];
        if (biased) bs.push_back(&*p[i]->input(2)->constant);
    }
    Tensor w = concat_columns(ws);
    std::vector<ir::Value*> mm_in = {x, g.add_constant(g.unique_name(p[0]->name + "_qkv_weight"), std::move(w))};
    if (biased) {
        std::vector<Tensor> rows;
        std::vector<const Tensor*> as_rows;
        for (const Tensor* b : bs) rows.push_back(b->clone().reshaped({1, b->numel()}));
        for (const Tensor& r : rows) as_rows.push_back(&r);
        Tensor b = concat_columns(as_rows);
        mm_in.push_back(g.add_constant(g.unique_name(p[0]->name + "_qkv_bias"), b.reshaped({n[0] + n[1] + n[2]})));
    }
    SymShape dims = x->dims;
    dims.back() = Dim(n[0] + n[1] + n[2]);
    ir::Value* qkv = g.add_value(g.unique_name(p[0]->name + "_qkv"), DataType::kFloat32, dims, true);
    std::vector<std::string> names = fused_names({p[0], p[1], p[2]});
    ir::Node* mm = g.add_node("FusedMatMul", g.unique_name(p[0]->name + "_qkv"), mm_in, {qkv}, p[0]->attrs, "kiln");
    mm->fused_from = names;
    for (int i = 0; i < 3; ++i) att->inputs[i] = qkv;
    att->attrs.set("qkv_offsets", std::vector<int64_t>{0, n[0], n[0] + n[1]});
    remove_nodes(g, {p[0], p[1], p[2]});
    return true;
}

}  // namespace

bool fuse_qkv_projection(ir::Graph& g, PassContext& ctx) {
    if (ctx.backend != "cuda") return false;
    return rewrite_until_stable(g, "Attention", "kiln", try_fuse);
}

}  // namespace kiln::passes

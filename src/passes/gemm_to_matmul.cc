// Gemm as exporters write a linear layer -> MatMul (+ bias Add), looking through the flatten / unflatten Reshapes:
//   y = Reshape(Gemm(Reshape(x, [-1, K]), W, b), [..., N])      (Hugging Face GPT-2's Conv1D, torch Linear on 3-D)
//   -> y = MatMul(x, W) + b                                     (W [K, N]; FusedMatMul(x, W, trans_b=1) for transB)
// fuse_matmul_epilogue, which runs next, then folds the bias, a residual Add and an activation into one FusedMatMul,
// as it does for MatMul exports (BERT). Before, the Gemm wrote fp32 with its C broadcast into the whole output first,
// and the Reshapes kept the residual Add and GELU out of its epilogue. Conditions: alpha = 1, transA = 0, W a
// constant float 2-D matrix, C absent or a constant [N] / [1, N] with beta = 1. The Reshapes are looked through only
// when they flatten x's leading dims and restore them exactly (each read only here); otherwise the 2-D product stays.
#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool same_dims(const SymShape& a, const SymShape& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!(a[i] == b[i])) return false;
    return true;
}

bool try_rewrite(ir::Graph& g, ir::Node* gemm, const UseMap& uses) {
    if (gemm->attrs.get_float("alpha", 1.f) != 1.f || gemm->attrs.get_int("transA", 0) != 0) return false;
    const bool trans_b = gemm->attrs.get_int("transB", 0) != 0;
    ir::Value* a = gemm->input(0);
    ir::Value* w = gemm->input(1);
    ir::Value* c = gemm->inputs.size() > 2 ? gemm->input(2) : nullptr;
    ir::Value* y = gemm->outputs[0];
    if (!w || !w->is_constant() || w->constant->rank() != 2 || w->dtype != DataType::kFloat32 ||
        y->dtype != DataType::kFloat32 || a->dims.size() != 2)
        return false;
    const int64_t k = w->constant->shape()[trans_b ? 1 : 0], n = w->constant->shape()[trans_b ? 0 : 1];
    if (c) {
        if (!c->is_constant() || gemm->attrs.get_float("beta", 1.f) != 1.f || c->constant->numel() != n) return false;
        const Shape& cs = c->constant->shape();
        if (!(cs.size() == 1 || (cs.size() == 2 && cs[0] == 1))) return false;
    }
    // the flatten / unflatten pair around it
    ir::Value* x = a;
    ir::Value* out = y;
    std::vector<ir::Node*> gone = {gemm};
    ir::Node* flat = producer_of(a, "Reshape");
    ir::Node* unflat = uses.only_user(y);
    if (flat && unflat && unflat->op_type == "Reshape" && unflat->domain.empty() && unflat->input(0) == y &&
        uses.single_use(a) && uses.single_use(y)) {
        ir::Value* src = flat->input(0);
        ir::Value* dst = unflat->outputs[0];
        SymShape lead(src->dims.begin(), src->dims.end() - (src->dims.empty() ? 0 : 1));
        SymShape want = lead;
        want.push_back(Dim(n));
        if (src->dims.size() >= 2 && src->dims.back().is_static() && src->dims.back().value == k &&
            same_dims(dst->dims, want)) {
            x = src;
            out = dst;
            gone.push_back(flat);
            gone.push_back(unflat);
        }
    }
    std::vector<std::string> names = fused_names(gone);
    const std::string name = gemm->name;
    remove_nodes(g, gone);
    ir::Value* prod = out;
    if (c) prod = g.add_value(g.unique_name(name + "_matmul"), DataType::kFloat32, out->dims, true);
    AttributeMap attrs;
    ir::Node* mm = nullptr;
    if (trans_b) {
        attrs.set("trans_b", int64_t{1});
        mm = g.add_node("FusedMatMul", name, {x, w}, {prod}, attrs, "kiln");
    } else {
        mm = g.add_node("MatMul", name, {x, w}, {prod});
    }
    mm->fused_from = names;
    if (c) {
        Tensor bias = c->constant->clone().reshaped({n});
        g.add_node("Add", g.unique_name(name + "_bias"), {prod, g.add_constant(g.unique_name(name + "_b"), bias)},
                   {out});
    }
    return true;
}

}  // namespace

bool gemm_to_matmul(ir::Graph& g, PassContext&) {
    return rewrite_until_stable(g, "Gemm", "", try_rewrite);
}

}  // namespace kiln::passes

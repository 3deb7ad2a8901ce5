// MatMul with a constant weight + bias Add + optional residual Add + optional activation -> one FusedMatMul:
//   y = act(a @ w + b + z)       (b constant, broadcast along the last dim; z of y's shape)
// A bare FusedMatMul(a, w, trans_b=1) from fuse_matmul_transpose is extended the same way.
#include "src/passes/activation_fusion.h"
#include "src/passes/pass.h"

namespace kiln::passes {

namespace {

bool is_bias_for(const ir::Value* b, const ir::Value* y) {
    if (!b || !b->is_constant() || b->dtype != y->dtype || y->dims.empty()) return false;
    const Shape& s = b->constant->shape();
    const Dim& n = y->dims.back();
    if (s.empty() || !n.is_static() || s.back() != n.value || s.size() > y->dims.size()) return false;
    for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] != 1) return false;
    return true;
}

bool try_fuse(ir::Graph& g, ir::Node* mm, const UseMap& uses) {
    ir::Value* y = mm->outputs[0];
    if (y->dtype != DataType::kFloat32 || !mm->input(1)->is_constant() || mm->input(1)->dims.size() != 2) return false;
    const std::string op = mm->op_type, domain = mm->domain;
    mm->op_type = "FusedMatMul";
    mm->domain = "kiln";
    bool fused = false;
    if (ir::Node* add = uses.only_user(y); add && add->op_type == "Add" && add->domain.empty()) {
        ir::Value* b = other_input(add, y);
        if (is_bias_for(b, y)) {
            Tensor bias = b->constant->clone().reshaped({b->constant->numel()});
            record_fused(mm, {add});
            ir::Value* out = add->outputs[0];
            g.remove_node(add);
            mm->inputs.push_back(g.add_constant(g.unique_name(mm->name + "_bias"), bias));
            mm->outputs[0] = out;
            out->producer = mm;
            y->producer = nullptr;
            fused = true;
        }
    }
    if (fused) {  // a residual Add after the bias: y = a @ w + b + z
        UseMap fresh(g);
        absorb_residual_add(g, mm, 3, fresh);
    }
    UseMap fresh(g);
    fused |= absorb_activation(g, mm, fresh);
    if (!fused) {
        mm->op_type = op;
        mm->domain = domain;
    }
    return fused;
}

}  // namespace

bool fuse_matmul_epilogue(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            bool plain = n->op_type == "MatMul" && n->domain.empty();
            bool bare_trans_b = n->op_type == "FusedMatMul" && n->domain == "kiln" && n->inputs.size() == 2 &&
                                !n->attrs.has("activation");  // fuse_matmul_transpose's output, no epilogue yet
            if ((plain || bare_trans_b) && try_fuse(g, n, uses)) {
                changed = again = true;
                break;
            }
        }
    }
    return changed;
}

}  // namespace kiln::passes

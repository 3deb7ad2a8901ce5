// MatMul(A, Transpose(W)) with W a constant 2-D float32 tensor -> FusedMatMul(A, W, trans_b=1):
//   y = A @ W^T
// The backends read B as [N, K] (a strided or pre-packed weight), so the transposed copy of W is never made.
// Constant folding refuses that copy for a large W that is also read elsewhere (GPT-2's tied embedding `wte`,
// [50257, 768], feeds both the Gather and the LM head); without this pass the product's B would be a run-time
// tensor that the cpu backend cannot pre-pack. Runs before fuse_matmul_epilogue, which then folds a following
// bias / residual Add / activation into the FusedMatMul. Limits: the Transpose must swap the two dims of a 2-D
// constant (perm [1, 0] or absent); it stays in the graph when other nodes read its output.
#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool is_swap_2d(const ir::Node* t) {
    if (!t->attrs.has("perm")) return true;  // a missing perm reverses the dims
    return t->attrs.get_ints("perm") == std::vector<int64_t>{1, 0};
}

}  // namespace

bool fuse_matmul_transpose(ir::Graph& g, PassContext&) {
    bool changed = false;
    UseMap uses(g);
    std::vector<ir::Node*> dead;
    for (ir::Node* mm : g.nodes()) {
        if (mm->op_type != "MatMul" || !mm->domain.empty() || mm->inputs.size() != 2) continue;
        ir::Node* t = producer_of(mm->input(1), "Transpose");
        if (!t) continue;
        ir::Value* w = t->input(0);
        if (!w || !w->is_constant() || w->dtype != DataType::kFloat32 || w->constant->rank() != 2 || !is_swap_2d(t))
            continue;
        if (mm->outputs[0]->dtype != DataType::kFloat32) continue;
        const bool only_reader = uses.single_use(mm->input(1));
        if (only_reader) record_fused(mm, {t});
        mm->op_type = "FusedMatMul";
        mm->domain = "kiln";
        mm->attrs.set("trans_b", int64_t{1});
        mm->inputs[1] = w;
        if (only_reader) dead.push_back(t);
        changed = true;
    }
    remove_nodes(g, dead);
    return changed;
}

}  // namespace kiln::passes

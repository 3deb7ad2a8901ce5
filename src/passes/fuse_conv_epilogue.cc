// Conv + bias + optional residual Add + optional activation -> one FusedConv:
//   y = act(conv(x, w) + b + z)
// (BatchNormalization was already folded into the Conv by fold_batch_norm.) A Conv with nothing to fuse stays.
#include "src/passes/activation_fusion.h"
#include "src/passes/pass.h"

namespace kiln::passes {

bool fuse_conv_epilogue(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            if (n->op_type != "Conv" || !n->domain.empty() || n->input(0)->dtype != DataType::kFloat32) continue;
            n->op_type = "FusedConv";  // tentatively, so the helpers see the fused form
            n->domain = "kiln";
            bool fused = absorb_residual_add(g, n, 3, uses);
            if (fused) uses = UseMap(g);
            fused |= absorb_activation(g, n, uses);
            if (!fused) {
                n->op_type = "Conv";
                n->domain = "";
                continue;
            }
            changed = again = true;
            break;
        }
    }
    return changed;
}

}  // namespace kiln::passes

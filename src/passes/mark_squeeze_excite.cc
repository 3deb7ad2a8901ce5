// Marks squeeze-excite blocks (EfficientNet, MobileNetV3) so a backend can run them as one unit:
//   g = GlobalAveragePool(x); h = FusedConv(g) {activation != ""}; s = FusedConv(h) {activation = Sigmoid};
//   y = Mul(x, s)    (either operand order)
// Each of the four nodes gets the string attribute `subgraph = "squeeze_excite:<id>"`, ids 0, 1, ... in graph
// order. Nothing else changes: every backend ignores the attribute unless it knows it (the reference kernels only
// read the attributes they need), so a marked graph computes what it did.
//
// Preconditions: g, h and s are each read only by the next node of the block and are not graph outputs; the
// convolutions have no residual input; no node of the block is marked already. Blocks written with a plain Conv
// (fuse_conv_epilogue did not run) are not recognised.
#include <string>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

constexpr const char* kAttr = "subgraph";
constexpr const char* kPrefix = "squeeze_excite:";

// v's producer when it is a FusedConv without residual, reading only data input 0 from the graph, else nullptr.
ir::Node* fused_conv_of(const ir::Value* v, const UseMap& uses) {
    if (!v || !v->producer || !uses.single_use(v)) return nullptr;
    ir::Node* c = v->producer;
    if (c->op_type != "FusedConv" || c->domain != "kiln" || c->input(3)) return nullptr;
    return c;
}

bool marked(const ir::Node* n) { return n->attrs.has(kAttr); }

}  // namespace

bool mark_squeeze_excite(ir::Graph& g, PassContext&) {
    UseMap uses(g);
    int next_id = 0;
    for (const ir::Node* n : g.nodes())
        if (n->attrs.get_string(kAttr, "").rfind(kPrefix, 0) == 0) ++next_id;
    next_id /= 4;  // four nodes per marked block
    bool changed = false;
    for (ir::Node* mul : g.nodes()) {
        if (mul->op_type != "Mul" || !mul->domain.empty() || mul->inputs.size() != 2 || marked(mul)) continue;
        for (int i = 0; i < 2; ++i) {
            ir::Value* x = mul->inputs[1 - i];
            ir::Node* excite = fused_conv_of(mul->inputs[i], uses);
            if (!excite || excite->attrs.get_string("activation", "") != "Sigmoid") continue;
            ir::Node* squeeze = fused_conv_of(excite->input(0), uses);
            if (!squeeze || squeeze->attrs.get_string("activation", "").empty()) continue;
            ir::Value* pooled = squeeze->input(0);
            ir::Node* gap = pooled->producer;
            if (!gap || gap->op_type != "GlobalAveragePool" || !gap->domain.empty() || gap->input(0) != x ||
                !uses.single_use(pooled))
                continue;
            if (marked(gap) || marked(squeeze) || marked(excite)) continue;
            std::string tag = kPrefix + std::to_string(next_id++);
            for (ir::Node* n : {gap, squeeze, excite, mul}) n->attrs.set(kAttr, tag);
            changed = true;
            break;
        }
    }
    return changed;
}

}  // namespace kiln::passes

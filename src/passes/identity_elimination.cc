// Removes nodes that pass their first input through unchanged: Identity, Dropout (inference, mask unused), Cast to
// the same dtype, Reshape/Expand/Tile whose static output shape equals the input's, Transpose with the identity
// permutation. Consumers are rewired to the input.
//
// Graph output names are kept: when the removed node's output is a graph output, the input's producer is made to
// write that output directly; when the input is a graph input, a constant or itself a graph output, the node stays.
#include <algorithm>

#include "src/passes/pass.h"

namespace kiln::passes {

namespace {

bool same_static_shape(const ir::Value* a, const ir::Value* b) {
    return a->shape_known && b->shape_known && is_static(a->dims) && a->dims == b->dims && a->dtype == b->dtype;
}

bool used(const ir::Graph& g, const ir::Value* v) { return v->is_output || !g.consumers(v).empty(); }

/// Whether `n` is a no-op that forwards input 0 to output 0.
bool is_noop(const ir::Graph& g, const ir::Node* n) {
    if (!(n->domain.empty() || n->domain == "ai.onnx") || !n->input(0) || n->outputs.empty()) return false;
    const ir::Value* in = n->input(0);
    const ir::Value* out = n->outputs[0];
    const std::string& op = n->op_type;
    if (op == "Identity") return true;
    if (op == "Dropout") {
        // Inference only: training_mode (input 2) must be absent or a constant false; the mask must be unused.
        const ir::Value* training = n->input(2);
        if (training && !(training->is_constant() && training->constant->numel() == 1 &&
                          training->constant->get_i64(0) == 0))
            return false;
        if (n->attrs.get_int("training_mode", 0) != 0) return false;
        return n->outputs.size() < 2 || !used(g, n->outputs[1]);
    }
    if (op == "Cast") return n->attrs.has("to") && in->dtype == out->dtype && out->shape_known;
    if (op == "Reshape" || op == "Expand" || op == "Tile") return same_static_shape(in, out);
    if (op == "Transpose") {
        if (!in->shape_known || !n->attrs.has("perm")) return false;
        std::vector<int64_t> perm = n->attrs.get_ints("perm");
        for (size_t i = 0; i < perm.size(); ++i)
            if (perm[i] != static_cast<int64_t>(i)) return false;
        return perm.size() == in->dims.size();
    }
    return false;
}

/// Removes the no-op node `n`. Returns false (graph unchanged) when a graph output name could not be kept.
bool bypass(ir::Graph& g, ir::Node* n) {
    ir::Value* in = n->inputs[0];
    ir::Value* out = n->outputs[0];
    if (!out->is_output) {
        g.remove_node(n);
        g.replace_all_uses(out, in);
        return true;
    }
    // The output is a graph output: keep its name by making the input's producer write it.
    ir::Node* p = in->producer;
    if (!p || in->is_input || in->is_constant() || in->is_output) return false;
    g.remove_node(n);
    g.replace_all_uses(in, out);
    auto slot = std::find(p->outputs.begin(), p->outputs.end(), in);
    *slot = out;
    in->producer = nullptr;
    out->producer = p;
    return true;
}

}  // namespace

bool identity_elimination(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (ir::Node* n : g.nodes())
        if (is_noop(g, n) && bypass(g, n)) changed = true;
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

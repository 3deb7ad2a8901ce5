#include "src/passes/activation_fusion.h"

namespace kiln::passes {

namespace {

// Replaces `consumed` nodes by moving their last output onto `layer`.
void take_over(ir::Graph& g, ir::Node* layer, const std::vector<ir::Node*>& consumed) {
    record_fused(layer, consumed);
    ir::Value* old_out = layer->outputs[0];
    ir::Value* new_out = consumed.back()->outputs[0];
    remove_nodes(g, consumed);
    layer->outputs[0] = new_out;
    new_out->producer = layer;
    old_out->producer = nullptr;
}

}  // namespace

bool absorb_activation(ir::Graph& g, ir::Node* layer, const UseMap& uses) {
    if (!layer->attrs.get_string("activation", "").empty()) return false;
    ir::Value* y = layer->outputs[0];
    if (y->dtype != DataType::kFloat32) return false;
    const std::vector<ir::Node*>& readers = uses.uses(y);
    if (y->is_output) return false;
    std::string act;
    float alpha = 0.f, beta = 0.f;
    std::vector<ir::Node*> consumed;
    if (readers.size() == 2) {  // SiLU: Mul(y, Sigmoid(y))
        ir::Node* sig = nullptr;
        ir::Node* mul = nullptr;
        for (ir::Node* r : readers) {
            if (r->op_type == "Sigmoid" && r->domain.empty()) sig = r;
            if (r->op_type == "Mul" && r->domain.empty()) mul = r;
        }
        if (!sig || !mul || !uses.single_use(sig->outputs[0]) || other_input(mul, y) != sig->outputs[0]) return false;
        act = "Silu";
        consumed = {sig, mul};
    } else if (readers.size() == 1) {
        ir::Node* r = readers[0];
        if (!r->domain.empty() || r->inputs[0] != y) return false;
        const std::string& op = r->op_type;
        if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "HardSwish") {
            act = op;
        } else if (op == "LeakyRelu") {
            act = op;
            alpha = r->attrs.get_float("alpha", 0.01f);
        } else if (op == "Elu") {
            act = op;
            alpha = r->attrs.get_float("alpha", 1.f);
        } else if (op == "HardSigmoid") {
            act = op;
            alpha = r->attrs.get_float("alpha", 0.2f);
            beta = r->attrs.get_float("beta", 0.5f);
        } else if (op == "Gelu") {
            act = r->attrs.get_string("approximate", "none") == "tanh" ? "GeluTanh" : "Gelu";
        } else if (op == "Clip") {
            double lo = -3.4028234663852886e38, hi = 3.4028234663852886e38;
            if (r->input(1) && !const_scalar(r->input(1), &lo)) return false;
            if (r->input(2) && !const_scalar(r->input(2), &hi)) return false;
            act = "Clip";
            alpha = static_cast<float>(lo);
            beta = static_cast<float>(hi);
        } else {
            return false;
        }
        consumed = {r};
    } else {
        return false;
    }
    layer->attrs.set("activation", act);
    if (alpha != 0.f) layer->attrs.set("activation_alpha", alpha);
    if (beta != 0.f) layer->attrs.set("activation_beta", beta);
    take_over(g, layer, consumed);
    return true;
}

bool absorb_residual_add(ir::Graph& g, ir::Node* layer, size_t slot, const UseMap& uses) {
    if (!layer->attrs.get_string("activation", "").empty()) return false;  // act(conv) + z is not act(conv + z)
    if (layer->inputs.size() > slot && layer->inputs[slot]) return false;
    ir::Value* y = layer->outputs[0];
    ir::Node* add = uses.only_user(y);
    if (!add || add->op_type != "Add" || !add->domain.empty()) return false;
    ir::Value* z = other_input(add, y);
    if (!z || z->dtype != y->dtype || !(z->dims == y->dims)) return false;
    for (const Dim& d : y->dims)
        if (!d.is_static() && d.symbol.empty()) return false;  // unknown dims: cannot prove the shapes equal
    // z must not depend on y (it cannot: y's only reader is this Add), and must differ from the layer's output
    if (layer->inputs.size() <= slot) layer->inputs.resize(slot + 1, nullptr);
    layer->inputs[slot] = z;
    take_over(g, layer, {add});
    return true;
}

}  // namespace kiln::passes

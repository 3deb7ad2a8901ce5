// Moves reshape-like nodes (Reshape, Flatten, Squeeze, Unsqueeze) above a Cast or Not, so that the elementwise op
// meets the elementwise ops after the reshape and fuse_elementwise (which runs next) can take them together:
//   R2(R1(x))    -> Reshape(x, s)                s = R2's output shape: a reshape only depends on the row-major
//                                                 order of the elements, which R1 keeps
//   R(u(x))      -> u(Reshape(x, s))              s = R's output shape, u a Cast or Not read only by R: u maps each
//                                                 element on its own, so it commutes with any change of shape
// HF transformers' attention mask (after gather_to_reshape) is
//   Where(And(k, Reshape(Reshape(Flatten(Cast<bool>(mask))))), 0, min)
// and becomes Where(And(k, Cast<bool>(Reshape(mask))), 0, min): Cast, And and Where then fuse into one node.
// On cuda a Cast of int32 / int64 data stays below its reshape: the cuda backend keeps int tensors (shape tensors, as
// TensorRT does) on the host, so a Reshape of the int64 mask would run there and send the fused node's input across
// every run (BERT batch 1 on an H200: 0.40 -> 0.90 ms). The mask chain is then a Cast and one fused node.
// Limits: the new Reshape needs R's output shape with at most one symbolic dim (written as -1) and no 0 dim; a u
// whose output is a graph output or read elsewhere stays where it is.
#include <algorithm>
#include <string>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool onnx_domain(const ir::Node* n) { return n->domain.empty() || n->domain == "ai.onnx"; }

bool reshape_like(const ir::Node* n) {
    if (!n || !onnx_domain(n) || !n->input(0) || n->outputs.size() != 1) return false;
    const std::string& op = n->op_type;
    return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze";
}

bool hoistable(const ir::Node* n) {
    return n && onnx_domain(n) && (n->op_type == "Cast" || n->op_type == "Not") && n->inputs.size() == 1 &&
           n->outputs.size() == 1;
}

// A constant holding the Reshape shape of `y` (static dims, one symbolic dim as -1), or nullptr.
ir::Value* shape_constant(ir::Graph& g, const ir::Node* r) {
    const ir::Value* y = r->outputs[0];
    if (!y->shape_known) return nullptr;
    std::vector<int64_t> shape;
    int symbolic = 0;
    for (const Dim& d : y->dims) {
        if (d.is_static() && d.value == 0) return nullptr;  // a 0 copies an input dim in a Reshape
        symbolic += !d.is_static();
        shape.push_back(d.is_static() ? d.value : -1);
    }
    if (symbolic > 1) return nullptr;
    Tensor s(DataType::kInt64, {static_cast<int64_t>(shape.size())});
    std::copy(shape.begin(), shape.end(), s.data<int64_t>());
    return g.add_constant(g.unique_name(r->name + "_shape"), std::move(s));
}

// Makes `r` a Reshape of x to its own output shape; false (nothing changed) when the shape cannot be written.
bool to_reshape_of(ir::Graph& g, ir::Node* r, ir::Value* x) {
    ir::Value* shape = shape_constant(g, r);
    if (!shape) return false;
    r->op_type = "Reshape";
    r->domain.clear();
    r->attrs = AttributeMap();
    r->inputs = {x, shape};
    return true;
}

// R2(R1(x)) -> Reshape(x, s); R1 goes when nothing else reads it.
bool merge_pair(ir::Graph& g, ir::Node* outer) {
    ir::Node* inner = outer->input(0)->producer;
    if (!reshape_like(inner) || !to_reshape_of(g, outer, inner->inputs[0])) return false;
    const ir::Value* v = inner->outputs[0];
    if (!v->is_output && g.consumers(v).empty()) {
        record_fused(outer, {inner});
        g.remove_node(inner);
    }
    return true;
}

// R(u(x)) -> u(Reshape(x, s)), u's output value becomes the Reshape's.
bool hoist(ir::Graph& g, ir::Node* r, const UseMap& uses, bool int_reshape_ok) {
    ir::Value* mid = r->input(0);
    ir::Node* u = mid->producer;
    if (!hoistable(u) || !uses.single_use(mid)) return false;
    ir::Value* x = u->inputs[0];
    if (!int_reshape_ok && x && (x->dtype == DataType::kInt64 || x->dtype == DataType::kInt32)) return false;
    ir::Value* y = r->outputs[0];
    if (!x || !to_reshape_of(g, r, x)) return false;
    r->outputs[0] = mid;
    mid->producer = r;
    mid->dtype = x->dtype;
    mid->dims = y->dims;
    u->inputs[0] = mid;
    u->outputs[0] = y;
    y->producer = u;
    return true;
}

}  // namespace

bool hoist_reshape(ir::Graph& g, PassContext& ctx) {
    const bool int_reshape_ok = ctx.backend != "cuda";
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            if (!reshape_like(n)) continue;
            if (merge_pair(g, n) || hoist(g, n, uses, int_reshape_ok)) {
                changed = again = true;
                break;
            }
        }
    }
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

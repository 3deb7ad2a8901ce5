// Removes data movement that cancels out:
//   Transpose(Transpose(x, p), q)  -> x                    when r = id, with r[j] = p[q[j]] (out[j] = x.dim(r[j]))
//                                  -> Transpose(x, r)      otherwise (the inner one stays if others read it)
//   Reshape(Reshape(x, s1), s2)    -> Reshape(x, s2')      s2' = s2 when it has no 0 entry (0 copies a dim of the
//                                                          *inner* output), else the outer's static output shape
//   Transpose(u_k(...u_1(Transpose(x, p))...), q) -> u_k(...u_1(x)...)   when r = id and every u_i is an
//                                                          elementwise unary op read only by the next one: a unary
//                                                          op commutes with any permutation of its input
//   Transpose(x, p) -> Reshape(x, static output shape)   when p only moves dims of size 1 (the other dims keep their
//                                                          order: same bytes in the same order; a Reshape may alias
//                                                          its input where a Transpose copies, e.g. torchvision's
//                                                          [1, S, E] <-> [S, 1, E] around nn.MultiheadAttention)
// A missing `perm` reverses the dims. Limits: only pairs adjacent in the graph (or separated by unary ops) are seen;
// a Transpose is never pushed through a binary op (that would need the other operand transposed too); an identity
// pair whose result is a graph output is left (identity_elimination's rule keeps output names); a Reshape pair
// whose outer shape has a 0 entry and symbolic output dims is left.
#include <algorithm>
#include <set>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool is_op(const ir::Node* n, const char* op) {
    return n && n->op_type == op && (n->domain.empty() || n->domain == "ai.onnx");
}

// The permutation of a Transpose (reversed dims when `perm` is absent); false when the rank is unknown.
bool perm_of(const ir::Node* t, std::vector<int64_t>* perm) {
    if (t->attrs.has("perm")) {
        *perm = t->attrs.get_ints("perm");
        return true;
    }
    const ir::Value* x = t->input(0);
    if (!x || !x->shape_known) return false;
    perm->clear();
    for (int64_t i = static_cast<int64_t>(x->dims.size()) - 1; i >= 0; --i) perm->push_back(i);
    return true;
}

// r[j] = p[q[j]]: Transpose(Transpose(x, p), q) == Transpose(x, r). Empty when the sizes differ or q is invalid.
std::vector<int64_t> compose(const std::vector<int64_t>& p, const std::vector<int64_t>& q) {
    std::vector<int64_t> r;
    if (p.size() != q.size()) return r;
    for (int64_t j : q) {
        if (j < 0 || j >= static_cast<int64_t>(p.size())) return {};
        r.push_back(p[j]);
    }
    return r;
}

bool is_identity(const std::vector<int64_t>& r) {
    for (size_t i = 0; i < r.size(); ++i)
        if (r[i] != static_cast<int64_t>(i)) return false;
    return true;
}

bool is_unary_elementwise(const ir::Node* n) {
    static const std::set<std::string> kOps = {
        "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Erf", "Elu",
        "Selu", "HardSigmoid", "HardSwish", "Softplus", "Gelu", "Cast", "Identity",
    };
    if (!(n->domain.empty() || n->domain == "ai.onnx") || n->outputs.size() != 1) return false;
    if (n->op_type == "Clip") {  // bounds are scalars: elementwise in input 0
        for (size_t i = 1; i < n->inputs.size(); ++i)
            if (n->inputs[i] && !(n->inputs[i]->is_constant() && n->inputs[i]->constant->numel() == 1)) return false;
        return true;
    }
    return kOps.count(n->op_type) && n->inputs.size() == 1;
}

void drop_if_unused(ir::Graph& g, ir::Node* n, const ir::Node* removed_reader) {
    if (!n) return;
    for (const ir::Value* o : n->outputs) {
        if (o->is_output) return;
        for (const ir::Node* c : g.consumers(o))
            if (c != removed_reader) return;
    }
    g.remove_node(n);
}

// Transpose(Transpose(x, p), q): cancel or merge.
bool transpose_pair(ir::Graph& g, ir::Node* outer) {
    ir::Node* inner = outer->input(0) ? outer->input(0)->producer : nullptr;
    if (!is_op(inner, "Transpose")) return false;
    std::vector<int64_t> p, q;
    if (!perm_of(inner, &p) || !perm_of(outer, &q)) return false;
    std::vector<int64_t> r = compose(p, q);
    if (r.empty()) return false;
    ir::Value* x = inner->input(0);
    ir::Value* z = outer->outputs[0];
    if (is_identity(r)) {
        if (z->is_output) return false;
        g.replace_all_uses(z, x);
        g.remove_node(outer);
        drop_if_unused(g, inner, nullptr);
        return true;
    }
    record_fused(outer, {inner});
    outer->inputs[0] = x;
    outer->attrs.set("perm", r);
    drop_if_unused(g, inner, nullptr);
    return true;
}

// Reshape(Reshape(x, s1), s2) -> Reshape(x, s2').
bool reshape_pair(ir::Graph& g, ir::Node* outer) {
    ir::Node* inner = outer->input(0) ? outer->input(0)->producer : nullptr;
    if (!is_op(inner, "Reshape")) return false;
    ir::Value* s2 = outer->input(1);
    if (!s2 || !s2->is_constant()) return false;
    std::vector<int64_t> shape = s2->constant->to_i64_vector();
    bool has_zero = std::find(shape.begin(), shape.end(), 0) != shape.end();
    ir::Value* new_shape = s2;
    if (has_zero) {  // 0 copied a dim of the inner output: use the outer's static output shape instead
        const ir::Value* y = outer->outputs[0];
        if (!y->shape_known || !is_static(y->dims)) return false;
        std::vector<int64_t> dims;
        for (const Dim& d : y->dims) {
            if (d.value == 0) return false;  // an empty tensor: 0 would mean "copy" without allowzero
            dims.push_back(d.value);
        }
        Tensor t(DataType::kInt64, {static_cast<int64_t>(dims.size())});
        std::copy(dims.begin(), dims.end(), t.data<int64_t>());
        new_shape = g.add_constant(g.unique_name(outer->name + "_shape"), std::move(t));
        outer->attrs.erase("allowzero");
    }
    record_fused(outer, {inner});
    outer->inputs[0] = inner->input(0);
    outer->inputs[1] = new_shape;
    drop_if_unused(g, inner, nullptr);
    return true;
}

// Transpose(x, p) that moves only dims of size 1 -> Reshape(x, its static output shape).
bool unit_transpose_to_reshape(ir::Graph& g, ir::Node* t) {
    std::vector<int64_t> p;
    const ir::Value* x = t->input(0);
    if (!x || !x->shape_known || !is_static(x->dims) || !perm_of(t, &p) || p.size() != x->dims.size()) return false;
    int64_t last = -1;
    for (int64_t j : p) {
        const int64_t d = x->dims[j].value;
        if (d == 0) return false;  // an empty tensor: a 0 in a Reshape shape would copy a dim
        if (d == 1) continue;
        if (j < last) return false;
        last = j;
    }
    Tensor shape(DataType::kInt64, {static_cast<int64_t>(p.size())});
    for (size_t j = 0; j < p.size(); ++j) shape.data<int64_t>()[j] = x->dims[p[j]].value;
    t->op_type = "Reshape";
    t->attrs = AttributeMap();
    t->inputs.resize(1);
    t->inputs.push_back(g.add_constant(g.unique_name(t->name + "_shape"), std::move(shape)));
    return true;
}

// Transpose(u_k(...u_1(Transpose(x, p))...), q) with q o p = id -> u_k(...u_1(x)...).
bool sink_through_unary(ir::Graph& g, ir::Node* outer, const UseMap& uses) {
    std::vector<ir::Node*> chain;  // u_k ... u_1
    ir::Value* v = outer->input(0);
    while (v && v->producer && is_unary_elementwise(v->producer) && uses.single_use(v)) {
        chain.push_back(v->producer);
        v = v->producer->input(0);
    }
    if (chain.empty() || !v || !is_op(v->producer, "Transpose") || !uses.single_use(v)) return false;
    ir::Node* inner = v->producer;
    std::vector<int64_t> p, q;
    if (!perm_of(inner, &p) || !perm_of(outer, &q) || !is_identity(compose(p, q))) return false;
    ir::Node* last = chain.front();
    ir::Value* z = outer->outputs[0];
    ir::Value* old = last->outputs[0];
    g.remove_node(outer);
    last->outputs[0] = z;
    z->producer = last;
    old->producer = nullptr;
    chain.back()->inputs[0] = inner->input(0);
    g.remove_node(inner);
    return true;
}

}  // namespace

bool transpose_optimization(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            bool done = false;
            if (is_op(n, "Transpose")) {
                done = transpose_pair(g, n) || sink_through_unary(g, n, uses) || unit_transpose_to_reshape(g, n);
            } else if (is_op(n, "Reshape")) {
                done = reshape_pair(g, n);
            }
            if (done) {
                changed = again = true;
                break;  // uses and dims changed: re-infer and rescan
            }
        }
        if (again) {
            g.topological_sort();
            g.infer_shapes();
        }
    }
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

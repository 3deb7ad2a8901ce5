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
// Row-wise ops (MatMul / FusedMatMul with a constant 2-D B and no residual, Add/Sub/Mul/Div with a constant along the
// last axis, unary elementwise ops) map each row (the last axis) on its own, so they commute with a Transpose that
// keeps the last axis in place and with a Reshape that keeps the last dim:
//   MatMul(Transpose(x, p), W) == Transpose(MatMul(x, W), p)      p[-1] = last
//   MatMul(Reshape(x, [..., K]), W) == Reshape(MatMul(x, W), [..., N])
//   L(r_k(...r_1(x)...)) with L such a Transpose / Reshape and the chain read only by the next node, ending in a node
//   that absorbs L: the layout node moves below the chain, L'(r_k(...r_1(x)...)), where transpose_pair /
//   reshape_pair / the rules below remove it. Absorbers: an inverse Transpose, a Reshape, and (for the Transpose
//   that swaps the sequence to the front, [1, 0, 2] at rank 3) a seq-first head-packed Attention:
//   Attention{seq_first=1}(Transpose(Xq, p), Transpose(Xk, p), Transpose(Xv, p), mask)
//     -> Transpose(Attention{seq_first=0}(Xq, Xk, Xv, mask), p)       p = [r-2, 0, ..., r-3, r-1]
//   (both read the same heads of the same rows; the scores and the mask are [batch..., h, sq, sk] in both).
//   Reshape(x, s) whose static output shape is x's -> x.
// torch's nn.MultiheadAttention(batch_first=True) at batch > 1: Transpose -> in-projection -> Attention(seq_first) ->
// out-projection -> Transpose back becomes in-projection -> Attention -> out-projection, and the residual Add after it
// meets the out-projection (fuse_matmul_epilogue, which runs after this pass).
// A missing `perm` reverses the dims. An identity pair whose result is a graph output cancels by having x's producer
// write that output (output names stay). Limits: only pairs adjacent in the graph (or separated by unary or
// row-wise ops) are seen; a Transpose is pushed through a binary op only when the other operand is a constant along
// the last axis; a layout node moves below a row-wise chain only when the chain ends in an absorber (a seq-first
// Attention whose other operands are not transposed that way keeps its layout, and the moved Transpose stays below
// the chain); an identity pair whose result is a graph output stays when x is a graph input, a constant, or read
// elsewhere; a Reshape pair whose outer shape has a 0 entry and symbolic output dims is left.
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
        if (z->is_output) {  // x's producer writes z instead, when nothing else reads x or the inner Transpose
            ir::Node* px = x->producer;
            if (!px || x->is_output || g.consumers(x).size() != 1 || inner->outputs[0]->is_output ||
                g.consumers(inner->outputs[0]).size() != 1)
                return false;
            std::replace(px->outputs.begin(), px->outputs.end(), x, z);
            z->producer = px;
            x->producer = nullptr;
            g.remove_node(outer);
            g.remove_node(inner);
            return true;
        }
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

// ---- moving Transposes / Reshapes below row-wise ops

// True when the Transpose keeps the last axis in place (perm[-1] = rank - 1).
bool keeps_last_axis(const std::vector<int64_t>& p) {
    return !p.empty() && p.back() == static_cast<int64_t>(p.size()) - 1;
}

// The perm that turns batch-first rows [batch..., s, w] into seq-first ones [s, batch..., w]: [r-2, 0, ..., r-3, r-1].
std::vector<int64_t> seq_to_front(size_t rank) {
    std::vector<int64_t> p = {static_cast<int64_t>(rank) - 2};
    for (size_t i = 0; i + 2 < rank; ++i) p.push_back(static_cast<int64_t>(i));
    p.push_back(static_cast<int64_t>(rank) - 1);
    return p;
}

// A constant that broadcasts along the last axis only ([N] or [1, ..., 1, N], N possibly 1) and adds no leading dims
// to an operand of rank >= `min_rank`.
bool is_last_axis_constant(const ir::Value* c, size_t min_rank) {
    if (!c || !c->is_constant()) return false;
    const Shape& s = c->constant->shape();
    if (s.size() > min_rank) return false;
    for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] != 1) return false;
    return true;
}

// n maps each row of its input `v` (read once, as the operand that moves) on its own, the same way for every row, and
// its output has the same leading dims; `min_rank` is the smaller rank v has before and after the move.
bool is_row_wise(const ir::Node* n, const ir::Value* v, size_t min_rank) {
    if (n->outputs.size() != 1 || min_rank < 2) return false;
    if (is_unary_elementwise(n)) return n->input(0) == v;
    const bool onnx = n->domain.empty() || n->domain == "ai.onnx";
    if ((onnx && n->op_type == "MatMul") || (n->domain == "kiln" && n->op_type == "FusedMatMul")) {
        const ir::Value* w = n->input(1);
        if (n->input(0) != v || w == v || !w || !w->is_constant() || w->dims.size() != 2) return false;
        for (size_t i = 2; i < n->inputs.size(); ++i)
            if (n->inputs[i] == v || (i >= 3 && n->inputs[i])) return false;  // a residual would need moving too
        return true;
    }
    static const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div"};
    if (onnx && kBinary.count(n->op_type) && n->inputs.size() == 2) {
        const ir::Value* other = other_input(n, v);
        return other && is_last_axis_constant(other, min_rank);
    }
    return false;
}

// x -> r_1 -> ... -> r_k -> end: the row-wise chain below a layout node's output `v` (each value read only by the
// next node) and the node after it, which reads the chain's last value (possibly more than once) and nothing else
// does. False when v is not read that way.
bool row_wise_chain(const ir::Value* v, size_t min_rank, const UseMap& uses, std::vector<ir::Node*>* chain,
                    ir::Node** end) {
    chain->clear();
    for (;;) {
        const std::vector<ir::Node*>& readers = uses.uses(v);
        if (v->is_output || readers.empty()) return false;
        for (const ir::Node* r : readers)
            if (r != readers[0]) return false;
        ir::Node* n = readers[0];
        if (readers.size() == 1 && is_row_wise(n, v, min_rank)) {
            chain->push_back(n);
            v = n->outputs[0];
            continue;
        }
        *end = n;
        return !chain->empty();
    }
}

// Moves the layout node `lay` (reading x, writing v) below `chain`: r_1 reads x, `lay` reads r_k's new output and
// writes r_k's old one.
void move_below(ir::Graph& g, ir::Node* lay, const std::vector<ir::Node*>& chain) {
    ir::Value* x = lay->input(0);
    ir::Value* v = lay->outputs[0];
    for (ir::Value*& in : chain.front()->inputs)
        if (in == v) in = x;
    ir::Node* last = chain.back();
    ir::Value* y = last->outputs[0];
    ir::Value* rows = g.add_value(g.unique_name(y->name + "_rows"), y->dtype);
    last->outputs[0] = rows;
    rows->producer = last;
    lay->inputs[0] = rows;
    lay->outputs[0] = y;
    y->producer = lay;
    v->producer = nullptr;
}

bool is_seq_first_attention(const ir::Node* n) {
    return n->op_type == "Attention" && n->domain == "kiln" && n->attrs.get_int("seq_first", 0) != 0 &&
           n->attrs.get_int("num_heads", 0) > 0 && n->inputs.size() >= 3;
}

// A Transpose that keeps the last axis, above a row-wise chain that ends in an inverse Transpose or (perm
// seq_to_front) in a seq-first Attention: moves below the chain.
bool transpose_below_rows(ir::Graph& g, ir::Node* t, const UseMap& uses) {
    std::vector<int64_t> p, q;
    const ir::Value* x = t->input(0);
    if (!x || !perm_of(t, &p) || !keeps_last_axis(p) || p.size() < 2) return false;
    std::vector<ir::Node*> chain;
    ir::Node* end = nullptr;
    if (!row_wise_chain(t->outputs[0], p.size(), uses, &chain, &end)) return false;
    const ir::Value* y = chain.back()->outputs[0];
    const bool inverse = is_op(end, "Transpose") && perm_of(end, &q) && is_identity(compose(p, q));
    const bool attention = is_seq_first_attention(end) && p.size() >= 3 && p == seq_to_front(p.size()) &&
                           end->input(3) != y;  // as Q, K or V, not the mask
    if (!inverse && !attention) return false;
    move_below(g, t, chain);
    return true;
}

// A Reshape that keeps the last dim, above a row-wise chain that ends in another Reshape: moves below the chain (its
// shape's last entry becomes the chain's width), where reshape_pair merges the two.
bool reshape_below_rows(ir::Graph& g, ir::Node* r, const UseMap& uses) {
    const ir::Value* x = r->input(0);
    const ir::Value* v = r->outputs[0];
    if (!x || !x->shape_known || !v->shape_known || x->dims.empty() || v->dims.empty() || !r->input(1) ||
        !r->input(1)->is_constant() || !x->dims.back().is_static() || !(x->dims.back() == v->dims.back()))
        return false;
    std::vector<ir::Node*> chain;
    ir::Node* end = nullptr;
    if (!row_wise_chain(v, std::min(x->dims.size(), v->dims.size()), uses, &chain, &end)) return false;
    const ir::Value* y = chain.back()->outputs[0];
    if (!is_op(end, "Reshape") || end->input(0) != y || end->input(1) == y || !y->shape_known || y->dims.empty() || !y->dims.back().is_static()) return false;
    std::vector<int64_t> shape = r->input(1)->constant->to_i64_vector();
    if (shape.empty() || shape.back() == 0) return false;  // 0 would copy x's last dim, -1 infers it: both still fit
    if (shape.back() > 0) shape.back() = y->dims.back().value;
    Tensor t(DataType::kInt64, {static_cast<int64_t>(shape.size())});
    std::copy(shape.begin(), shape.end(), t.data<int64_t>());
    r->inputs[1] = g.add_constant(g.unique_name(r->name + "_shape"), std::move(t));
    move_below(g, r, chain);
    return true;
}

// Attention{seq_first=1}(Transpose(Xq, p), Transpose(Xk, p), Transpose(Xv, p), mask) with p = seq_to_front ->
// Transpose(Attention{seq_first=0}(Xq, Xk, Xv, mask), p), when nothing else reads those Transposes.
bool attention_to_batch_first(ir::Graph& g, ir::Node* att) {
    if (!is_seq_first_attention(att)) return false;
    std::vector<ir::Node*> ts;  // the distinct Transposes
    std::vector<int64_t> p;
    for (int i = 0; i < 3; ++i) {
        ir::Node* t = producer_of(att->input(i), "Transpose");
        if (!t || !perm_of(t, &p) || p.size() < 3 || p != seq_to_front(p.size())) return false;
        if (std::find(ts.begin(), ts.end(), t) == ts.end()) ts.push_back(t);
    }
    for (const ir::Node* t : ts) {  // a Transpose that stays for another reader would make this one more copy
        if (t->outputs[0]->is_output) return false;
        for (const ir::Node* c : g.consumers(t->outputs[0]))
            if (c != att) return false;
    }
    for (int i = 0; i < 3; ++i) att->inputs[i] = att->inputs[i]->producer->input(0);
    att->attrs.erase("seq_first");
    ir::Value* o = att->outputs[0];
    ir::Value* rows = g.add_value(g.unique_name(o->name + "_batch_first"), o->dtype);
    att->outputs[0] = rows;
    rows->producer = att;
    o->producer = nullptr;
    AttributeMap a;
    a.set("perm", p);  // the output's rank is Q's
    g.add_node("Transpose", g.unique_name(att->name + "_seq_first"), {rows}, {o}, a)->fused_from = fused_names(ts);
    for (ir::Node* t : ts) drop_if_unused(g, t, nullptr);
    return true;
}

// Reshape(x, s) whose static output shape is x's -> x.
bool noop_reshape(ir::Graph& g, ir::Node* r) {
    ir::Value* x = r->input(0);
    ir::Value* y = r->outputs[0];
    if (!x || !x->shape_known || !y->shape_known || !is_static(x->dims) || !(x->dims == y->dims) || y->is_output)
        return false;
    g.replace_all_uses(y, x);
    g.remove_node(r);
    return true;
}

}  // namespace

bool transpose_optimization(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        // a Transpose of unit dims becomes a Reshape only once nothing else applies: moved below a chain, the same
        // Transpose may cancel out instead (torch's [1, s, E] <-> [s, 1, E] around an attention at batch 1)
        for (int round = 0; round < 2 && !again; ++round) {
            for (ir::Node* n : g.nodes()) {
                bool done = false;
                if (round == 1) {
                    done = is_op(n, "Transpose") && unit_transpose_to_reshape(g, n);
                } else if (is_op(n, "Transpose")) {
                    done = transpose_pair(g, n) || sink_through_unary(g, n, uses) || transpose_below_rows(g, n, uses);
                } else if (is_op(n, "Reshape")) {
                    done = reshape_pair(g, n) || noop_reshape(g, n) || reshape_below_rows(g, n, uses);
                } else {
                    done = attention_to_batch_first(g, n);
                }
                if (done) {
                    changed = again = true;
                    break;  // uses and dims changed: re-infer and rescan
                }
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

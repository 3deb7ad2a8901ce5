// Recognises scaled-dot-product attention and replaces it with one Attention node:
//   s = MatMul(Q, Kt) [/ c | * c] [+ mask | Where(cond, ., -big)];  p = Softmax(s, axis=-1);  o = MatMul(p, V)
//   -> o = Attention(Q, K, V, mask) {scale, k_transposed, mask_is_bool}
// Kt = Transpose(K) swapping the last two axes gives K directly (k_transposed=0); any other Kt is passed as is
// with k_transposed=1 (e.g. PyTorch's key Transpose(0,2,3,1) of [b,s,h,d] is already [b,h,d,s]).
// Scalar Muls on the operands fold into the scale too: (a Q) (b Kt) = a b (Q Kt) (torch's scaled_dot_product_attention
// export multiplies Q and Kt by sqrt(scale) each).
#include <cmath>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool swaps_last_two(const ir::Node* t) {
    std::vector<int64_t> perm = t->attrs.get_ints("perm");
    int r = static_cast<int>(perm.size());
    if (r < 2) return false;
    for (int i = 0; i < r - 2; ++i)
        if (perm[i] != i) return false;
    return perm[r - 2] == r - 1 && perm[r - 1] == r - 2;
}

// x = Mul(y, c) with c a constant scalar and x read once, same shape as y: y, with *scale multiplied by c.
ir::Value* strip_scalar_mul(ir::Value* x, const UseMap& uses, double* scale, std::vector<ir::Node*>* matched) {
    ir::Node* m = producer_of(x, "Mul");
    if (!m || !uses.single_use(x)) return x;
    for (int i = 0; i < 2; ++i) {
        double c;
        ir::Value* y = m->input(1 - i);
        if (const_scalar(m->input(i), &c) && c != 0 && y && y->dims.size() == x->dims.size()) {  // 0: default
            *scale *= c;
            matched->push_back(m);
            return y;
        }
    }
    return x;
}

bool try_fuse(ir::Graph& g, ir::Node* softmax, const UseMap& uses) {
    ir::Value* s = softmax->input(0);
    int rank = static_cast<int>(s->dims.size());
    int64_t axis = softmax->attrs.get_int("axis", -1);
    if (rank < 2 || (axis != -1 && axis != rank - 1) || s->dtype != DataType::kFloat32) return false;
    ir::Node* out_mm = uses.only_user(softmax->outputs[0]);
    if (!out_mm || out_mm->op_type != "MatMul" || out_mm->input(0) != softmax->outputs[0]) return false;
    std::vector<ir::Node*> matched = {softmax, out_mm};

    ir::Value* mask = nullptr;
    bool mask_bool = false;
    ir::Value* t = s;
    if (!uses.single_use(s)) return false;
    if (ir::Node* add = producer_of(s, "Add")) {
        // which side is the scores? the one coming (through a scale) from a MatMul
        for (int i = 0; i < 2 && !mask; ++i) {
            ir::Value* cand = add->input(i);
            ir::Node* p = cand->producer;
            if (p && (p->op_type == "MatMul" || p->op_type == "Div" || p->op_type == "Mul")) {
                t = cand;
                mask = add->input(1 - i);
            }
        }
        if (!mask) return false;
        matched.push_back(add);
    } else if (ir::Node* w = producer_of(s, "Where")) {
        double fill;
        if (!const_scalar(w->input(2), &fill) || fill > -1e4 || w->input(0)->dtype != DataType::kBool) return false;
        mask = w->input(0);
        mask_bool = true;
        t = w->input(1);
        matched.push_back(w);
    }
    if (t != s && !uses.single_use(t)) return false;

    double scale = 1.0;
    ir::Value* mm_out = t;
    if (ir::Node* d = producer_of(t, "Div"); d && const_scalar(d->input(1), &scale) && scale != 0) {
        scale = 1.0 / scale;
        mm_out = d->input(0);
        matched.push_back(d);
    } else if (ir::Node* m = producer_of(t, "Mul")) {
        for (int i = 0; i < 2; ++i)
            if (const_scalar(m->input(i), &scale)) {
                mm_out = m->input(1 - i);
                matched.push_back(m);
                break;
            }
        if (mm_out == t) return false;
    }
    ir::Node* qk = producer_of(mm_out, "MatMul");
    if (!qk || (mm_out != t && !uses.single_use(mm_out))) return false;
    matched.push_back(qk);
    ir::Value* q = strip_scalar_mul(qk->input(0), uses, &scale, &matched);
    ir::Value* k = strip_scalar_mul(qk->input(1), uses, &scale, &matched);
    ir::Value* v = out_mm->input(1);
    int64_t k_transposed = 1;
    if (ir::Node* tr = producer_of(k, "Transpose"); tr && swaps_last_two(tr) && uses.single_use(k)) {
        matched.push_back(tr);
        k = tr->input(0);
        k_transposed = 0;
    }
    if (q->dims.size() != static_cast<size_t>(rank) || k->dims.size() != q->dims.size() ||
        v->dims.size() != q->dims.size())
        return false;

    ir::Value* out = out_mm->outputs[0];
    std::vector<std::string> names = fused_names(matched);
    std::string name = g.unique_name(out_mm->name + "_attention");
    remove_nodes(g, matched);
    AttributeMap attrs;
    attrs.set("scale", static_cast<float>(scale));
    attrs.set("k_transposed", k_transposed);
    if (mask_bool) attrs.set("mask_is_bool", int64_t{1});
    std::vector<ir::Value*> ins = {q, k, v};
    if (mask) ins.push_back(mask);
    g.add_node("Attention", name, ins, {out}, attrs, "kiln")->fused_from = names;
    return true;
}

}  // namespace

bool fuse_attention(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            if (n->op_type == "Softmax" && n->domain.empty() && try_fuse(g, n, uses)) {
                changed = again = true;
                break;
            }
        }
    }
    return changed;
}

}  // namespace kiln::passes

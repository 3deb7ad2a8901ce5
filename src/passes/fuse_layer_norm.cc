// Recognises normalisations written out by exporters:
//   LayerNorm: mean = ReduceMean(x); d = x - mean; var = ReduceMean(d^2); y = d / sqrt(var + eps) [* gamma] [+ beta]
//              -> LayerNormalization(x, gamma, beta, axis, epsilon)
//   RMSNorm:   ms = ReduceMean(x^2); y = x / sqrt(ms + eps) * gamma  (or x * Reciprocal(sqrt(...)) * gamma)
//              -> RMSNormalization(x, gamma, axis, epsilon)
// The reduced axes must be the trailing ones (axis .. rank-1), keepdims=1; gamma/beta constants of the
// normalised shape.
#include <cstring>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

// ReduceMean over trailing axes with keepdims; returns the first axis or -1.
int trailing_mean_axis(const ir::Node* r, int rank) {
    if (!r || r->op_type != "ReduceMean" || r->attrs.get_int("keepdims", 1) != 1) return -1;
    std::vector<int64_t> axes;
    if (!reduce_axes(r, rank, &axes) || axes.empty() || axes.back() != rank - 1) return -1;
    for (size_t i = 1; i < axes.size(); ++i)
        if (axes[i] != axes[i - 1] + 1) return -1;
    return static_cast<int>(axes.front());
}

bool is_square_of(const ir::Value* v, const ir::Value* x) {
    if (ir::Node* p = producer_of(v, "Pow")) return p->input(0) == x && is_const_near(p->input(1), 2.0);
    if (ir::Node* m = producer_of(v, "Mul")) return m->input(0) == x && m->input(1) == x;
    return false;
}

// y = num / sqrt(var + eps) via Div or Mul(Reciprocal); returns the node producing y and fills eps / matched.
ir::Node* match_rsqrt_scale(const ir::Value* var_plus_eps_src, const UseMap& uses, double* eps,
                            std::vector<ir::Node*>* matched, const ir::Value** numerator) {
    ir::Node* add = uses.only_user(var_plus_eps_src);
    if (!add || add->op_type != "Add") return nullptr;
    ir::Value* e = other_input(add, var_plus_eps_src);
    if (!const_scalar(e, eps)) return nullptr;
    ir::Node* sq = uses.only_user(add->outputs[0]);
    if (!sq || sq->op_type != "Sqrt") return nullptr;
    ir::Node* next = uses.only_user(sq->outputs[0]);
    if (!next) return nullptr;
    if (next->op_type == "Div" && next->input(1) == sq->outputs[0]) {
        matched->insert(matched->end(), {add, sq, next});
        *numerator = next->input(0);
        return next;
    }
    if (next->op_type == "Reciprocal") {
        ir::Node* mul = uses.only_user(next->outputs[0]);
        if (!mul || mul->op_type != "Mul") return nullptr;
        matched->insert(matched->end(), {add, sq, next, mul});
        *numerator = other_input(mul, next->outputs[0]);
        return mul;
    }
    return nullptr;
}

// Constant whose shape is the normalised trailing shape (leading 1s allowed).
bool is_affine_param(const ir::Value* v, const ir::Value* x, int axis) {
    if (!v || !v->is_constant() || v->dtype != x->dtype) return false;
    const Shape& s = v->constant->shape();
    int norm_rank = static_cast<int>(x->dims.size()) - axis;
    if (static_cast<int>(s.size()) > static_cast<int>(x->dims.size())) return false;
    for (int i = 0; i < static_cast<int>(s.size()); ++i) {
        int xd = static_cast<int>(x->dims.size()) - static_cast<int>(s.size()) + i;
        if (i < static_cast<int>(s.size()) - norm_rank) {
            if (s[i] != 1) return false;
        } else if (!x->dims[xd].is_static() || x->dims[xd].value != s[i]) {
            return false;
        }
    }
    return true;
}

Tensor flatten_param(const ir::Value* v, const ir::Value* x, int axis) {
    Shape s(x->dims.size() - axis);
    for (size_t i = 0; i < s.size(); ++i) s[i] = x->dims[axis + i].value;
    return v->constant->clone().reshaped(s);
}

// Optional "* gamma" then "+ beta" after `y`; returns the final node.
ir::Node* match_affine(ir::Node* y, const ir::Value* x, int axis, const UseMap& uses, const ir::Value** gamma,
                       const ir::Value** beta, std::vector<ir::Node*>* matched) {
    ir::Node* last = y;
    ir::Node* mul = uses.only_user(last->outputs[0]);
    if (mul && mul->op_type == "Mul" && is_affine_param(other_input(mul, last->outputs[0]), x, axis)) {
        *gamma = other_input(mul, last->outputs[0]);
        matched->push_back(mul);
        last = mul;
        ir::Node* add = uses.only_user(last->outputs[0]);
        if (add && add->op_type == "Add" && is_affine_param(other_input(add, last->outputs[0]), x, axis)) {
            *beta = other_input(add, last->outputs[0]);
            matched->push_back(add);
            last = add;
        }
    }
    return last;
}

void replace(ir::Graph& g, const std::string& op, ir::Value* x, const ir::Value* gamma, const ir::Value* beta,
             int axis, double eps, ir::Node* last, const std::vector<ir::Node*>& matched) {
    ir::Value* out = last->outputs[0];
    std::vector<std::string> names = fused_names(matched);
    std::string name = g.unique_name(last->name + "_" + (op == "LayerNormalization" ? "layer_norm" : "rms_norm"));
    Tensor gamma_t = gamma ? flatten_param(gamma, x, axis) : Tensor();
    Tensor beta_t = beta ? flatten_param(beta, x, axis) : Tensor();
    if (!gamma) {
        Shape s(x->dims.size() - axis);
        for (size_t i = 0; i < s.size(); ++i) s[i] = x->dims[axis + i].value;
        gamma_t = Tensor(x->dtype, s);
        for (int64_t i = 0; i < gamma_t.numel(); ++i) gamma_t.data<float>()[i] = 1.f;
    }
    remove_nodes(g, matched);
    std::vector<ir::Value*> ins = {x, g.add_constant(g.unique_name(name + "_scale"), gamma_t)};
    if (beta) ins.push_back(g.add_constant(g.unique_name(name + "_bias"), beta_t));
    AttributeMap attrs;
    attrs.set("axis", static_cast<int64_t>(axis));
    attrs.set("epsilon", static_cast<float>(eps));
    g.add_node(op, name, ins, {out}, attrs)->fused_from = names;
}

bool static_tail(const ir::Value* x, int axis) {
    for (size_t i = axis; i < x->dims.size(); ++i)
        if (!x->dims[i].is_static()) return false;
    return x->dtype == DataType::kFloat32;
}

bool try_layer_norm(ir::Graph& g, ir::Node* mean, const UseMap& uses) {
    ir::Value* x = mean->input(0);
    int rank = static_cast<int>(x->dims.size());
    int axis = trailing_mean_axis(mean, rank);
    if (axis < 0 || !static_tail(x, axis)) return false;
    ir::Node* sub = uses.only_user(mean->outputs[0]);
    if (!sub || sub->op_type != "Sub" || sub->input(0) != x || sub->input(1) != mean->outputs[0]) return false;
    ir::Value* d = sub->outputs[0];
    const std::vector<ir::Node*>& d_uses = uses.uses(d);
    if (d->is_output || d_uses.size() != 2) return false;
    ir::Node* sq = nullptr;
    for (ir::Node* u : d_uses)
        if (is_square_of(u->outputs[0], d)) sq = u;
    if (!sq) return false;
    ir::Node* var = uses.only_user(sq->outputs[0]);
    if (!var || trailing_mean_axis(var, rank) != axis) return false;
    std::vector<ir::Node*> matched = {mean, sub, sq, var};
    double eps = 0;
    const ir::Value* num = nullptr;
    ir::Node* y = match_rsqrt_scale(var->outputs[0], uses, &eps, &matched, &num);
    if (!y || num != d) return false;
    const ir::Value *gamma = nullptr, *beta = nullptr;
    ir::Node* last = match_affine(y, x, axis, uses, &gamma, &beta, &matched);
    replace(g, "LayerNormalization", x, gamma, beta, axis, eps, last, matched);
    return true;
}

bool try_rms_norm(ir::Graph& g, ir::Node* ms, const UseMap& uses) {
    ir::Value* sqv = ms->input(0);
    ir::Node* sq = sqv ? sqv->producer : nullptr;
    if (!sq || !uses.single_use(sqv)) return false;
    ir::Value* x = sq->input(0);
    if (!is_square_of(sqv, x)) return false;
    int rank = static_cast<int>(x->dims.size());
    int axis = trailing_mean_axis(ms, rank);
    if (axis < 0 || !static_tail(x, axis)) return false;
    std::vector<ir::Node*> matched = {sq, ms};
    double eps = 0;
    const ir::Value* num = nullptr;
    ir::Node* y = match_rsqrt_scale(ms->outputs[0], uses, &eps, &matched, &num);
    if (!y || num != x) return false;
    const ir::Value *gamma = nullptr, *beta = nullptr;
    ir::Node* last = match_affine(y, x, axis, uses, &gamma, &beta, &matched);
    if (beta) {  // RMSNorm has no bias: leave the Add outside
        matched.pop_back();
        last = matched.back();
    }
    replace(g, "RMSNormalization", x, gamma, nullptr, axis, eps, last, matched);
    return true;
}

}  // namespace

bool fuse_layer_norm(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            if (n->op_type != "ReduceMean" || !n->domain.empty()) continue;
            if (try_layer_norm(g, n, uses) || try_rms_norm(g, n, uses)) {
                changed = again = true;
                break;
            }
        }
    }
    return changed;
}

}  // namespace kiln::passes

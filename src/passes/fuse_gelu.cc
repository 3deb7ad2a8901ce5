// Recognises GELU written out by exporters and replaces it with one Gelu node:
//   erf form:  0.5 * x * (1 + erf(x / sqrt(2)))                                  -> Gelu(x)
//   tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))          -> Gelu(x, approximate="tanh")
// The product 0.5 * x * (1 + f) is matched in any association of its two Muls.
#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kSqrt2OverPi = 0.7978845608028654;

// x such that v = x / sqrt(2) or x * (1 / sqrt(2)).
ir::Value* erf_argument(const ir::Value* v, const UseMap& uses, std::vector<ir::Node*>* matched) {
    if (ir::Node* d = producer_of(v, "Div"); d && is_const_near(d->input(1), kSqrt2) && uses.single_use(v)) {
        matched->push_back(d);
        return d->input(0);
    }
    if (ir::Node* m = producer_of(v, "Mul"); m && uses.single_use(v)) {
        for (int i = 0; i < 2; ++i)
            if (is_const_near(m->input(i), 1.0 / kSqrt2)) {
                matched->push_back(m);
                return m->input(1 - i);
            }
    }
    return nullptr;
}

// x such that v = sqrt(2/pi) * (x + 0.044715 * x^3), x^3 as Pow(x, 3) or x * x * x.
ir::Value* tanh_argument(const ir::Value* v, const UseMap& uses, std::vector<ir::Node*>* matched) {
    ir::Node* scale = producer_of(v, "Mul");
    if (!scale || !uses.single_use(v)) return nullptr;
    ir::Value* inner = nullptr;
    for (int i = 0; i < 2; ++i)
        if (is_const_near(scale->input(i), kSqrt2OverPi, 1e-3)) inner = scale->input(1 - i);
    ir::Node* add = producer_of(inner, "Add");
    if (!add || !uses.single_use(inner)) return nullptr;
    for (int i = 0; i < 2; ++i) {
        ir::Value* x = add->input(i);
        ir::Value* cubic_term = add->input(1 - i);
        ir::Node* c = producer_of(cubic_term, "Mul");
        if (!c || !uses.single_use(cubic_term)) continue;
        for (int j = 0; j < 2; ++j) {
            if (!is_const_near(c->input(j), 0.044715, 1e-3)) continue;
            ir::Value* cube = c->input(1 - j);
            ir::Node* p = producer_of(cube, "Pow");
            if (!p || p->input(0) != x || !is_const_near(p->input(1), 3.0) || !uses.single_use(cube)) continue;
            matched->insert(matched->end(), {scale, add, c, p});
            return x;
        }
    }
    return nullptr;
}

// Matches 0.5 * x * one_plus (one_plus read once) and returns the node producing the result.
ir::Node* match_half_x_times(ir::Value* one_plus, ir::Value* x, const UseMap& uses, std::vector<ir::Node*>* matched) {
    ir::Node* m1 = uses.only_user(one_plus);
    if (!m1 || m1->op_type != "Mul") return nullptr;
    ir::Value* o = other_input(m1, one_plus);
    if (!o) return nullptr;
    if (ir::Node* hx = producer_of(o, "Mul"); hx && uses.single_use(o)) {  // (x * 0.5) * (1 + f)
        if ((hx->input(0) == x && is_const_near(hx->input(1), 0.5)) ||
            (hx->input(1) == x && is_const_near(hx->input(0), 0.5))) {
            matched->insert(matched->end(), {hx, m1});
            return m1;
        }
    }
    if (o == x || is_const_near(o, 0.5)) {  // (x * (1 + f)) * 0.5   or   (0.5 * (1 + f)) * x
        ir::Node* m2 = uses.only_user(m1->outputs[0]);
        if (!m2 || m2->op_type != "Mul") return nullptr;
        ir::Value* rest = other_input(m2, m1->outputs[0]);
        if ((o == x && is_const_near(rest, 0.5)) || (o != x && rest == x)) {
            matched->insert(matched->end(), {m1, m2});
            return m2;
        }
    }
    return nullptr;
}

bool try_fuse(ir::Graph& g, ir::Node* f, const UseMap& uses) {
    bool is_erf = f->op_type == "Erf";
    std::vector<ir::Node*> matched = {f};
    ir::Value* x = is_erf ? erf_argument(f->input(0), uses, &matched) : tanh_argument(f->input(0), uses, &matched);
    if (!x) return false;
    ir::Node* add = uses.only_user(f->outputs[0]);
    if (!add || add->op_type != "Add" || !is_const_near(other_input(add, f->outputs[0]), 1.0)) return false;
    matched.push_back(add);
    ir::Node* last = match_half_x_times(add->outputs[0], x, uses, &matched);
    if (!last) return false;
    ir::Value* out = last->outputs[0];
    std::vector<std::string> names = fused_names(matched);
    std::string name = g.unique_name(last->name + "_gelu");
    remove_nodes(g, matched);
    AttributeMap attrs;
    if (!is_erf) attrs.set("approximate", std::string("tanh"));
    g.add_node("Gelu", name, {x}, {out}, attrs)->fused_from = names;
    return true;
}

}  // namespace

bool fuse_gelu(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            if ((n->op_type == "Erf" || n->op_type == "Tanh") && n->domain.empty() && try_fuse(g, n, uses)) {
                changed = again = true;
                break;  // uses changed: rebuild
            }
        }
    }
    return changed;
}

}  // namespace kiln::passes

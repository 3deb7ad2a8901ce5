// The first half of an inverted-residual block (MobileNetV2, EfficientNet) -> one FusedExpandDepthwise:
//   m = FusedConv(x, W1, B1) {1x1, stride 1, no padding, act1};  y = FusedConv(m, W2, B2) {depthwise k x k, act2}
// (either may be a plain Conv: no activation)
//   => y = FusedExpandDepthwise(x, W1, B1, W2, B2)
// so the cpu backend computes m row by row in a cache-resident ring buffer instead of writing and re-reading it
// (conv_expand_depthwise.cc). cpu target and fp32 plans only, and only the forms that kernel runs: k 3 or 5, stride 1
// or 2, no dilation, act1 / act2 in {none, Relu, Clip with min <= 0 <= max, Silu}, constant weights and biases, m read
// only by the depthwise convolution. KILN_CPU_EXPAND_DW=0 turns the pass off; blocks whose m has fewer than
// KILN_CPU_EXPAND_DW_MIN_PIXELS pixels per image (default 0) stay two convolutions.
//
// A squeeze-excite block after a fused node (EfficientNet: GlobalAveragePool -> FusedConv {act} -> FusedConv
// {Sigmoid} -> Mul) goes into it too (op_list.def): the kernel pools the depthwise rows as it stores them and scales
// them in the same parallel region. KILN_CPU_EXPAND_DW_SE=0 keeps those blocks as four nodes.
//
// The projection after a fused node without squeeze-excite (MobileNetV2: FusedConv 1x1, no activation, with the
// block's input as residual or none) goes into it too (the kernel splits rows over the threads, or on images of
// fewer than KILN_CPU_EXPAND_DW_PROJECT_ROWS = 14 rows runs two phases). KILN_CPU_EXPAND_DW_PROJECT=0 keeps the
// projection a separate node; KILN_CPU_EXPAND_DW_PROJECT_MIN_ROWS=N only takes it into nodes whose output has at
// least N static rows (default 0: all).
#include <cstdlib>
#include <string>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool fusable_act(const AttributeMap& a, const std::string& prefix) {
    const std::string act = a.get_string(prefix + "activation", "");
    if (act == "" || act == "Relu" || act == "Silu") return true;
    return act == "Clip" && a.get_float(prefix + "activation_alpha", 0.f) <= 0.f &&
           a.get_float(prefix + "activation_beta", 0.f) >= 0.f;
}

bool all_equal(const std::vector<int64_t>& v, int64_t x) {
    for (int64_t e : v)
        if (e != x) return false;
    return true;
}

// A Conv, or a FusedConv without residual, with constant 4-D weights and a constant bias.
bool plain_fused_conv(const ir::Node* n) {
    const bool conv = n->op_type == "Conv" && n->domain.empty();
    if (!conv && (n->op_type != "FusedConv" || n->domain != "kiln")) return false;
    if (n->input(3) || n->inputs.size() < 3) return false;
    const ir::Value* w = n->input(1);
    const ir::Value* b = n->input(2);
    return w && w->is_constant() && w->constant->shape().size() == 4 && b && b->is_constant() &&
           n->input(0)->dtype == DataType::kFloat32;
}

// A FusedConv without residual (or a Conv) with constant 1x1 weights [out, in, 1, 1] and bias, group 1, stride 1,
// no padding.
bool plain_conv1x1(const ir::Node* n, int64_t out, int64_t in) {
    const bool conv = n->op_type == "Conv" && n->domain.empty();
    if ((!conv && (n->op_type != "FusedConv" || n->domain != "kiln")) || n->input(3) || n->inputs.size() < 3)
        return false;
    const ir::Value* w = n->input(1);
    const ir::Value* b = n->input(2);
    if (!w || !w->is_constant() || !b || !b->is_constant() || b->constant->numel() != out) return false;
    if (w->constant->shape() != Shape{out, in, 1, 1} || n->attrs.get_int("group", 1) != 1) return false;
    const std::string pad = n->attrs.get_string("auto_pad", "NOTSET");
    return (pad == "NOTSET" || pad == "VALID") && all_equal(n->attrs.get_ints("strides", {1, 1}), 1) &&
           all_equal(n->attrs.get_ints("pads", {0}), 0);
}

// The squeeze-excite block reading a fused node's output D, when all of it can go into the node:
//   P = GlobalAveragePool(D); H = FusedConv(P, Wr, Br) {act}; S = FusedConv(H, We, Be) {Sigmoid}; Y = Mul(D, S)
//   => Y = FusedExpandDepthwise(x, W1, B1, W2, B2, Wr, Br, We, Be) {se_activation = act}
// D must be read only by the pooling and the Mul, P, H and S only by the next node of the block.
bool absorb_squeeze_excite(ir::Graph& g, ir::Node* f, const UseMap& uses) {
    ir::Value* d = f->outputs[0];
    const std::vector<ir::Node*>& readers = uses.uses(d);
    if (d->is_output || readers.size() != 2) return false;
    const int64_t c = f->input(1)->constant->shape()[0];
    for (int i = 0; i < 2; ++i) {
        ir::Node* gap = readers[i];
        ir::Node* mul = readers[1 - i];
        if (gap->op_type != "GlobalAveragePool" || !gap->domain.empty() || mul->op_type != "Mul" ||
            !mul->domain.empty() || mul->inputs.size() != 2)
            continue;
        ir::Node* r = uses.only_user(gap->outputs[0]);
        if (!r || !uses.single_use(gap->outputs[0]) || r->input(0) != gap->outputs[0]) continue;
        const int64_t cr = r->input(1) && r->input(1)->is_constant() ? r->input(1)->constant->shape()[0] : -1;
        if (cr < 1 || !plain_conv1x1(r, cr, c)) continue;
        ir::Node* e = uses.only_user(r->outputs[0]);
        if (!e || !uses.single_use(r->outputs[0]) || e->input(0) != r->outputs[0] || !plain_conv1x1(e, c, cr) ||
            e->attrs.get_string("activation", "") != "Sigmoid")
            continue;
        if (!uses.single_use(e->outputs[0]) || uses.only_user(e->outputs[0]) != mul ||
            other_input(mul, e->outputs[0]) != d)
            continue;
        f->inputs.insert(f->inputs.end(), {r->input(1), r->input(2), e->input(1), e->input(2)});
        f->attrs.set("se_activation", r->attrs.get_string("activation", ""));
        f->attrs.set("se_activation_alpha", r->attrs.get_float("activation_alpha", 0.f));
        f->attrs.set("se_activation_beta", r->attrs.get_float("activation_beta", 0.f));
        ir::Value* y = mul->outputs[0];
        for (ir::Node* n : {gap, r, e}) f->fused_from.push_back(n->name);
        f->fused_from.push_back(mul->name);
        for (ir::Node* n : {gap, r, e, mul}) g.remove_node(n);
        f->outputs[0] = y;
        y->producer = f;
        return true;
    }
    return false;
}

// The projection reading a fused node's output D (no squeeze-excite), when it can go into the node:
//   Y = FusedConv(D, Wp, Bp, Z?) {1x1, no activation} (or Conv(D, Wp, Bp)), Z absent or the node's input X
//   => Y = FusedExpandDepthwise(x, W1, B1, W2, B2, -, -, -, -, Wp, Bp, Z?)
// D must be read only by the projection and have at least `min_rows` static rows (min_rows 0: any); Y must be able
// to stay nChw16c.
bool absorb_projection(ir::Graph& g, ir::Node* f, const UseMap& uses, int64_t min_rows) {
    ir::Value* d = f->outputs[0];
    if (f->inputs.size() != 5 || d->is_output || !uses.single_use(d)) return false;
    ir::Node* p = uses.only_user(d);
    if (!p || p->input(0) != d || p->attrs.get_string("activation", "") != "") return false;
    const int64_t c = f->input(1)->constant->shape()[0];
    const int64_t cout = p->input(1) && p->input(1)->is_constant() ? p->input(1)->constant->shape()[0] : -1;
    if (p->inputs.size() < 3 || cout < 1) return false;
    // plain_conv1x1 takes no residual: check it on the node without its Z
    ir::Value* z = p->input(3);
    if (z && z != f->input(0)) return false;
    if (z) p->inputs.resize(3);
    const bool ok = plain_conv1x1(p, cout, c);
    if (z) p->inputs.push_back(z);
    if (!ok) return false;
    if (min_rows > 0 && (d->dims.size() != 4 || !d->dims[2].is_static() || d->dims[2].value < min_rows)) return false;
    // Y must be able to stay nChw16c, or the node runs its fallback: not a graph output, and (as the layout planner
    // rules) its channel padding at most half its channels
    const int64_t padded = (cout + 15) / 16 * 16;
    if (p->outputs[0]->is_output || 2 * padded > 3 * cout) return false;
    f->inputs.resize(9, nullptr);
    f->inputs.insert(f->inputs.end(), {p->input(1), p->input(2)});
    if (z) f->inputs.push_back(z);
    ir::Value* y = p->outputs[0];
    f->fused_from.push_back(p->name);
    g.remove_node(p);
    f->outputs[0] = y;
    y->producer = f;
    return true;
}

int64_t env_int(const char* name, int64_t fallback) {
    const char* e = std::getenv(name);
    return e ? std::atoll(e) : fallback;
}

int64_t min_pixels() {
    const char* e = std::getenv("KILN_CPU_EXPAND_DW_MIN_PIXELS");
    return e ? std::atoll(e) : 0;
}

}  // namespace

bool fuse_expand_depthwise(ir::Graph& g, PassContext& ctx) {
    const char* env = std::getenv("KILN_CPU_EXPAND_DW");
    // fp32 plans only: a bf16 layer would run the two convolutions through a plain fp32 temporary (the kernel's
    // fallback), slower than the bf16 chain it replaces
    if (ctx.backend != "cpu" || ctx.precision != "fp32" || (env && std::string(env) == "0")) return false;
    const int64_t min_px = min_pixels();
    UseMap uses(g);
    std::vector<std::pair<ir::Node*, ir::Node*>> pairs;  // (expand, depthwise)
    for (ir::Node* dw : g.nodes()) {
        if (!plain_fused_conv(dw) || !fusable_act(dw->attrs, "")) continue;
        const Shape& w2 = dw->input(1)->constant->shape();
        const int64_t c = w2[0], k = w2[2];
        if (w2[1] != 1 || k != w2[3] || (k != 3 && k != 5) || dw->attrs.get_int("group", 1) != c) continue;
        const std::vector<int64_t> s = dw->attrs.get_ints("strides", {1, 1});
        if (s.size() != 2 || s[0] != s[1] || (s[0] != 1 && s[0] != 2)) continue;
        if (!all_equal(dw->attrs.get_ints("dilations", {1, 1}), 1)) continue;
        ir::Value* m = dw->input(0);
        ir::Node* ex = m->producer;
        if (!ex || !plain_fused_conv(ex) || !fusable_act(ex->attrs, "") || !uses.single_use(m) || m->is_output)
            continue;
        const Shape& w1 = ex->input(1)->constant->shape();
        if (w1[0] != c || w1[2] != 1 || w1[3] != 1 || ex->attrs.get_int("group", 1) != 1) continue;
        if (!all_equal(ex->attrs.get_ints("strides", {1, 1}), 1) || !all_equal(ex->attrs.get_ints("pads", {0}), 0))
            continue;
        const std::string pad = ex->attrs.get_string("auto_pad", "NOTSET");
        if (pad != "NOTSET" && pad != "VALID") continue;
        if (min_px > 0) {
            if (m->dims.size() != 4 || !m->dims[2].is_static() || !m->dims[3].is_static()) continue;
            if (m->dims[2].value * m->dims[3].value < min_px) continue;
        }
        pairs.emplace_back(ex, dw);
    }
    for (auto [ex, dw] : pairs) {
        dw->op_type = "FusedExpandDepthwise";
        dw->domain = "kiln";
        dw->attrs.set("expand_activation", ex->attrs.get_string("activation", ""));
        dw->attrs.set("expand_activation_alpha", ex->attrs.get_float("activation_alpha", 0.f));
        dw->attrs.set("expand_activation_beta", ex->attrs.get_float("activation_beta", 0.f));
        dw->inputs = {ex->input(0), ex->input(1), ex->input(2), dw->input(1), dw->input(2)};
        dw->fused_from.insert(dw->fused_from.begin(), ex->name);
        g.remove_node(ex);
    }
    const char* se_env = std::getenv("KILN_CPU_EXPAND_DW_SE");
    if (!pairs.empty() && !(se_env && std::string(se_env) == "0")) {
        UseMap after(g);
        for (auto [ex, dw] : pairs) absorb_squeeze_excite(g, dw, after);  // blocks are disjoint: one map serves all
    }
    const char* proj_env = std::getenv("KILN_CPU_EXPAND_DW_PROJECT");
    if (!pairs.empty() && !(proj_env && std::string(proj_env) == "0")) {
        UseMap after(g);
        const int64_t min_rows = env_int("KILN_CPU_EXPAND_DW_PROJECT_MIN_ROWS", 0);
        for (auto [ex, dw] : pairs) absorb_projection(g, dw, after, min_rows);
    }
    if (!pairs.empty()) g.remove_unused_values();
    return !pairs.empty();
}

}  // namespace kiln::passes

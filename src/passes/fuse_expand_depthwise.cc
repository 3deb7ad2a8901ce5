// The first half of an inverted-residual block (MobileNetV2, EfficientNet) -> one FusedExpandDepthwise:
//   m = FusedConv(x, W1, B1) {1x1, stride 1, no padding, act1};  y = FusedConv(m, W2, B2) {depthwise k x k, act2}
// (either may be a plain Conv: no activation)
//   => y = FusedExpandDepthwise(x, W1, B1, W2, B2)
// so the cpu backend computes m row by row in a cache-resident ring buffer instead of writing and re-reading it
// (conv_expand_depthwise.cc). cpu target and fp32 plans only, and only the forms that kernel runs: k 3 or 5, stride 1
// or 2, no dilation, act1 / act2 in {none, Relu, Clip with min <= 0 <= max, Silu}, constant weights and biases, m read
// only by the depthwise convolution. KILN_CPU_EXPAND_DW=0 turns the pass off; blocks whose m has fewer than
// KILN_CPU_EXPAND_DW_MIN_PIXELS pixels per image (default 0) stay two convolutions.
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
    if (!pairs.empty()) g.remove_unused_values();
    return !pairs.empty();
}

}  // namespace kiln::passes

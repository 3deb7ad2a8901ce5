#pragma once
// FusedExpandDepthwise (op_list.def) as its two FusedConv layers (and its optional squeeze-excite block): the
// attributes of each, shared by the reference kernel and the cpu backend's fallback path.
#include <string>
#include <vector>

#include "kiln/attribute.h"

namespace kiln::backends {

/// The expand convolution's attributes, `activation` from `expand_activation`: 1x1, stride 1, no padding, unless the
/// node has `expand_strides` / `expand_pads` (a stem convolution in the expand's place, W1 [C, Cin, k, k]: see
/// op_list.def).
inline AttributeMap expand_conv_attrs(const AttributeMap& fused) {
    AttributeMap a;
    a.set("activation", fused.get_string("expand_activation", ""));
    a.set("activation_alpha", fused.get_float("expand_activation_alpha", 0.f));
    a.set("activation_beta", fused.get_float("expand_activation_beta", 0.f));
    if (fused.has("expand_strides")) a.set("strides", fused.get_ints("expand_strides", {1, 1}));
    if (fused.has("expand_pads")) a.set("pads", fused.get_ints("expand_pads", {0, 0, 0, 0}));
    return a;
}

/// M's spatial size (the expand's output) for an input of in_h x in_w with k x k weights W1.
inline void expand_output_hw(const AttributeMap& fused, int64_t k, int64_t in_h, int64_t in_w, int64_t* h,
                             int64_t* w) {
    const std::vector<int64_t> s = fused.get_ints("expand_strides", {1, 1});
    const std::vector<int64_t> p = fused.get_ints("expand_pads", {0, 0, 0, 0});
    *h = (in_h + p[0] + p[2] - k) / s[0] + 1;
    *w = (in_w + p[1] + p[3] - k) / s[1] + 1;
}

/// The depthwise convolution's attributes: everything but the expand_* and se_* ones.
inline AttributeMap depthwise_conv_attrs(const AttributeMap& fused) {
    AttributeMap a = fused;
    for (const char* k : {"expand_activation", "expand_activation_alpha", "expand_activation_beta", "expand_strides",
                          "expand_pads", "se_activation", "se_activation_alpha", "se_activation_beta"})
        a.erase(k);
    return a;
}

/// The squeeze-excite reduce convolution's attributes (`activation` from `se_activation`); its expand convolution
/// always ends in Sigmoid.
inline AttributeMap se_reduce_attrs(const AttributeMap& fused) {
    AttributeMap a;
    a.set("activation", fused.get_string("se_activation", ""));
    a.set("activation_alpha", fused.get_float("se_activation_alpha", 0.f));
    a.set("activation_beta", fused.get_float("se_activation_beta", 0.f));
    return a;
}

}  // namespace kiln::backends

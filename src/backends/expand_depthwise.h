#pragma once
// FusedExpandDepthwise (op_list.def) as its two FusedConv layers (and its optional squeeze-excite block): the
// attributes of each, shared by the reference kernel and the cpu backend's fallback path.
#include <string>

#include "kiln/attribute.h"

namespace kiln::backends {

/// The 1x1 expand convolution's attributes: stride 1, no padding, `activation` from `expand_activation`.
inline AttributeMap expand_conv_attrs(const AttributeMap& fused) {
    AttributeMap a;
    a.set("activation", fused.get_string("expand_activation", ""));
    a.set("activation_alpha", fused.get_float("expand_activation_alpha", 0.f));
    a.set("activation_beta", fused.get_float("expand_activation_beta", 0.f));
    return a;
}

/// The depthwise convolution's attributes: everything but the expand_* and se_* ones.
inline AttributeMap depthwise_conv_attrs(const AttributeMap& fused) {
    AttributeMap a = fused;
    for (const char* k : {"expand_activation", "expand_activation_alpha", "expand_activation_beta", "se_activation",
                          "se_activation_alpha", "se_activation_beta"})
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

#pragma once
// FusedExpandDepthwise (op_list.def) as its two FusedConv layers: the attributes of each, shared by the reference
// kernel and the cpu backend's fallback path.
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

/// The depthwise convolution's attributes: everything but the expand_* ones.
inline AttributeMap depthwise_conv_attrs(const AttributeMap& fused) {
    AttributeMap a = fused;
    for (const char* k : {"expand_activation", "expand_activation_alpha", "expand_activation_beta"}) a.erase(k);
    return a;
}

}  // namespace kiln::backends

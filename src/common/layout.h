#pragma once
// Memory layouts of activations. Every kernel reads and writes kPlain (dense row-major, what kiln::Tensor means).
// A backend may accept a blocked layout on some ports of a node (LayoutCaps); the planner then keeps a value blocked
// between such ports, so chains of convolutions, pooling and elementwise ops run without converting every
// activation to plain and back (the conversions remain only at the edges of such chains).
//
// A blocked value keeps its logical shape in the plan and in the Tensor the kernel sees; only the bytes behind the
// pointer differ, and there may be more of them (channel padding): layout_numel gives the element count to allocate.
#include <cstdint>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

enum class Layout : uint8_t {
    kPlain = 0,
    /// 4-D [N,C,H,W] stored as [N][ceil(C/16)][H][W][16] (oneDNN's nChw16c): 16 channels innermost, one AVX-512
    /// register. C is padded to a multiple of 16; kernels keep the padding channels zero, because oneDNN's blocked
    /// convolutions multiply them (by zero weights) and a NaN there would leak into real channels.
    kNChw16c = 1,
    /// nChw16c with bf16 elements (round to nearest even) instead of float32: an activation between bf16 layers of
    /// a --bf16 plan (convolutions, max pooling) that all read and write bf16, so it is converted neither after its
    /// producer nor before each consumer, and moves half the bytes. The logical dtype (plan, Tensor) stays float32.
    kNChw16cBf16 = 2,
};

inline constexpr int64_t kChannelBlock = 16;

inline const char* layout_name(Layout l) {
    return l == Layout::kNChw16c ? "nChw16c" : l == Layout::kNChw16cBf16 ? "nChw16c_bf16" : "plain";
}

/// Stored as [N][ceil(C/16)][H][W][16] (either element type).
inline bool is_blocked(Layout l) { return l == Layout::kNChw16c || l == Layout::kNChw16cBf16; }

/// Channels rounded up to the block.
inline int64_t padded_channels(int64_t c) { return (c + kChannelBlock - 1) / kChannelBlock * kChannelBlock; }

/// Elements to allocate for a value of logical shape `s` in layout `l` (padding included).
inline int64_t layout_numel(Layout l, const Shape& s) {
    if (!is_blocked(l) || s.size() != 4) return shape_numel(s);
    return s[0] * padded_channels(s[1]) * s[2] * s[3];
}

/// Bytes to allocate for a value of logical shape `s` and dtype size `elem_size` in layout `l`.
inline int64_t layout_bytes(Layout l, const Shape& s, size_t elem_size) {
    return layout_numel(l, s) * static_cast<int64_t>(l == Layout::kNChw16cBf16 ? 2 : elem_size);
}

/// Which ports of a node may hold a blocked (kNChw16c) value; a backend's answer for one node. Empty vectors mean
/// plain everywhere (the default for every node and backend).
struct LayoutCaps {
    std::vector<bool> inputs, outputs;  ///< per port: may be kNChw16c
    /// The blocked-capable ports must all share one layout (elementwise ops: out[i] = f(a[i], b[i]) in any layout
    /// as long as it is the same one). When false, the kernel converts each port on its own.
    bool tied = false;
    /// The node runs faster on blocked values (convolutions). A chain of values becomes blocked only if it touches
    /// such a node: blocking values that only flow between layout-neutral ops would gain nothing.
    bool prefers_blocked = false;
    /// An input port the output may be written over when that input dies at this node and has the output's layout
    /// and bytes (a convolution's residual Z, which its sum post-op accumulates onto in place); -1: none.
    int overwrite_input = -1;
    /// Per port (a subset of the blocked-capable ones): may also be kNChw16cBf16. A value becomes bf16 only when its
    /// producer's port and every consumer's port allow it (and, through tied ports, its whole group).
    std::vector<bool> bf16_inputs, bf16_outputs;
};

}  // namespace kiln

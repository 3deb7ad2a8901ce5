#pragma once
// Helpers shared by the neural-network layer inference functions (src/ops/conv_pool.cc, src/ops/nn.cc) and their
// reference kernels: sliding-window geometry (Conv, ConvTranspose, pools), Einsum equations and Resize plans.
// Every function that can fail takes `where` (e.g. "node 'conv1' (Conv)") to prefix its error messages.
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/tensor.h"

namespace kiln::ops {

// ------------------------------------------------------------------------------------------ sliding windows

/// kernel_shape/strides/dilations/pads/auto_pad (+ ceil_mode for pools) over the trailing `spatial` dims.
struct WindowAttrs {
    int spatial = 0;
    std::vector<int64_t> kernel;      ///< -1 where not known yet (Conv reads it from the weights)
    std::vector<int64_t> strides;     ///< default 1
    std::vector<int64_t> dilations;   ///< default 1
    std::vector<int64_t> pads;        ///< begin_0..begin_{s-1}, end_0..end_{s-1}; default 0
    std::string auto_pad = "NOTSET";  ///< NOTSET, SAME_UPPER, SAME_LOWER or VALID
    bool ceil_mode = false;
};

/// Parses and validates the window attributes. `kernel_hint` (may be empty or hold -1s) is the kernel extent
/// known from elsewhere (Conv's weight dims); kernel_shape, when present, must agree with it.
WindowAttrs parse_window_attrs(const AttributeMap& attrs, int spatial, const std::vector<int64_t>& kernel_hint,
                               bool require_kernel_shape, const std::string& where);

/// Output extent of spatial dim i for input extent `in` and the begin/end pads used there (auto_pad resolved).
/// Returns -1 (pads 0) when `in` or the kernel extent is unknown (< 0). Fails when the window does not fit.
///   NOTSET/VALID: out = floor_or_ceil((in + pb + pe - ((k - 1) * d + 1)) / s) + 1
///                 (ceil_mode drops a last window that would start inside the end padding)
///   SAME_*:       out = ceil(in / s), total pad = max(0, (out - 1) * s + (k - 1) * d + 1 - in),
///                 the odd extra at the end (SAME_UPPER) or at the beginning (SAME_LOWER)
int64_t window_output_dim(const WindowAttrs& w, int i, int64_t in, int64_t* pad_begin, int64_t* pad_end,
                          const std::string& where);

/// ConvTranspose geometry of spatial dim i: output_padding and output_shape (last `spatial` entries) included.
///   out = s * (in - 1) + output_padding + (k - 1) * d + 1 - pb - pe
/// With output_shape or SAME_* auto_pad (out = in * s), the total padding is derived from `out`:
///   total = max(0, s * (in - 1) + output_padding + (k - 1) * d + 1 - out), the odd extra at the end for
///   SAME_UPPER and at the beginning otherwise (as onnxruntime and the ONNX reference do).
struct ConvTransposeAttrs {
    WindowAttrs window;
    std::vector<int64_t> output_padding;  ///< default 0
    std::vector<int64_t> output_shape;    ///< empty when absent
};
ConvTransposeAttrs parse_conv_transpose_attrs(const AttributeMap& attrs, int spatial,
                                              const std::vector<int64_t>& kernel_hint, const std::string& where);
int64_t conv_transpose_output_dim(const ConvTransposeAttrs& a, int i, int64_t in, int64_t* pad_begin, int64_t* pad_end,
                                  const std::string& where);

// ------------------------------------------------------------------------------------------ einsum

/// A parsed Einsum equation with its ellipsis expanded for the given input ranks. Labels are numbered 0..n-1;
/// `inputs[t][d]` is the label of dim d of input t and `output` the labels of the output dims.
struct EinsumSpec {
    std::vector<std::vector<int>> inputs;
    std::vector<int> output;
    int num_labels = 0;
};
EinsumSpec parse_einsum(const std::string& equation, const std::vector<int>& input_ranks, const std::string& where);

/// Extent of every label: equal extents, or 1 broadcast against n. Fails on a mismatch; -1 where unknown.
std::vector<int64_t> einsum_label_dims(const EinsumSpec& spec, const std::vector<std::vector<int64_t>>& input_dims,
                                       const std::string& equation, const std::string& where);

// ------------------------------------------------------------------------------------------ resize

struct ResizeAttrs {
    std::string mode = "nearest";  ///< nearest or linear
    std::string coordinate_transformation_mode = "half_pixel";
    std::string nearest_mode = "round_prefer_floor";
    std::string keep_aspect_ratio_policy = "stretch";
    std::vector<int64_t> axes;  ///< empty: all axes
    float extrapolation_value = 0.f;
};
ResizeAttrs parse_resize_attrs(const AttributeMap& attrs, const std::string& where);

/// Output shape and the per-axis scales used by the coordinate transform, from the input shape (-1 where unknown)
/// and the values of `scales` or, when `use_sizes`, `sizes` (one per entry of axes, or per input dim).
/// out = floor(in * scale) (in float, as onnxruntime), or sizes with keep_aspect_ratio_policy applied, and then
/// scale = out / in. Output dims that cannot be computed yet are -1.
void resize_output(const ResizeAttrs& a, const Shape& in, const std::vector<float>& scales,
                   const std::vector<int64_t>& sizes, bool use_sizes, Shape* out, std::vector<float>* used_scales,
                   const std::string& where);

}  // namespace kiln::ops

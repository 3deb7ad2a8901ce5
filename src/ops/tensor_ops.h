#pragma once
// Parameter resolution shared by the data-movement / reduction inference functions and their kernels, so both
// sides clamp and normalise exactly the same way. Errors are prefixed with `where` (the node).
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/tensor.h"

namespace kiln::ops {

/// Normalises possibly negative axes against `rank`; fails on out-of-range (and, unless allowed, repeated) axes.
std::vector<int> normalize_axes(const std::vector<int64_t>& axes, int rank, const std::string& where,
                                const char* what = "axes", bool allow_repeats = false);

/// One sliced axis: out[i] = in[start + i * step] for i < count.
struct SliceAxis {
    int64_t start = 0, step = 1, count = 0;
};
/// ONNX Slice clamping for one axis of extent `dim` (starts/ends may be negative or huge such as INT64_MAX):
///   start += dim if start < 0; end += dim if end < 0;
///   step > 0: start, end clamped to [0, dim];   step < 0: start to [0, dim-1], end to [-1, dim-1];
///   count = max(0, ceil((end - start) / step)).
SliceAxis slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step);

/// Pads as 2*rank entries [x1_begin, x2_begin, ..., x1_end, x2_end, ...] from Pad's pads (+ optional axes) input.
std::vector<int64_t> resolve_pads(const std::vector<int64_t>& pads, const std::vector<int64_t>* axes, int rank,
                                  const std::string& where);

/// Per-axis reduce flag from Reduce*'s axes input (nullptr when omitted). Empty axes reduce everything unless
/// noop_with_empty_axes, in which case nothing is reduced.
std::vector<bool> reduce_mask(const std::vector<int64_t>* axes, int rank, bool noop_with_empty_axes,
                              const std::string& where);

/// Constant's output from its attributes (exactly one of value, value_float(s), value_int(s)).
Tensor constant_value(const AttributeMap& attrs, const std::string& where);

}  // namespace kiln::ops

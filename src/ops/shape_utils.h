#pragma once
// Shape helpers shared by inference functions (symbolic) and kernels (concrete).
#include <vector>

#include "kiln/tensor.h"
#include "src/ops/op_schema.h"

namespace kiln::ops {

/// Multidirectional (numpy) broadcast of symbolic shapes; fails naming the node when incompatible.
SymShape broadcast_shapes(const InferContext& ctx, const SymShape& a, const SymShape& b);
/// Concrete broadcast; throws kInvalidArgument when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b);
/// Row-major strides of `shape`.
std::vector<int64_t> strides_of(const Shape& shape);
/// Strides of `in` broadcast to `out` (0 on broadcast dims), with `in` right-aligned to out's rank.
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);
/// Concrete shape of a symbolic one; throws kInternal if any dim is not static.
Shape to_concrete(const SymShape& s);
/// Product of dims when all static, else an unknown dim.
Dim dim_product(const SymShape& s, int begin, int end);
/// Dim arithmetic that stays symbolic-aware: known op known -> known; otherwise unknown.
Dim dim_mul(const Dim& a, const Dim& b);
/// Shape passthrough: output 0 gets the dtype and dims of input 0.
void infer_same_as_input(InferContext& ctx);
/// Elementwise with broadcast; output dtype of input 0 (or bool for comparisons when `to_bool`).
void infer_broadcast(InferContext& ctx);
void infer_broadcast_bool(InferContext& ctx);

}  // namespace kiln::ops

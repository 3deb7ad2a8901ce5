// Inference for elementwise ops that the shared broadcast/passthrough functions (shape_utils.cc) do not cover:
// Where, Cast, Dropout, plus Pow (mixed base/exponent dtypes) and PRelu (unidirectional broadcast).
#include <vector>

#include "src/common/check.h"
#include "src/ops/op_schema.h"
#include "src/ops/shape_utils.h"

namespace kiln::ops {

// Not (yet) named by op_list.def; see the note on infer_pow / infer_prelu below.
void infer_pow(InferContext& ctx);
void infer_prelu(InferContext& ctx);

namespace {

// ONNX TensorProto.DataType numbers kiln can represent; false for the others (uint16, string, complex, float8 ...).
bool dtype_from_onnx(int64_t onnx_type, DataType* out) {
    switch (onnx_type) {
        case 1: *out = DataType::kFloat32; return true;
        case 2: *out = DataType::kUInt8; return true;
        case 3: *out = DataType::kInt8; return true;
        case 6: *out = DataType::kInt32; return true;
        case 7: *out = DataType::kInt64; return true;
        case 9: *out = DataType::kBool; return true;
        case 10: *out = DataType::kFloat16; return true;
        case 11: *out = DataType::kFloat64; return true;
        case 16: *out = DataType::kBFloat16; return true;
        default: return false;
    }
}

}  // namespace

// out = cond ? X : Y with all three broadcast together; output dtype of X.
void infer_where(InferContext& ctx) {
    const TensorInfo& cond = ctx.input(0);
    const TensorInfo& x = ctx.input(1);
    const TensorInfo& y = ctx.input(2);
    ctx.check(cond.dtype == DataType::kBool, "condition (input 0) must be bool, got ", dtype_name(cond.dtype));
    ctx.check(x.dtype == y.dtype, "X (input 1) has dtype ", dtype_name(x.dtype), " but Y (input 2) has ",
              dtype_name(y.dtype));
    SymShape s = broadcast_shapes(ctx, broadcast_shapes(ctx, cond.dims, x.dims), y.dims);
    ctx.set_output(0, x.dtype, std::move(s));
}

// Attribute `to` is an ONNX TensorProto.DataType number.
void infer_cast(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    if (!ctx.attrs().has("to")) ctx.fail(ErrorCode::kInvalidModel, "missing required attribute 'to'");
    int64_t to = ctx.attrs().get_int("to", 0);
    DataType dt;
    if (!dtype_from_onnx(to, &dt))
        ctx.fail(ErrorCode::kUnsupported, "attribute 'to' = ", to,
                 " is not a supported data type (supported: 1 float, 2 uint8, 3 int8, 6 int32, 7 int64, 9 bool, "
                 "10 float16, 11 double, 16 bfloat16)");
    ctx.set_output(0, dt, x.dims);
}

// Inference mode: output 0 = input, optional output 1 (mask) = all true. Inputs ratio and training_mode are ignored
// unless training_mode is known to be true, which kiln does not support.
void infer_dropout(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    std::vector<int64_t> training;
    if (ctx.input_ints(2, &training) && !training.empty() && training[0] != 0)
        ctx.fail(ErrorCode::kUnsupported, "training_mode (input 2) is true; kiln runs Dropout in inference mode only");
    ctx.set_output(0, x.dtype, x.dims);
    ctx.set_output(1, DataType::kBool, x.dims);
}

// Pow(X, Y): X and Y may have different dtypes (ONNX T and T1), output has X's dtype. op_list.def names
// infer_broadcast for Pow today, which rejects Pow(float, int64); this is the function it should name.
void infer_pow(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& y = ctx.input(1);
    ctx.check(x.dtype != DataType::kBool && y.dtype != DataType::kBool, "Pow is not defined on bool tensors");
    ctx.set_output(0, x.dtype, broadcast_shapes(ctx, x.dims, y.dims));
}

// PRelu(X, slope): slope broadcasts unidirectionally to X, so the output has X's shape. op_list.def names
// infer_broadcast for PRelu today (multidirectional: a slope larger than X grows the output); this is the function
// it should name.
void infer_prelu(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& slope = ctx.input(1);
    ctx.check(slope.dtype == x.dtype, "slope (input 1) has dtype ", dtype_name(slope.dtype), " but X has ",
              dtype_name(x.dtype));
    const int off = x.rank() - slope.rank();
    bool ok = off >= 0;
    for (int i = 0; ok && i < slope.rank(); ++i) {
        const Dim& s = slope.dims[i];
        const Dim& d = x.dims[off + i];
        ok = !(s.is_static() && d.is_static() && s.value != 1 && s.value != d.value);
    }
    ctx.check(ok, "slope shape ", shape_str(slope.dims), " cannot be broadcast to X shape ", shape_str(x.dims));
    ctx.set_output(0, x.dtype, x.dims);
}

}  // namespace kiln::ops

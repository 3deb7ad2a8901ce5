// Shape/dtype inference for indexing and shape-producing ops: Slice, Gather, GatherElements, Pad, Shape, Size,
// Constant, ConstantOfShape, Range.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "src/common/check.h"
#include "src/ops/shape_utils.h"
#include "src/ops/tensor_ops.h"

namespace kiln::ops {

namespace {

constexpr int64_t kToEnd = 2147483647;  // INT32_MAX and beyond (INT64_MAX) mean "to the end" in exported models

void check_int_input(const InferContext& ctx, size_t i, const char* what) {
    DataType t = ctx.input(i).dtype;
    ctx.check(t == DataType::kInt64 || t == DataType::kInt32, "input ", i, " (", what, ") must be int64 or int32, got ",
              dtype_name(t));
}

bool is_scalar_like(const TensorInfo& t) { return t.rank() == 0 || (t.rank() == 1 && t.dims[0].value == 1); }

}  // namespace

// ------------------------------------------------------------------------------------------ Slice

void infer_slice(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    int r = x.rank();
    const char* names[] = {"data", "starts", "ends", "axes", "steps"};
    for (size_t i = 1; i < 5; ++i)
        if (ctx.has_input(i)) check_int_input(ctx, i, names[i]);
    std::vector<int64_t> starts, ends, axes, steps;
    bool axes_known = !ctx.has_input(3) || ctx.input_ints(3, &axes);
    bool known = ctx.input_ints(1, &starts) && ctx.input_ints(2, &ends) && axes_known &&
                 (!ctx.has_input(4) || ctx.input_ints(4, &steps));
    if (!known) {
        SymShape out(r);  // sliced axes unknown; untouched axes keep their dims when the axes are known
        if (axes_known && ctx.has_input(3)) {
            out = x.dims;
            for (int a : normalize_axes(axes, r, ctx.where(), "axes")) out[a] = Dim();
        }
        ctx.set_output(0, x.dtype, out);
        return;
    }
    size_t n = starts.size();
    ctx.check(ends.size() == n, "starts has ", n, " values but ends has ", ends.size());
    if (!ctx.has_input(3))
        for (size_t i = 0; i < n; ++i) axes.push_back(static_cast<int64_t>(i));
    if (!ctx.has_input(4)) steps.assign(n, 1);
    ctx.check(axes.size() == n, "starts has ", n, " values but axes has ", axes.size());
    ctx.check(steps.size() == n, "starts has ", n, " values but steps has ", steps.size());
    std::vector<int> ax = normalize_axes(axes, r, ctx.where(), "axes");
    SymShape out = x.dims;
    for (size_t i = 0; i < n; ++i) {
        ctx.check(steps[i] != 0, "steps [", join(steps, ","), "] contains 0");
        const Dim& d = x.dims[ax[i]];
        if (d.is_static()) {
            out[ax[i]] = Dim(slice_axis(d.value, starts[i], ends[i], steps[i]).count);
        } else {
            // A symbolic dim survives only a full forward slice or a full reversal.
            bool full_fwd = steps[i] == 1 && (starts[i] == 0 || starts[i] <= -kToEnd) && ends[i] >= kToEnd;
            bool full_rev = steps[i] == -1 && (starts[i] == -1 || starts[i] >= kToEnd) && ends[i] <= -kToEnd;
            out[ax[i]] = full_fwd || full_rev ? d : Dim();
        }
    }
    ctx.set_output(0, x.dtype, out);
}

// ------------------------------------------------------------------------------------------ Gather

void infer_gather(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& idx = ctx.input(1);
    check_int_input(ctx, 1, "indices");
    ctx.check(x.rank() > 0, "cannot gather from a scalar");
    int axis = ctx.normalize_axis(ctx.attrs().get_int("axis", 0), x.rank());
    std::vector<int64_t> values;
    const Dim& d = x.dims[axis];
    if (d.is_static() && ctx.input_ints(1, &values)) {
        for (int64_t v : values)
            ctx.check(v >= -d.value && v < d.value, "index ", v, " is out of range for axis ", axis, " of size ",
                      d.value);
    }
    SymShape out(x.dims.begin(), x.dims.begin() + axis);
    out.insert(out.end(), idx.dims.begin(), idx.dims.end());
    out.insert(out.end(), x.dims.begin() + axis + 1, x.dims.end());
    ctx.set_output(0, x.dtype, out);
}

void infer_gather_elements(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& idx = ctx.input(1);
    check_int_input(ctx, 1, "indices");
    ctx.check(x.rank() > 0, "cannot gather from a scalar");
    ctx.check(idx.rank() == x.rank(), "indices has shape ", shape_str(idx.dims), " but data has shape ",
              shape_str(x.dims), "; their ranks must match");
    int axis = ctx.normalize_axis(ctx.attrs().get_int("axis", 0), x.rank());
    for (int k = 0; k < x.rank(); ++k) {
        const Dim &di = idx.dims[k], &dx = x.dims[k];
        ctx.check(k == axis || !di.is_static() || !dx.is_static() || di.value <= dx.value, "indices has shape ",
                  shape_str(idx.dims), " which exceeds data shape ", shape_str(x.dims), " on axis ", k);
    }
    ctx.set_output(0, x.dtype, idx.dims);
}

// ------------------------------------------------------------------------------------------ Pad

void infer_pad(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    int r = x.rank();
    std::string mode = ctx.attrs().get_string("mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
        ctx.fail(ErrorCode::kUnsupported, "attribute mode='", mode,
                 "' is not supported (expected constant, reflect, edge or wrap)");
    check_int_input(ctx, 1, "pads");
    if (ctx.has_input(2)) {
        const TensorInfo& cv = ctx.input(2);
        ctx.check(cv.dtype == x.dtype, "constant_value has dtype ", dtype_name(cv.dtype), " but data has ",
                  dtype_name(x.dtype));
        ctx.check(cv.rank() == 0 || (cv.rank() == 1 && cv.dims[0].value <= 1),
                  "constant_value must be a scalar, got shape ", shape_str(cv.dims));
    }
    std::vector<int64_t> pads, axes;
    bool has_axes = ctx.has_input(3);
    if (has_axes) check_int_input(ctx, 3, "axes");
    if (!ctx.input_ints(1, &pads) || (has_axes && !ctx.input_ints(3, &axes))) {
        ctx.set_output(0, x.dtype, SymShape(r));
        return;
    }
    std::vector<int64_t> full = resolve_pads(pads, has_axes ? &axes : nullptr, r, ctx.where());
    SymShape out = x.dims;
    for (int i = 0; i < r; ++i) {
        int64_t b = full[i], e = full[r + i];
        const Dim& d = x.dims[i];
        if (!d.is_static()) {
            out[i] = b == 0 && e == 0 ? d : Dim();
            continue;
        }
        int64_t n = d.value + b + e;
        ctx.check(n >= 0, "pads [", join(pads, ","), "] make axis ", i, " (size ", d.value, ") negative");
        if (mode == "reflect" && (b > 0 || e > 0))
            ctx.check(b < d.value && e < d.value, "reflect pads (", b, ", ", e, ") on axis ", i,
                      " must be smaller than its size ", d.value);
        if (mode != "constant" && (b > 0 || e > 0))
            ctx.check(d.value > 0, "cannot ", mode, "-pad axis ", i, " of size 0");
        out[i] = Dim(n);
    }
    ctx.set_output(0, x.dtype, out);
}

// ------------------------------------------------------------------------------------------ Shape / Size

void infer_shape(InferContext& ctx) {
    int64_t r = ctx.input(0).rank();
    int64_t start = ctx.attrs().get_int("start", 0), end = ctx.attrs().get_int("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, 0, r);
    ctx.set_output(0, DataType::kInt64, {Dim(std::max<int64_t>(end - start, 0))});
}

void infer_size(InferContext& ctx) {
    ctx.input(0);
    ctx.set_output(0, DataType::kInt64, {});
}

// ------------------------------------------------------------------------------------------ Constant

Tensor constant_value(const AttributeMap& attrs, const std::string& where) {
    for (const char* name : {"sparse_value", "value_string", "value_strings"})
        KILN_CHECK(!attrs.has(name), kUnsupported, where, ": attribute ", name, " is not supported");
    int given = 0;
    for (const char* name : {"value", "value_float", "value_floats", "value_int", "value_ints"})
        given += attrs.has(name) ? 1 : 0;
    KILN_CHECK(given == 1, kInvalidModel, where, ": exactly one of value, value_float, value_floats, value_int, ",
               "value_ints must be set (got ", given, ")");
    if (const Tensor* t = attrs.get_tensor("value")) return *t;
    if (attrs.has("value_float")) {
        Tensor t(DataType::kFloat32, {});
        *t.data<float>() = attrs.get_float("value_float", 0.f);
        return t;
    }
    if (attrs.has("value_int")) {
        Tensor t(DataType::kInt64, {});
        *t.data<int64_t>() = attrs.get_int("value_int", 0);
        return t;
    }
    if (attrs.has("value_floats")) {
        std::vector<float> v = attrs.get_floats("value_floats");
        Tensor t(DataType::kFloat32, {static_cast<int64_t>(v.size())});
        if (!v.empty()) std::memcpy(t.raw(), v.data(), v.size() * sizeof(float));
        return t;
    }
    std::vector<int64_t> v = attrs.get_ints("value_ints");
    Tensor t(DataType::kInt64, {static_cast<int64_t>(v.size())});
    if (!v.empty()) std::memcpy(t.raw(), v.data(), v.size() * sizeof(int64_t));
    return t;
}

void infer_constant(InferContext& ctx) {
    Tensor t = constant_value(ctx.attrs(), ctx.where());
    ctx.set_output(0, t.dtype(), to_sym(t.shape()));
}

void infer_constant_of_shape(InferContext& ctx) {
    const TensorInfo& shape_in = ctx.input(0);
    check_int_input(ctx, 0, "shape");
    DataType dtype = DataType::kFloat32;
    if (const Tensor* v = ctx.attrs().get_tensor("value")) {
        ctx.check(v->numel() == 1, "attribute value must have exactly one element, got shape ", shape_str(v->shape()));
        dtype = v->dtype();
    }
    std::vector<int64_t> shape;
    if (ctx.input_ints(0, &shape)) {
        for (int64_t d : shape) ctx.check(d >= 0, "shape [", join(shape, ","), "] has negative value ", d);
        ctx.set_output(0, dtype, to_sym(shape));
        return;
    }
    ctx.check(shape_in.rank() == 1, "input shape must be 1-D, got shape ", shape_str(shape_in.dims));
    if (!shape_in.dims[0].is_static())
        ctx.fail(ErrorCode::kUnsupported, "the output rank cannot be inferred: the shape input is not a constant ",
                 "and its length is not static");
    ctx.set_output(0, dtype, SymShape(shape_in.dims[0].value));
}

// ------------------------------------------------------------------------------------------ Range

namespace {

/// n = max(ceil((limit - start) / delta), 0), with limit - start computed in the input type (as onnxruntime does).
int64_t range_length(const InferContext& ctx, const Tensor& s, const Tensor& l, const Tensor& d) {
    double diff, delta = d.get_f64(0);
    switch (s.dtype()) {
        case DataType::kFloat32:
            diff = static_cast<double>(static_cast<float>(l.get_f64(0)) - static_cast<float>(s.get_f64(0)));
            break;
        case DataType::kFloat64: diff = l.get_f64(0) - s.get_f64(0); break;
        default:
            diff = static_cast<double>(l.get_i64(0) - s.get_i64(0));
            delta = static_cast<double>(d.get_i64(0));
            break;
    }
    ctx.check(delta != 0, "delta is 0");
    return std::max<int64_t>(static_cast<int64_t>(std::ceil(diff / delta)), 0);
}

}  // namespace

void infer_range(InferContext& ctx) {
    const TensorInfo& start = ctx.input(0);
    for (size_t i = 0; i < 3; ++i) {
        const TensorInfo& t = ctx.input(i);
        ctx.check(t.dtype == start.dtype, "input ", i, " has dtype ", dtype_name(t.dtype), " but start has ",
                  dtype_name(start.dtype));
        ctx.check(is_scalar_like(t), "input ", i, " must be a scalar, got shape ", shape_str(t.dims));
    }
    DataType t = start.dtype;
    if (t != DataType::kFloat32 && t != DataType::kFloat64 && t != DataType::kInt32 && t != DataType::kInt64)
        ctx.fail(ErrorCode::kUnsupported, "dtype ", dtype_name(t), " is not supported (float32/64, int32/64 are)");
    const Tensor *s = ctx.input(0).value, *l = ctx.input(1).value, *d = ctx.input(2).value;
    ctx.set_output(0, t, {s && l && d ? Dim(range_length(ctx, *s, *l, *d)) : Dim()});
}

}  // namespace kiln::ops

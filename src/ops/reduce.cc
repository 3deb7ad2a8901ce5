// Shape/dtype inference for reductions and search: Reduce{Mean,Sum,Max,Min,Prod}, ArgMax, TopK.
// (CumSum uses infer_same_as_input.)
#include <algorithm>

#include "src/common/check.h"
#include "src/ops/shape_utils.h"
#include "src/ops/tensor_ops.h"

namespace kiln::ops {

std::vector<bool> reduce_mask(const std::vector<int64_t>* axes, int rank, bool noop_with_empty_axes,
                              const std::string& where) {
    if (axes == nullptr || axes->empty()) return std::vector<bool>(rank, !noop_with_empty_axes);
    std::vector<bool> mask(rank, false);
    for (int a : normalize_axes(*axes, rank, where, "axes")) mask[a] = true;
    return mask;
}

void infer_reduce(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    bool keepdims = ctx.attrs().get_int("keepdims", 1) != 0;
    bool noop = ctx.attrs().get_int("noop_with_empty_axes", 0) != 0;
    std::vector<int64_t> axes;
    bool have_axes = ctx.has_input(1);
    if (have_axes) {
        DataType t = ctx.input(1).dtype;
        ctx.check(t == DataType::kInt64 || t == DataType::kInt32, "input 1 (axes) must be int64, got ", dtype_name(t));
        if (!ctx.input_ints(1, &axes)) {
            const TensorInfo& a = ctx.input(1);
            int64_t n = a.rank() == 1 && a.dims[0].is_static() ? a.dims[0].value : -1;
            if (n != 0) {  // reduced axes unknown: rank is known only with keepdims or a static axes length
                if (keepdims) {
                    ctx.set_output(0, x.dtype, SymShape(x.rank()));
                    return;
                }
                if (n < 0)
                    ctx.fail(ErrorCode::kUnsupported, "the output rank cannot be inferred: axes is not a constant, ",
                             "its length is not static and keepdims=0");
                ctx.set_output(0, x.dtype, SymShape(std::max<int64_t>(x.rank() - n, 0)));
                return;
            }
        }
    }
    std::vector<bool> mask = reduce_mask(have_axes ? &axes : nullptr, x.rank(), noop, ctx.where());
    SymShape out;
    for (int i = 0; i < x.rank(); ++i) {
        if (!mask[i])
            out.push_back(x.dims[i]);
        else if (keepdims)
            out.push_back(Dim(1));
    }
    ctx.set_output(0, x.dtype, out);
}

void infer_arg_reduce(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    ctx.check(x.rank() > 0, "input must have rank >= 1");
    int axis = ctx.normalize_axis(ctx.attrs().get_int("axis", 0), x.rank());
    bool keepdims = ctx.attrs().get_int("keepdims", 1) != 0;
    SymShape out;
    for (int i = 0; i < x.rank(); ++i) {
        if (i != axis)
            out.push_back(x.dims[i]);
        else if (keepdims)
            out.push_back(Dim(1));
    }
    ctx.set_output(0, DataType::kInt64, out);
}

void infer_topk(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    ctx.check(x.rank() > 0, "input must have rank >= 1");
    int axis = ctx.normalize_axis(ctx.attrs().get_int("axis", -1), x.rank());
    const TensorInfo& k_in = ctx.input(1);
    ctx.check(k_in.dtype == DataType::kInt64, "input K must be int64, got ", dtype_name(k_in.dtype));
    ctx.check(k_in.rank() <= 1 && (k_in.rank() == 0 || k_in.dims[0].value == 1 || !k_in.dims[0].is_static()),
              "input K must hold one value, got shape ", shape_str(k_in.dims));
    SymShape out = x.dims;
    std::vector<int64_t> k;
    if (ctx.input_ints(1, &k)) {
        ctx.check(k.size() == 1, "input K must hold one value, got ", k.size());
        ctx.check(k[0] >= 0, "K=", k[0], " is negative");
        const Dim& d = x.dims[axis];
        ctx.check(!d.is_static() || k[0] <= d.value, "K=", k[0], " is larger than axis ", axis, " (size ", d.value,
                  ")");
        out[axis] = Dim(k[0]);
    } else {
        out[axis] = Dim();
    }
    ctx.set_output(0, x.dtype, out);
    ctx.set_output(1, DataType::kInt64, out);
}

}  // namespace kiln::ops

// Broadcasting, strides and the shared inference functions.
#include "src/ops/shape_utils.h"

#include <algorithm>

#include "src/common/check.h"

namespace kiln::ops {

SymShape broadcast_shapes(const InferContext& ctx, const SymShape& a, const SymShape& b) {
    size_t r = std::max(a.size(), b.size());
    SymShape out(r);
    for (size_t i = 0; i < r; ++i) {
        Dim da = i < r - a.size() ? Dim(1) : a[i - (r - a.size())];
        Dim db = i < r - b.size() ? Dim(1) : b[i - (r - b.size())];
        if (da == db) {
            out[i] = da;
        } else if (da.value == 1) {
            out[i] = db;
        } else if (db.value == 1) {
            out[i] = da;
        } else if (da.is_static() && db.is_static()) {
            ctx.fail(ErrorCode::kInvalidModel, "shapes ", shape_str(a), " and ", shape_str(b),
                     " cannot be broadcast together");
        } else if (da.is_static()) {
            out[i] = da;  // a symbolic dim broadcast against n > 1 must be n (or 1)
        } else if (db.is_static()) {
            out[i] = db;
        } else {
            out[i] = Dim();  // two different symbols: unknown until run time
        }
    }
    return out;
}

Shape broadcast_shapes(const Shape& a, const Shape& b) {
    size_t r = std::max(a.size(), b.size());
    Shape out(r);
    for (size_t i = 0; i < r; ++i) {
        int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
        int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
        KILN_CHECK(da == db || da == 1 || db == 1, kInvalidArgument, "shapes ", shape_str(a), " and ", shape_str(b),
                   " cannot be broadcast together");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

std::vector<int64_t> strides_of(const Shape& shape) {
    std::vector<int64_t> s(shape.size());
    int64_t acc = 1;
    for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
        s[i] = acc;
        acc *= shape[i];
    }
    return s;
}

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
    std::vector<int64_t> s(out.size(), 0);
    std::vector<int64_t> is = strides_of(in);
    size_t off = out.size() - in.size();
    for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : is[i];
    return s;
}

Shape to_concrete(const SymShape& s) {
    Shape out;
    out.reserve(s.size());
    for (const Dim& d : s) {
        KILN_CHECK(d.is_static(), kInternal, "shape ", shape_str(s), " is not static");
        out.push_back(d.value);
    }
    return out;
}

Dim dim_product(const SymShape& s, int begin, int end) {
    int64_t p = 1;
    for (int i = begin; i < end; ++i) {
        if (!s[i].is_static()) return Dim();
        p *= s[i].value;
    }
    return Dim(p);
}

Dim dim_mul(const Dim& a, const Dim& b) {
    if (a.is_static() && b.is_static()) return Dim(a.value * b.value);
    if (a.value == 1) return b;
    if (b.value == 1) return a;
    return Dim();
}

void infer_same_as_input(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    ctx.set_output(0, x.dtype, x.dims);
}

void infer_broadcast(InferContext& ctx) {
    SymShape s = ctx.input(0).dims;
    for (size_t i = 1; i < ctx.num_inputs(); ++i) {
        ctx.check(ctx.input(i).dtype == ctx.input(0).dtype, "input ", i, " has dtype ",
                  dtype_name(ctx.input(i).dtype), " but input 0 has ", dtype_name(ctx.input(0).dtype));
        s = broadcast_shapes(ctx, s, ctx.input(i).dims);
    }
    ctx.set_output(0, ctx.input(0).dtype, s);
}

void infer_broadcast_bool(InferContext& ctx) {
    infer_broadcast(ctx);
    ctx.outputs()[0].dtype = DataType::kBool;
}

}  // namespace kiln::ops

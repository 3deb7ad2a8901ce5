// Shape/dtype inference for data movement: Reshape, Flatten, Transpose, Concat, Split, Squeeze, Unsqueeze, Expand,
// Tile (Slice, Gather, Pad, Shape, Constant, Range ... are in tensor_ops_shape.cc), plus the shared parameter
// resolution declared in tensor_ops.h.
#include "src/ops/tensor_ops.h"

#include <algorithm>
#include <numeric>

#include "src/common/check.h"
#include "src/ops/shape_utils.h"

namespace kiln::ops {

// ------------------------------------------------------------------------------------------ shared resolution

std::vector<int> normalize_axes(const std::vector<int64_t>& axes, int rank, const std::string& where, const char* what,
                                bool allow_repeats) {
    std::vector<int> out;
    std::vector<bool> seen(rank, false);
    for (int64_t a : axes) {
        KILN_CHECK(a >= -rank && a < rank, kInvalidModel, where, ": ", what, " value ", a,
                   " is out of range for a rank-", rank, " tensor");
        int n = static_cast<int>(a < 0 ? a + rank : a);
        KILN_CHECK(allow_repeats || !seen[n], kInvalidModel, where, ": ", what, " [", join(axes, ","),
                   "] repeats axis ", n);
        seen[n] = true;
        out.push_back(n);
    }
    return out;
}

SliceAxis slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step) {
    if (dim == 0) return {0, step, 0};
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
        start = std::clamp<int64_t>(start, 0, dim);
        end = std::clamp<int64_t>(end, 0, dim);
    } else {
        start = std::clamp<int64_t>(start, 0, dim - 1);
        end = std::clamp<int64_t>(end, -1, dim - 1);
    }
    int64_t count = step > 0 ? (end - start + step - 1) / step : (start - end + (-step) - 1) / (-step);
    return {start, step, std::max<int64_t>(count, 0)};
}

std::vector<int64_t> resolve_pads(const std::vector<int64_t>& pads, const std::vector<int64_t>* axes, int rank,
                                  const std::string& where) {
    std::vector<int> ax;
    if (axes) {
        ax = normalize_axes(*axes, rank, where, "axes");
    } else {
        ax.resize(rank);
        std::iota(ax.begin(), ax.end(), 0);
    }
    size_t n = ax.size();
    KILN_CHECK(pads.size() == 2 * n, kInvalidModel, where, ": pads has ", pads.size(), " values, expected ", 2 * n,
               " (begin and end for each of ", n, " axes)");
    std::vector<int64_t> full(2 * rank, 0);
    for (size_t i = 0; i < n; ++i) {
        full[ax[i]] = pads[i];
        full[rank + ax[i]] = pads[n + i];
    }
    return full;
}

namespace {

SymShape unknown_dims(int64_t rank) { return SymShape(static_cast<size_t>(std::max<int64_t>(rank, 0))); }

/// Length of a 1-D shape/axes tensor when static, else -1.
int64_t static_length(const TensorInfo& t) {
    if (t.rank() == 0) return 1;
    return t.rank() == 1 && t.dims[0].is_static() ? t.dims[0].value : -1;
}

int64_t require_static_length(const InferContext& ctx, size_t i, const char* what) {
    int64_t n = static_length(ctx.input(i));
    if (n < 0)
        ctx.fail(ErrorCode::kUnsupported, "the output rank cannot be inferred: input ", i, " (", what,
                 ") is not a constant and its length ", shape_str(ctx.input(i).dims), " is not static");
    return n;
}

void check_int_input(const InferContext& ctx, size_t i, const char* what) {
    DataType t = ctx.input(i).dtype;
    ctx.check(t == DataType::kInt64 || t == DataType::kInt32, "input ", i, " (", what, ") must be int64 or int32, got ",
              dtype_name(t));
}

/// The common dim of two dims that must be equal (Concat's non-axis dims); fails when both are static and differ.
Dim unify(const InferContext& ctx, const Dim& a, const Dim& b, int axis) {
    if (a == b) return a;
    if (a.is_static() && b.is_static())
        ctx.fail(ErrorCode::kInvalidModel, "dimension ", axis, " differs between inputs (", a.value, " vs ", b.value,
                 ")");
    return a.is_static() ? a : b.is_static() ? b : Dim();
}

Dim dim_add(const Dim& a, const Dim& b) {
    if (a.is_static() && b.is_static()) return Dim(a.value + b.value);
    if (a.value == 0) return b;
    if (b.value == 0) return a;
    return Dim();
}

/// Product of dims [begin, end) that keeps a lone symbol (batch x 1 x 1 stays batch).
Dim dims_product(const SymShape& s, int begin, int end) {
    Dim p(1);
    for (int i = begin; i < end; ++i) p = dim_mul(p, s[i]);
    return p;
}

}  // namespace

// ------------------------------------------------------------------------------------------ Reshape / Flatten

void infer_reshape(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    check_int_input(ctx, 1, "shape");
    bool allowzero = ctx.attrs().get_int("allowzero", 0) != 0;
    std::vector<int64_t> shape;
    if (!ctx.input_ints(1, &shape)) {
        ctx.set_output(0, x.dtype, unknown_dims(require_static_length(ctx, 1, "shape")));
        return;
    }
    SymShape out(shape.size());
    int infer_at = -1;
    bool has_zero = false;
    for (size_t i = 0; i < shape.size(); ++i) {
        int64_t v = shape[i];
        if (v == -1) {
            ctx.check(infer_at < 0, "shape [", join(shape, ","), "] has more than one -1");
            infer_at = static_cast<int>(i);
        } else if (v == 0 && !allowzero) {
            ctx.check(static_cast<int>(i) < x.rank(), "shape [", join(shape, ","), "]: 0 at position ", i,
                      " copies an input dim, but the input has rank ", x.rank());
            out[i] = x.dims[i];
        } else {
            ctx.check(v >= 0, "shape [", join(shape, ","), "] has invalid value ", v);
            has_zero = has_zero || v == 0;
            out[i] = Dim(v);
        }
    }
    ctx.check(!(has_zero && infer_at >= 0), "shape [", join(shape, ","),
              "] has both 0 (with allowzero=1) and -1, which is ambiguous");

    // Cancel equal named symbols between the input and the known output dims, then compare the static rests:
    // [batch, 12, 64] -> [0, -1] gives [batch, 768].
    std::vector<Dim> in_syms;
    int64_t in_known = 1, out_known = 1;
    for (const Dim& d : x.dims) {
        if (d.is_static())
            in_known *= d.value;
        else
            in_syms.push_back(d);
    }
    bool resolvable = true;
    for (size_t i = 0; i < out.size(); ++i) {
        if (static_cast<int>(i) == infer_at) continue;
        if (out[i].is_static()) {
            out_known *= out[i].value;
            continue;
        }
        auto it = out[i].symbol.empty() ? in_syms.end() : std::find(in_syms.begin(), in_syms.end(), out[i]);
        if (it == in_syms.end())
            resolvable = false;
        else
            in_syms.erase(it);
    }
    resolvable = resolvable && in_syms.empty();
    if (infer_at >= 0) {
        if (!resolvable) {
            out[infer_at] = Dim();
        } else if (out_known == 0) {
            ctx.check(in_known == 0, "cannot reshape ", shape_str(x.dims), " to [", join(shape, ","), "]");
            out[infer_at] = Dim(0);
        } else {
            ctx.check(in_known % out_known == 0, "cannot reshape ", shape_str(x.dims), " (", in_known,
                      " elements) to [", join(shape, ","), "]");
            out[infer_at] = Dim(in_known / out_known);
        }
    } else if (resolvable) {
        ctx.check(in_known == out_known, "cannot reshape ", shape_str(x.dims), " (", in_known, " elements) to [",
                  join(shape, ","), "] (", out_known, " elements)");
    }
    ctx.set_output(0, x.dtype, out);
}

void infer_flatten(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    int r = x.rank();
    int64_t axis = ctx.attrs().get_int("axis", 1);
    ctx.check(axis >= -r && axis <= r, "attribute axis=", axis, " is out of range [", -r, ", ", r, "]");
    int a = static_cast<int>(axis < 0 ? axis + r : axis);
    ctx.set_output(0, x.dtype, {dims_product(x.dims, 0, a), dims_product(x.dims, a, r)});
}

// ------------------------------------------------------------------------------------------ Transpose

void infer_transpose(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    int r = x.rank();
    std::vector<int64_t> perm = ctx.attrs().get_ints("perm");
    if (!ctx.attrs().has("perm")) {
        for (int i = r - 1; i >= 0; --i) perm.push_back(i);
    }
    ctx.check(static_cast<int>(perm.size()) == r, "attribute perm=[", join(perm, ","), "] has ", perm.size(),
              " entries but the input has rank ", r);
    std::vector<bool> seen(r, false);
    SymShape out(r);
    for (int i = 0; i < r; ++i) {
        int64_t p = perm[i];
        ctx.check(p >= 0 && p < r && !seen[p], "attribute perm=[", join(perm, ","), "] is not a permutation of 0..",
                  r - 1);
        seen[p] = true;
        out[i] = x.dims[p];
    }
    ctx.set_output(0, x.dtype, out);
}

// ------------------------------------------------------------------------------------------ Concat / Split

void infer_concat(InferContext& ctx) {
    const TensorInfo& x0 = ctx.input(0);
    int r = x0.rank();
    ctx.check(r > 0, "cannot concatenate scalars (input 0 is rank 0)");
    int64_t axis_attr = ctx.attrs().require_int("axis");
    ctx.check(axis_attr >= -r && axis_attr < r, "attribute axis=", axis_attr, " is out of range for rank ", r);
    int axis = static_cast<int>(axis_attr < 0 ? axis_attr + r : axis_attr);
    SymShape out = x0.dims;
    for (size_t i = 1; i < ctx.num_inputs(); ++i) {
        const TensorInfo& xi = ctx.input(i);
        ctx.check(xi.dtype == x0.dtype, "input ", i, " has dtype ", dtype_name(xi.dtype), " but input 0 has ",
                  dtype_name(x0.dtype));
        ctx.check(xi.rank() == r, "input ", i, " has shape ", shape_str(xi.dims), " (rank ", xi.rank(),
                  ") but input 0 has shape ", shape_str(x0.dims), " (rank ", r, ")");
        for (int d = 0; d < r; ++d)
            out[d] = d == axis ? dim_add(out[d], xi.dims[d]) : unify(ctx, out[d], xi.dims[d], d);
    }
    ctx.set_output(0, x0.dtype, out);
}

void infer_split(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    int axis = ctx.normalize_axis(ctx.attrs().get_int("axis", 0), x.rank());
    const Dim& dim = x.dims[axis];
    int64_t n = static_cast<int64_t>(ctx.num_outputs());
    std::vector<Dim> sizes(n);
    if (ctx.has_input(1)) {
        check_int_input(ctx, 1, "split");
        ctx.check(!ctx.attrs().has("num_outputs"), "both the split input and the num_outputs attribute are given");
        std::vector<int64_t> split;
        if (ctx.input_ints(1, &split)) {
            ctx.check(static_cast<int64_t>(split.size()) == n, "split [", join(split, ","), "] has ", split.size(),
                      " entries but the node has ", n, " outputs");
            int64_t sum = 0;
            for (int64_t i = 0; i < n; ++i) {
                ctx.check(split[i] >= 0, "split [", join(split, ","), "] has a negative size");
                sum += split[i];
                sizes[i] = Dim(split[i]);
            }
            ctx.check(!dim.is_static() || sum == dim.value, "split [", join(split, ","), "] sums to ", sum,
                      " but axis ", axis, " has size ", dim.value);
        }
    } else {
        int64_t num = ctx.attrs().get_int("num_outputs", n);
        ctx.check(num == n, "attribute num_outputs=", num, " but the node has ", n, " outputs");
        // Equal chunks of ceil(dim / n); the last one is smaller when dim does not divide evenly (opset 18).
        if (dim.is_static()) {
            int64_t chunk = (dim.value + n - 1) / n;
            for (int64_t i = 0; i < n; ++i) sizes[i] = Dim(std::clamp<int64_t>(dim.value - i * chunk, 0, chunk));
        }
    }
    for (int64_t i = 0; i < n; ++i) {
        SymShape s = x.dims;
        s[axis] = sizes[i];
        ctx.set_output(i, x.dtype, s);
    }
}

// ------------------------------------------------------------------------------------------ Squeeze / Unsqueeze

void infer_squeeze(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    std::vector<int64_t> axes;
    bool have_axes = ctx.has_input(1);
    if (have_axes) {
        check_int_input(ctx, 1, "axes");
        if (!ctx.input_ints(1, &axes)) {
            int64_t n = require_static_length(ctx, 1, "axes");
            if (n > 0) {
                ctx.set_output(0, x.dtype, unknown_dims(x.rank() - n));
                return;
            }
        }
    }
    std::vector<bool> drop(x.rank(), false);
    if (!axes.empty()) {
        for (int a : normalize_axes(axes, x.rank(), ctx.where(), "axes")) {
            ctx.check(!x.dims[a].is_static() || x.dims[a].value == 1, "cannot squeeze axis ", a, " of size ",
                      x.dims[a].value, " (input shape ", shape_str(x.dims), ")");
            drop[a] = true;
        }
    } else {
        for (int i = 0; i < x.rank(); ++i) drop[i] = x.dims[i].value == 1;  // symbolic dims are assumed not 1
    }
    SymShape out;
    for (int i = 0; i < x.rank(); ++i)
        if (!drop[i]) out.push_back(x.dims[i]);
    ctx.set_output(0, x.dtype, out);
}

void infer_unsqueeze(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    check_int_input(ctx, 1, "axes");
    std::vector<int64_t> axes;
    if (!ctx.input_ints(1, &axes)) {
        ctx.set_output(0, x.dtype, unknown_dims(x.rank() + require_static_length(ctx, 1, "axes")));
        return;
    }
    int r = x.rank() + static_cast<int>(axes.size());
    std::vector<bool> inserted(r, false);
    for (int a : normalize_axes(axes, r, ctx.where(), "axes")) inserted[a] = true;
    SymShape out;
    int src = 0;
    for (int i = 0; i < r; ++i) out.push_back(inserted[i] ? Dim(1) : x.dims[src++]);
    ctx.set_output(0, x.dtype, out);
}

// ------------------------------------------------------------------------------------------ Expand / Tile

void infer_expand(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    check_int_input(ctx, 1, "shape");
    std::vector<int64_t> shape;
    if (ctx.input_ints(1, &shape)) {
        for (int64_t v : shape) ctx.check(v >= 0, "shape [", join(shape, ","), "] has negative value ", v);
        ctx.set_output(0, x.dtype, broadcast_shapes(ctx, x.dims, to_sym(shape)));
        return;
    }
    // Unknown target: an input dim > 1 survives broadcasting, everything else is unknown.
    int64_t n = require_static_length(ctx, 1, "shape");
    int r = static_cast<int>(std::max<int64_t>(n, x.rank()));
    SymShape out(r);
    for (int i = 0; i < x.rank(); ++i) {
        const Dim& d = x.dims[i];
        if (d.is_static() && d.value > 1) out[r - x.rank() + i] = d;
    }
    ctx.set_output(0, x.dtype, out);
}

void infer_tile(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    check_int_input(ctx, 1, "repeats");
    std::vector<int64_t> reps;
    if (!ctx.input_ints(1, &reps)) {
        ctx.set_output(0, x.dtype, unknown_dims(x.rank()));
        return;
    }
    ctx.check(static_cast<int>(reps.size()) == x.rank(), "repeats [", join(reps, ","), "] has ", reps.size(),
              " entries but the input has rank ", x.rank());
    SymShape out(x.rank());
    for (int i = 0; i < x.rank(); ++i) {
        ctx.check(reps[i] >= 0, "repeats [", join(reps, ","), "] has negative value ", reps[i]);
        out[i] = reps[i] == 0 ? Dim(0) : dim_mul(x.dims[i], Dim(reps[i]));
    }
    ctx.set_output(0, x.dtype, out);
}

}  // namespace kiln::ops

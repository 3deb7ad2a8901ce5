// Shape inference for sliding-window layers: Conv, ConvTranspose, MaxPool/AveragePool and the global pools,
// plus the window geometry helpers their reference kernels share (src/ops/nn.h).
#include <algorithm>

#include "src/common/check.h"
#include "src/ops/nn.h"
#include "src/ops/op_schema.h"
#include "src/ops/shape_utils.h"

namespace kiln::ops {
namespace {

std::vector<int64_t> ints_of_length(const AttributeMap& attrs, const std::string& name, size_t n, int64_t def,
                                    int64_t min_value, const std::string& where) {
    if (!attrs.has(name)) return std::vector<int64_t>(n, def);
    std::vector<int64_t> v = attrs.get_ints(name);
    KILN_CHECK(v.size() == n, kInvalidModel, where, ": attribute '", name, "' has ", v.size(), " values [",
               join(v, ","), "], expected ", n);
    for (int64_t x : v)
        KILN_CHECK(x >= min_value, kInvalidModel, where, ": attribute '", name, "' = [", join(v, ","),
                   "] has a value below ", min_value);
    return v;
}

int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

Dim static_or_unknown(int64_t v) { return v >= 0 ? Dim(v) : Dim(); }

int64_t value_or_unknown(const Dim& d) { return d.is_static() ? d.value : -1; }

}  // namespace

WindowAttrs parse_window_attrs(const AttributeMap& attrs, int spatial, const std::vector<int64_t>& kernel_hint,
                               bool require_kernel_shape, const std::string& where) {
    WindowAttrs w;
    w.spatial = spatial;
    if (attrs.has("kernel_shape")) {
        w.kernel = ints_of_length(attrs, "kernel_shape", spatial, 1, 1, where);
        for (size_t i = 0; i < kernel_hint.size() && i < w.kernel.size(); ++i)
            KILN_CHECK(kernel_hint[i] < 0 || kernel_hint[i] == w.kernel[i], kInvalidModel, where,
                       ": attribute 'kernel_shape' = [", join(w.kernel, ","), "] does not match the weight's ",
                       "spatial dims [", join(kernel_hint, ","), "]");
    } else {
        KILN_CHECK(!require_kernel_shape, kInvalidModel, where, ": required attribute 'kernel_shape' is missing");
        w.kernel = kernel_hint;
        w.kernel.resize(spatial, -1);
    }
    w.strides = ints_of_length(attrs, "strides", spatial, 1, 1, where);
    w.dilations = ints_of_length(attrs, "dilations", spatial, 1, 1, where);
    w.pads = ints_of_length(attrs, "pads", 2 * static_cast<size_t>(spatial), 0, 0, where);
    w.auto_pad = attrs.get_string("auto_pad", "NOTSET");
    if (w.auto_pad.empty()) w.auto_pad = "NOTSET";
    KILN_CHECK(
        w.auto_pad == "NOTSET" || w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER" || w.auto_pad == "VALID",
        kInvalidModel, where, ": attribute 'auto_pad' = '", w.auto_pad,
        "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
    int64_t ceil_mode = attrs.get_int("ceil_mode", 0);
    KILN_CHECK(ceil_mode == 0 || ceil_mode == 1, kInvalidModel, where, ": attribute 'ceil_mode' = ", ceil_mode,
               " must be 0 or 1");
    w.ceil_mode = ceil_mode == 1;
    return w;
}

int64_t window_output_dim(const WindowAttrs& w, int i, int64_t in, int64_t* pad_begin, int64_t* pad_end,
                          const std::string& where) {
    *pad_begin = *pad_end = 0;
    int64_t k = w.kernel[i], s = w.strides[i], d = w.dilations[i];
    if (in < 0 || k < 0) return -1;
    int64_t k_eff = (k - 1) * d + 1;
    if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
        int64_t out = ceil_div(in, s);
        int64_t total = std::max<int64_t>(0, (out - 1) * s + k_eff - in);
        *pad_begin = w.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        *pad_end = total - *pad_begin;
        return out;
    }
    if (w.auto_pad == "NOTSET") {
        *pad_begin = w.pads[i];
        *pad_end = w.pads[i + w.spatial];
    }
    int64_t span = in + *pad_begin + *pad_end - k_eff;
    KILN_CHECK(span >= 0, kInvalidModel, where, ": spatial dim ", i, " of extent ", in, " (padded ",
               in + *pad_begin + *pad_end, ") is smaller than the kernel extent ", k_eff, " (kernel ", k, ", dilation ",
               d, ")");
    if (!w.ceil_mode) return floor_div(span, s) + 1;
    int64_t out = ceil_div(span, s) + 1;
    if ((out - 1) * s >= in + *pad_begin) --out;  // the last window would start inside the end padding
    return out;
}

ConvTransposeAttrs parse_conv_transpose_attrs(const AttributeMap& attrs, int spatial,
                                              const std::vector<int64_t>& kernel_hint, const std::string& where) {
    ConvTransposeAttrs a;
    a.window = parse_window_attrs(attrs, spatial, kernel_hint, false, where);
    a.output_padding = ints_of_length(attrs, "output_padding", spatial, 0, 0, where);
    for (int i = 0; i < spatial; ++i)
        KILN_CHECK(a.output_padding[i] < std::max(a.window.strides[i], a.window.dilations[i]), kInvalidModel, where,
                   ": attribute 'output_padding' = [", join(a.output_padding, ","),
                   "] must be smaller than the stride or the dilation");
    if (attrs.has("output_shape")) {
        a.output_shape = attrs.get_ints("output_shape");
        KILN_CHECK(a.output_shape.size() >= static_cast<size_t>(spatial), kInvalidModel, where,
                   ": attribute 'output_shape' = [", join(a.output_shape, ","), "] has fewer than ", spatial,
                   " values");
        a.output_shape.erase(a.output_shape.begin(), a.output_shape.end() - spatial);
    }
    return a;
}

int64_t conv_transpose_output_dim(const ConvTransposeAttrs& a, int i, int64_t in, int64_t* pad_begin, int64_t* pad_end,
                                  const std::string& where) {
    const WindowAttrs& w = a.window;
    *pad_begin = *pad_end = 0;
    int64_t k = w.kernel[i], s = w.strides[i], d = w.dilations[i];
    if (in < 0 || k < 0) return -1;
    int64_t full = s * (in - 1) + a.output_padding[i] + (k - 1) * d + 1;
    bool same = w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER";
    int64_t out;
    if (!a.output_shape.empty() || same) {
        out = !a.output_shape.empty() ? a.output_shape[i] : in * s;
        int64_t total = std::max<int64_t>(0, full - out);
        *pad_begin = w.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        *pad_end = total - *pad_begin;
    } else {
        if (w.auto_pad == "NOTSET") {
            *pad_begin = w.pads[i];
            *pad_end = w.pads[i + w.spatial];
        }
        out = full - *pad_begin - *pad_end;
    }
    KILN_CHECK(out > 0, kInvalidModel, where, ": spatial output dim ", i, " would be ", out);
    return out;
}

void infer_conv(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& w = ctx.input(1);
    ctx.check(x.rank() >= 3, "input X must have rank >= 3 (N x C x spatial...), got ", shape_str(x.dims));
    ctx.check(w.rank() == x.rank(), "weight W has shape ", shape_str(w.dims), " but X has rank ", x.rank());
    ctx.check(w.dtype == x.dtype, "weight W has dtype ", dtype_name(w.dtype), " but X has ", dtype_name(x.dtype));
    int spatial = x.rank() - 2;
    int64_t group = ctx.attrs().get_int("group", 1);
    ctx.check(group >= 1, "attribute 'group' = ", group, " must be >= 1");
    std::vector<int64_t> hint;
    for (int i = 0; i < spatial; ++i) hint.push_back(value_or_unknown(w.dims[2 + i]));
    WindowAttrs win = parse_window_attrs(ctx.attrs(), spatial, hint, false, ctx.where());
    if (x.dims[1].is_static() && w.dims[1].is_static())
        ctx.check(x.dims[1].value == w.dims[1].value * group, "X has ", x.dims[1].value, " channels but W (",
                  shape_str(w.dims), ") expects ", w.dims[1].value, " x group ", group);
    if (w.dims[0].is_static())
        ctx.check(w.dims[0].value % group == 0, "W has ", w.dims[0].value, " output channels, not a multiple of ",
                  "group ", group);
    if (ctx.has_input(2)) {
        const TensorInfo& b = ctx.input(2);
        ctx.check(b.rank() == 1, "bias B must be 1-D, got ", shape_str(b.dims));
        if (b.dims[0].is_static() && w.dims[0].is_static())
            ctx.check(b.dims[0].value == w.dims[0].value, "bias B has ", b.dims[0].value, " values but W has ",
                      w.dims[0].value, " output channels");
    }
    SymShape out = {x.dims[0], w.dims[0]};
    for (int i = 0; i < spatial; ++i) {
        int64_t pb, pe;
        out.push_back(
            static_or_unknown(window_output_dim(win, i, value_or_unknown(x.dims[2 + i]), &pb, &pe, ctx.where())));
    }
    ctx.set_output(0, x.dtype, out);
}

void infer_conv_transpose(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& w = ctx.input(1);
    ctx.check(x.rank() >= 3, "input X must have rank >= 3 (N x C x spatial...), got ", shape_str(x.dims));
    ctx.check(w.rank() == x.rank(), "weight W has shape ", shape_str(w.dims), " but X has rank ", x.rank());
    ctx.check(w.dtype == x.dtype, "weight W has dtype ", dtype_name(w.dtype), " but X has ", dtype_name(x.dtype));
    int spatial = x.rank() - 2;
    int64_t group = ctx.attrs().get_int("group", 1);
    ctx.check(group >= 1, "attribute 'group' = ", group, " must be >= 1");
    std::vector<int64_t> hint;
    for (int i = 0; i < spatial; ++i) hint.push_back(value_or_unknown(w.dims[2 + i]));
    ConvTransposeAttrs ct = parse_conv_transpose_attrs(ctx.attrs(), spatial, hint, ctx.where());
    if (x.dims[1].is_static() && w.dims[0].is_static())
        ctx.check(x.dims[1].value == w.dims[0].value, "X has ", x.dims[1].value, " channels but W (", shape_str(w.dims),
                  ") expects ", w.dims[0].value);
    if (w.dims[0].is_static())
        ctx.check(w.dims[0].value % group == 0, "W has ", w.dims[0].value, " input channels, not a multiple of ",
                  "group ", group);
    Dim channels = dim_mul(w.dims[1], Dim(group));
    if (ctx.has_input(2)) {
        const TensorInfo& b = ctx.input(2);
        ctx.check(b.rank() == 1, "bias B must be 1-D, got ", shape_str(b.dims));
        if (b.dims[0].is_static() && channels.is_static())
            ctx.check(b.dims[0].value == channels.value, "bias B has ", b.dims[0].value, " values but the output has ",
                      channels.value, " channels");
    }
    SymShape out = {x.dims[0], channels};
    for (int i = 0; i < spatial; ++i) {
        int64_t pb, pe;
        out.push_back(static_or_unknown(
            conv_transpose_output_dim(ct, i, value_or_unknown(x.dims[2 + i]), &pb, &pe, ctx.where())));
    }
    ctx.set_output(0, x.dtype, out);
}

void infer_pool(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    ctx.check(x.rank() >= 3, "input X must have rank >= 3 (N x C x spatial...), got ", shape_str(x.dims));
    int spatial = x.rank() - 2;
    WindowAttrs win = parse_window_attrs(ctx.attrs(), spatial, {}, true, ctx.where());
    if (ctx.op_type() == "MaxPool") {
        int64_t order = ctx.attrs().get_int("storage_order", 0);
        ctx.check(order == 0 || order == 1, "attribute 'storage_order' = ", order, " must be 0 or 1");
    } else {
        int64_t cip = ctx.attrs().get_int("count_include_pad", 0);
        ctx.check(cip == 0 || cip == 1, "attribute 'count_include_pad' = ", cip, " must be 0 or 1");
    }
    for (int i = 0; i < spatial; ++i) {
        int64_t k_eff = (win.kernel[i] - 1) * win.dilations[i] + 1;
        ctx.check(win.auto_pad != "NOTSET" || (win.pads[i] < k_eff && win.pads[i + spatial] < k_eff),
                  "attribute 'pads' = [", join(win.pads, ","), "] must be smaller than the kernel extent ", k_eff);
    }
    SymShape out = {x.dims[0], x.dims[1]};
    for (int i = 0; i < spatial; ++i) {
        int64_t pb, pe;
        out.push_back(
            static_or_unknown(window_output_dim(win, i, value_or_unknown(x.dims[2 + i]), &pb, &pe, ctx.where())));
    }
    ctx.set_output(0, x.dtype, out);
}

void infer_global_pool(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    ctx.check(x.rank() >= 3, "input X must have rank >= 3 (N x C x spatial...), got ", shape_str(x.dims));
    SymShape out = {x.dims[0], x.dims[1]};
    out.resize(x.dims.size(), Dim(1));
    ctx.set_output(0, x.dtype, out);
}

}  // namespace kiln::ops

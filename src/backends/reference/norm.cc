// Reference normalisations and softmax for float32/64: BatchNormalization (inference), LayerNormalization,
// InstanceNormalization, Softmax and LogSoftmax (opset 13: along one axis). Statistics accumulate in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "src/backends/reference/reference_backend.h"
#include "src/ops/shape_utils.h"

namespace kiln::backends::reference {
namespace {

void check_float(const KernelNode& node) {
    for (const ops::TensorInfo& t : node.inputs) {
        if (!t.present) continue;
        KILN_CHECK(t.dtype == DataType::kFloat32 || t.dtype == DataType::kFloat64, kUnsupported, node.where(),
                   ": dtype ", dtype_name(t.dtype), " is not supported (float32, float64 are)");
        KILN_CHECK(t.dtype == node.inputs[0].dtype, kUnsupported, node.where(), ": inputs of mixed dtypes (",
                   dtype_name(node.inputs[0].dtype), ", ", dtype_name(t.dtype), ") are not supported");
    }
}

template <typename F>
void dispatch_float(DataType dtype, F&& f) {
    if (dtype == DataType::kFloat32)
        f.template operator()<float>();
    else
        f.template operator()<double>();
}

// y = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + bias[c]  =  x * a[c] + b[c]
template <typename T>
void batch_norm(const KernelArgs& args, double eps) {
    const Tensor& x = *args.inputs[0];
    const T *scale = args.inputs[1]->data<T>(), *bias = args.inputs[2]->data<T>();
    const T *mean = args.inputs[3]->data<T>(), *var = args.inputs[4]->data<T>();
    T* y = args.outputs[0]->data<T>();
    const int64_t n = x.dim(0), c = x.rank() > 1 ? x.dim(1) : 1;
    const int64_t plane = n * c != 0 ? x.numel() / (n * c) : 0;
    KILN_CHECK(args.inputs[1]->numel() == c && args.inputs[2]->numel() == c && args.inputs[3]->numel() == c &&
                   args.inputs[4]->numel() == c,
               kInvalidArgument, "BatchNormalization: scale, B, mean and var must have ", c, " values");
    const T* xp = x.data<T>();
    for (int64_t i = 0; i < n; ++i)
        for (int64_t ch = 0; ch < c; ++ch) {
            double a = scale[ch] / std::sqrt(static_cast<double>(var[ch]) + eps);
            double b = bias[ch] - mean[ch] * a;
            for (int64_t p = 0; p < plane; ++p, ++xp, ++y) *y = static_cast<T>(*xp * a + b);
        }
}

// Over each of `outer` groups of `size` elements: y = (x - mean) / sqrt(var + eps) * scale + bias, with
// scale/bias indexed by `channel(group)` (InstanceNorm) or expanded over the group (LayerNorm).
template <typename T>
void normalize_group(const T* x, int64_t size, double eps, T* y, const T* scale, const T* bias, int64_t scale_step) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < size; ++i) mean += x[i];
    mean /= static_cast<double>(size);
    for (int64_t i = 0; i < size; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= static_cast<double>(size);
    double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < size; ++i) {
        double s = scale ? scale[i * scale_step] : 1.0, b = bias ? bias[i * scale_step] : 0.0;
        y[i] = static_cast<T>((x[i] - mean) * inv * s + b);
    }
}

template <typename T>
void layer_norm(const KernelArgs& args, int64_t axis_attr, double eps) {
    const Tensor& x = *args.inputs[0];
    const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + x.rank() : axis_attr);
    Shape norm_shape(x.shape().begin() + axis, x.shape().end());
    const int64_t size = shape_numel(norm_shape), outer = size ? x.numel() / size : 0;
    // Expand scale and bias (broadcastable to the normalised shape) to `size` values.
    auto expand = [&](const Tensor* t) {
        std::vector<T> v;
        if (!t) return v;
        KILN_CHECK(t->rank() <= static_cast<int>(norm_shape.size()) &&
                       ops::broadcast_shapes(t->shape(), norm_shape) == norm_shape,
                   kInvalidArgument, "LayerNormalization: scale/bias of shape ", shape_str(t->shape()),
                   " cannot be broadcast to ", shape_str(norm_shape));
        std::vector<int64_t> st = ops::broadcast_strides(t->shape(), norm_shape);
        v.resize(size);
        std::vector<int64_t> idx(norm_shape.size(), 0);
        for (int64_t i = 0; i < size; ++i) {
            int64_t off = 0;
            for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * st[d];
            v[i] = t->data<T>()[off];
            for (int d = static_cast<int>(idx.size()) - 1; d >= 0 && ++idx[d] == norm_shape[d]; --d) idx[d] = 0;
        }
        return v;
    };
    std::vector<T> scale = expand(args.inputs[1]);
    std::vector<T> bias = expand(args.inputs.size() > 2 ? args.inputs[2] : nullptr);
    for (int64_t o = 0; o < outer; ++o)
        normalize_group(x.data<T>() + o * size, size, eps, args.outputs[0]->data<T>() + o * size, scale.data(),
                        bias.empty() ? nullptr : bias.data(), 1);
}

template <typename T>
void instance_norm(const KernelArgs& args, double eps) {
    const Tensor& x = *args.inputs[0];
    const int64_t n = x.dim(0), c = x.dim(1), plane = n * c != 0 ? x.numel() / (n * c) : 0;
    KILN_CHECK(args.inputs[1]->numel() == c && args.inputs[2]->numel() == c, kInvalidArgument,
               "InstanceNormalization: scale and B must have ", c, " values");
    for (int64_t i = 0; i < n * c; ++i) {
        int64_t ch = i % c;
        normalize_group(x.data<T>() + i * plane, plane, eps, args.outputs[0]->data<T>() + i * plane,
                        args.inputs[1]->data<T>() + ch, args.inputs[2]->data<T>() + ch, 0);
    }
}

// Softmax along `axis`: y = exp(x - max) / sum(exp(x - max)); LogSoftmax: y = x - max - log(sum(exp(x - max))).
// The tensor is viewed as [outer, n, inner]; each [n, inner] slab is reduced with inner-length accumulators so
// the innermost loop stays contiguous.
template <typename T>
void softmax(const KernelArgs& args, int64_t axis_attr, bool log) {
    const Tensor& x = *args.inputs[0];
    const int axis = static_cast<int>(axis_attr < 0 ? axis_attr + x.rank() : axis_attr);
    int64_t outer = 1, inner = 1;
    const int64_t n = x.rank() ? x.dim(axis) : 1;
    for (int d = 0; d < axis; ++d) outer *= x.dim(d);
    for (int d = axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    std::vector<T> mx(inner);
    std::vector<double> sum(inner);
    for (int64_t o = 0; o < outer; ++o) {
        const T* xs = x.data<T>() + o * n * inner;
        T* ys = args.outputs[0]->data<T>() + o * n * inner;
        std::fill(mx.begin(), mx.end(), -std::numeric_limits<T>::infinity());
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int64_t a = 0; a < n; ++a)
            for (int64_t i = 0; i < inner; ++i) mx[i] = std::max(mx[i], xs[a * inner + i]);
        for (int64_t a = 0; a < n; ++a)
            for (int64_t i = 0; i < inner; ++i) {
                T e = std::exp(xs[a * inner + i] - mx[i]);
                sum[i] += e;
                if (!log) ys[a * inner + i] = e;
            }
        for (int64_t a = 0; a < n; ++a)
            for (int64_t i = 0; i < inner; ++i) {
                T& y = ys[a * inner + i];
                y = log ? static_cast<T>(xs[a * inner + i] - mx[i] - std::log(sum[i])) : static_cast<T>(y / sum[i]);
            }
    }
}

int64_t checked_axis(const KernelNode& node, int64_t def) {
    int64_t axis = node.attrs.get_int("axis", def);
    int rank = node.inputs[0].rank();
    KILN_CHECK(axis >= -rank && axis < std::max(rank, 1), kInvalidModel, node.where(), ": attribute 'axis' = ", axis,
               " is out of range for a rank-", rank, " input");
    return axis;
}

std::unique_ptr<Kernel> make_softmax(const KernelNode& node, bool log) {
    check_float(node);
    const int64_t axis = checked_axis(node, -1);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) { dispatch_float(dtype, [&]<typename T>() { softmax<T>(a, axis, log); }); },
        cat(log ? "log_softmax_" : "softmax_", dtype_name(dtype), "_ref"));
}

}  // namespace

std::unique_ptr<Kernel> make_ref_BatchNormalization(const KernelNode& node) {
    check_float(node);
    KILN_CHECK(node.attrs.get_int("training_mode", 0) == 0, kUnsupported, node.where(),
               ": attribute 'training_mode' = 1 is not supported (inference only)");
    KILN_CHECK(node.inputs[0].rank() >= 1, kInvalidModel, node.where(), ": X must have rank >= 1");
    const double eps = node.attrs.get_float("epsilon", 1e-5f);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) { dispatch_float(dtype, [&]<typename T>() { batch_norm<T>(a, eps); }); },
        cat("batch_norm_", dtype_name(dtype), "_nchw_ref"));
}

std::unique_ptr<Kernel> make_ref_LayerNormalization(const KernelNode& node) {
    check_float(node);
    const int64_t axis = checked_axis(node, -1);
    const double eps = node.attrs.get_float("epsilon", 1e-5f);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) { dispatch_float(dtype, [&]<typename T>() { layer_norm<T>(a, axis, eps); }); },
        cat("layer_norm_", dtype_name(dtype), "_ref"));
}

std::unique_ptr<Kernel> make_ref_InstanceNormalization(const KernelNode& node) {
    check_float(node);
    KILN_CHECK(node.inputs[0].rank() >= 3, kInvalidModel, node.where(), ": X must have rank >= 3 (N x C x ...)");
    const double eps = node.attrs.get_float("epsilon", 1e-5f);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) { dispatch_float(dtype, [&]<typename T>() { instance_norm<T>(a, eps); }); },
        cat("instance_norm_", dtype_name(dtype), "_nchw_ref"));
}

std::unique_ptr<Kernel> make_ref_Softmax(const KernelNode& node) { return make_softmax(node, false); }
std::unique_ptr<Kernel> make_ref_LogSoftmax(const KernelNode& node) { return make_softmax(node, true); }

}  // namespace kiln::backends::reference

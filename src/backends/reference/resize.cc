// Reference Resize (opset 13+ form: X, roi, scales, sizes; opset 18 axes and keep_aspect_ratio_policy): modes
// nearest (any dtype) and linear (float32/64, N-d), all coordinate transformation modes but cubic's. Both modes are
// separable, so the tensor is resized one axis at a time; coordinates are computed in float as onnxruntime does.
#include <cmath>
#include <vector>

#include "src/backends/reference/reference_backend.h"
#include "src/ops/nn.h"

namespace kiln::backends::reference {
namespace {

/// Where output index `o` of an axis resized from `in` to `out` samples the input.
float original_coordinate(const std::string& mode, float o, float scale, int64_t in, int64_t out, float roi_start,
                          float roi_end) {
    const float fin = static_cast<float>(in), fout = static_cast<float>(out);
    if (mode == "half_pixel") return (o + 0.5f) / scale - 0.5f;
    if (mode == "half_pixel_symmetric") {
        // offset = in/2 * (1 - out / (in * scale)), x = offset + (o + 0.5) / scale - 0.5
        float adjustment = fout / (scale * fin);
        float offset = fin / 2 * (1 - adjustment);
        return offset + (o + 0.5f) / scale - 0.5f;
    }
    if (mode == "pytorch_half_pixel") return out > 1 ? (o + 0.5f) / scale - 0.5f : 0.f;
    if (mode == "align_corners") return out == 1 ? 0.f : o * (fin - 1) / (fout - 1);
    if (mode == "asymmetric") return o / scale;
    if (mode == "tf_half_pixel_for_nn") return (o + 0.5f) / scale;
    // tf_crop_and_resize
    return out > 1 ? roi_start * (fin - 1) + o * (roi_end - roi_start) * (fin - 1) / (fout - 1)
                   : 0.5f * (roi_start + roi_end) * (fin - 1);
}

int64_t nearest_index(const std::string& mode, float x) {
    float f = std::floor(x);
    if (mode == "floor") return static_cast<int64_t>(f);
    if (mode == "ceil") return static_cast<int64_t>(std::ceil(x));
    if (x == f + 0.5f) return static_cast<int64_t>(mode == "round_prefer_ceil" ? f + 1 : f);
    return static_cast<int64_t>(std::round(x));
}

/// One output index along an axis: out = w0 * in[i0] + w1 * in[i1], or the extrapolation value when `outside`.
struct Tap {
    int64_t i0 = 0, i1 = 0;
    float w0 = 1.f, w1 = 0.f;
    bool outside = false;
};

std::vector<Tap> make_taps(const ops::ResizeAttrs& a, int64_t in, int64_t out, float scale, float roi_start,
                           float roi_end) {
    std::vector<Tap> taps(out);
    const std::string& ctm = a.coordinate_transformation_mode;
    for (int64_t o = 0; o < out; ++o) {
        Tap& t = taps[o];
        float x = original_coordinate(ctm, static_cast<float>(o), scale, in, out, roi_start, roi_end);
        if (ctm == "tf_crop_and_resize" && (x < 0 || x > static_cast<float>(in - 1))) {
            t.outside = true;
            continue;
        }
        if (a.mode == "nearest") {
            t.i0 = t.i1 = std::clamp<int64_t>(nearest_index(a.nearest_mode, x), 0, in - 1);
            continue;
        }
        x = std::clamp(x, 0.f, static_cast<float>(in - 1));
        t.i0 = std::min(static_cast<int64_t>(x), in - 1);
        t.i1 = std::min(t.i0 + 1, in - 1);
        t.w1 = x - static_cast<float>(t.i0);
        t.w0 = 1.f - t.w1;
        if (t.i0 == t.i1) t.w0 = 1.f, t.w1 = 0.f;
    }
    return taps;
}

/// Resizes dim `axis` of `src` (shape `shape`) to `taps.size()`, writing `dst`.
template <typename T>
void resize_axis(const T* src, const Shape& shape, int axis, const std::vector<Tap>& taps, bool linear, T extrap,
                 T* dst) {
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= shape[d];
    for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    const int64_t in = shape[axis], out = static_cast<int64_t>(taps.size());
    for (int64_t o = 0; o < outer; ++o) {
        const T* s = src + o * in * inner;
        T* d = dst + o * out * inner;
        for (int64_t j = 0; j < out; ++j, d += inner) {
            const Tap& t = taps[j];
            const T* r0 = s + t.i0 * inner;
            const T* r1 = s + t.i1 * inner;
            if (t.outside) {
                std::fill(d, d + inner, extrap);
            } else if (!linear || t.w1 == 0.f) {
                std::copy(r0, r0 + inner, d);
            } else {
                for (int64_t i = 0; i < inner; ++i) d[i] = static_cast<T>(t.w0 * r0[i] + t.w1 * r1[i]);
            }
        }
    }
}

template <typename T>
void resize_forward(const KernelArgs& args, const ops::ResizeAttrs& attrs, const std::string& where) {
    const Tensor& x = *args.inputs[0];
    Tensor& y = *args.outputs[0];
    auto given = [&](size_t i) { return args.inputs.size() > i && args.inputs[i] && args.inputs[i]->numel() > 0; };
    std::vector<float> scales;
    std::vector<int64_t> sizes;
    const bool use_sizes = !given(2);
    KILN_CHECK(given(2) != given(3), kInvalidArgument, where, ": exactly one of 'scales' and 'sizes' must be given");
    if (use_sizes) {
        sizes = args.inputs[3]->to_i64_vector();
    } else {
        for (int64_t i = 0; i < args.inputs[2]->numel(); ++i)
            scales.push_back(static_cast<float>(args.inputs[2]->get_f64(i)));
    }
    Shape out;
    std::vector<float> used;
    ops::resize_output(attrs, x.shape(), scales, sizes, use_sizes, &out, &used, where);
    KILN_ASSERT(out == y.shape());
    // roi: [starts..., ends...] over all dims, or over `axes` when that attribute is set.
    const int rank = x.rank();
    std::vector<float> roi_start(rank, 0.f), roi_end(rank, 1.f);
    if (attrs.coordinate_transformation_mode == "tf_crop_and_resize" && given(1)) {
        const Tensor& roi = *args.inputs[1];
        std::vector<int> axes;
        for (int64_t ax : attrs.axes) axes.push_back(static_cast<int>(ax < 0 ? ax + rank : ax));
        if (axes.empty())
            for (int i = 0; i < rank; ++i) axes.push_back(i);
        KILN_CHECK(roi.numel() == 2 * static_cast<int64_t>(axes.size()), kInvalidArgument, where, ": 'roi' has ",
                   roi.numel(), " values, expected ", 2 * axes.size());
        for (size_t j = 0; j < axes.size(); ++j) {
            roi_start[axes[j]] = static_cast<float>(roi.get_f64(j));
            roi_end[axes[j]] = static_cast<float>(roi.get_f64(j + axes.size()));
        }
    }
    const bool linear = attrs.mode == "linear";
    const std::string& ctm = attrs.coordinate_transformation_mode;
    const bool never_identity = ctm == "tf_half_pixel_for_nn" || ctm == "tf_crop_and_resize";
    std::vector<T> cur(x.data<T>(), x.data<T>() + x.numel()), next;
    Shape shape = x.shape();
    for (int ax = 0; ax < rank; ++ax) {
        if (out[ax] == shape[ax] && used[ax] == 1.f && !never_identity) continue;
        std::vector<Tap> taps = make_taps(attrs, shape[ax], out[ax], used[ax], roi_start[ax], roi_end[ax]);
        Shape next_shape = shape;
        next_shape[ax] = out[ax];
        next.assign(static_cast<size_t>(shape_numel(next_shape)), T(0));
        if (shape_numel(next_shape) > 0 && shape[ax] > 0)
            resize_axis(cur.data(), shape, ax, taps, linear, static_cast<T>(attrs.extrapolation_value), next.data());
        cur.swap(next);
        shape = next_shape;
    }
    std::copy(cur.begin(), cur.end(), y.data<T>());
}

}  // namespace

std::unique_ptr<Kernel> make_ref_Resize(const KernelNode& node) {
    const std::string where = node.where();
    const ops::ResizeAttrs attrs = ops::parse_resize_attrs(node.attrs, where);
    const DataType dtype = node.inputs[0].dtype;
    KILN_CHECK(attrs.mode != "linear" || dtype == DataType::kFloat32 || dtype == DataType::kFloat64, kUnsupported,
               where, ": Resize mode 'linear' on dtype ", dtype_name(dtype),
               " is not supported (float32, float64 are)");
    return make_kernel(
        [=](const KernelArgs& a) {
            dispatch_dtype(dtype, where, [&]<typename T>() { resize_forward<T>(a, attrs, where); });
        },
        cat("resize_", attrs.mode, "_", dtype_name(dtype), "_ref"));
}

}  // namespace kiln::backends::reference

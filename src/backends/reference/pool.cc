// Reference MaxPool, AveragePool (1-D, 2-D, 3-D; kernel_shape, strides, pads, auto_pad, ceil_mode, dilations,
// count_include_pad) and GlobalAveragePool / GlobalMaxPool. 1-D and 2-D run as 3-D with leading extent-1 dims.
#include <algorithm>
#include <limits>
#include <vector>

#include "src/backends/reference/reference_backend.h"
#include "src/ops/nn.h"

namespace kiln::backends::reference {
namespace {

/// Window positions along one output dim: for output o, the input positions start[o] + j * d for j < k, of which
/// j in [lo[o], hi[o]) lie inside the input and `padded[o]` lie inside input + pads (count_include_pad divisor).
struct Axis {
    int64_t in = 1, out = 1, k = 1, d = 1;
    std::vector<int64_t> start, lo, hi, padded;
};

Axis make_axis(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
    Axis a{in, out, k, d, {}, {}, {}, {}};
    for (int64_t o = 0; o < out; ++o) {
        int64_t st = o * s - pb;
        int64_t lo = 0, hi = 0, padded = 0;
        bool seen = false;
        for (int64_t j = 0; j < k; ++j) {
            int64_t p = st + j * d;
            if (p >= -pb && p < in + pe) ++padded;
            if (p >= 0 && p < in) {
                if (!seen) lo = j, seen = true;
                hi = j + 1;
            }
        }
        a.start.push_back(st), a.lo.push_back(lo), a.hi.push_back(seen ? hi : 0), a.padded.push_back(padded);
    }
    return a;
}

template <typename T>
void pool_forward(const KernelArgs& args, const ops::WindowAttrs& win, bool is_max, bool count_include_pad,
                  const std::string& where) {
    const Tensor& x = *args.inputs[0];
    Tensor& y = *args.outputs[0];
    const int spatial = x.rank() - 2;
    Axis ax[3];
    for (int i = 0; i < spatial; ++i) {
        int64_t pb, pe;
        int64_t out = ops::window_output_dim(win, i, x.dim(2 + i), &pb, &pe, where);
        KILN_ASSERT(out == y.dim(2 + i));
        ax[3 - spatial + i] = make_axis(x.dim(2 + i), out, win.kernel[i], win.strides[i], win.dilations[i], pb, pe);
    }
    for (int i = 0; i < 3 - spatial; ++i) ax[i] = make_axis(1, 1, 1, 1, 1, 0, 0);
    const int64_t planes = x.dim(0) * x.dim(1);
    const int64_t isz = ax[0].in * ax[1].in * ax[2].in, osz = ax[0].out * ax[1].out * ax[2].out;
    for (int64_t p = 0; p < planes; ++p) {
        const T* xp = x.data<T>() + p * isz;
        T* yp = y.data<T>() + p * osz;
        for (int64_t od = 0; od < ax[0].out; ++od)
            for (int64_t oh = 0; oh < ax[1].out; ++oh)
                for (int64_t ow = 0; ow < ax[2].out; ++ow) {
                    T best = std::numeric_limits<T>::lowest();
                    double sum = 0;
                    int64_t count = 0;
                    for (int64_t jd = ax[0].lo[od]; jd < ax[0].hi[od]; ++jd) {
                        int64_t id = ax[0].start[od] + jd * ax[0].d;
                        for (int64_t jh = ax[1].lo[oh]; jh < ax[1].hi[oh]; ++jh) {
                            int64_t ih = ax[1].start[oh] + jh * ax[1].d;
                            const T* row = xp + (id * ax[1].in + ih) * ax[2].in;
                            for (int64_t jw = ax[2].lo[ow]; jw < ax[2].hi[ow]; ++jw) {
                                T v = row[ax[2].start[ow] + jw * ax[2].d];
                                best = std::max(best, v);
                                sum += static_cast<double>(v);
                                ++count;
                            }
                        }
                    }
                    if (is_max) {
                        *yp++ = best;
                    } else {
                        if (count_include_pad) count = ax[0].padded[od] * ax[1].padded[oh] * ax[2].padded[ow];
                        *yp++ = count ? static_cast<T>(sum / static_cast<double>(count)) : T(0);
                    }
                }
    }
}

template <typename T>
void global_pool_forward(const KernelArgs& args, bool is_max) {
    const Tensor& x = *args.inputs[0];
    T* y = args.outputs[0]->data<T>();
    const int64_t planes = x.dim(0) * x.dim(1), size = planes ? x.numel() / planes : 0;
    for (int64_t p = 0; p < planes; ++p) {
        const T* xp = x.data<T>() + p * size;
        if (is_max) {
            y[p] = size ? *std::max_element(xp, xp + size) : std::numeric_limits<T>::lowest();
        } else {
            double sum = 0;
            for (int64_t i = 0; i < size; ++i) sum += static_cast<double>(xp[i]);
            y[p] = static_cast<T>(size ? sum / static_cast<double>(size) : 0.0);
        }
    }
}

void check_dtype(const KernelNode& node, bool allow_int8) {
    DataType t = node.inputs[0].dtype;
    bool ok = t == DataType::kFloat32 || t == DataType::kFloat64 ||
              (allow_int8 && (t == DataType::kInt8 || t == DataType::kUInt8));
    KILN_CHECK(ok, kUnsupported, node.where(), ": dtype ", dtype_name(t), " is not supported (float32, float64",
               allow_int8 ? ", int8, uint8" : "", " are)");
}

std::unique_ptr<Kernel> make_pool(const KernelNode& node, bool is_max) {
    check_dtype(node, is_max);
    const std::string where = node.where();
    const int spatial = node.inputs[0].rank() - 2;
    KILN_CHECK(spatial >= 1 && spatial <= 3, kUnsupported, where, ": ", spatial,
               "-D pooling is not supported (1-D, 2-D, 3-D are)");
    const ops::WindowAttrs win = ops::parse_window_attrs(node.attrs, spatial, {}, true, where);
    const bool include_pad = node.attrs.get_int("count_include_pad", 0) != 0;
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) {
            dispatch_dtype(dtype, where, [&]<typename T>() { pool_forward<T>(a, win, is_max, include_pad, where); });
        },
        cat(is_max ? "maxpool" : "avgpool", spatial, "d_", dtype_name(dtype), "_nchw_ref"));
}

std::unique_ptr<Kernel> make_global_pool(const KernelNode& node, bool is_max) {
    check_dtype(node, is_max);
    const std::string where = node.where();
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) {
            dispatch_dtype(dtype, where, [&]<typename T>() { global_pool_forward<T>(a, is_max); });
        },
        cat(is_max ? "global_maxpool_" : "global_avgpool_", dtype_name(dtype), "_nchw_ref"));
}

}  // namespace

std::unique_ptr<Kernel> make_ref_MaxPool(const KernelNode& node) { return make_pool(node, true); }
std::unique_ptr<Kernel> make_ref_AveragePool(const KernelNode& node) { return make_pool(node, false); }
std::unique_ptr<Kernel> make_ref_GlobalMaxPool(const KernelNode& node) { return make_global_pool(node, true); }
std::unique_ptr<Kernel> make_ref_GlobalAveragePool(const KernelNode& node) { return make_global_pool(node, false); }

}  // namespace kiln::backends::reference

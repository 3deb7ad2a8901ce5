// Reference kernels for indexing: Slice, Gather, GatherElements, Pad. All are dtype-agnostic (elements are moved
// as units of dtype_size bytes).
#include <cstring>

#include "src/backends/reference/copy_util.h"
#include "src/backends/reference/reference_backend.h"
#include "src/ops/shape_utils.h"
#include "src/ops/tensor_ops.h"

namespace kiln::backends::reference {

using ops::strides_of;

namespace {

std::vector<int64_t> ints_of(const Tensor* t) { return t ? t->to_i64_vector() : std::vector<int64_t>{}; }

}  // namespace

// ------------------------------------------------------------------------------------------ Slice

// y[i] = x[start + i * step] on every sliced axis: a strided copy whose source starts at the slice origin and
// whose strides are x's strides times the steps.
std::unique_ptr<Kernel> make_ref_Slice(const KernelNode& node) {
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            std::vector<int64_t> starts = ints_of(a.inputs[1]), ends = ints_of(a.inputs[2]);
            std::vector<int64_t> axes = ints_of(a.inputs.size() > 3 ? a.inputs[3] : nullptr);
            std::vector<int64_t> steps = ints_of(a.inputs.size() > 4 ? a.inputs[4] : nullptr);
            if (axes.empty())
                for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
            if (steps.empty()) steps.assign(starts.size(), 1);
            std::vector<int> ax = ops::normalize_axes(axes, x.rank(), where, "axes");
            std::vector<int64_t> xs = strides_of(x.shape()), src = xs;
            int64_t origin = 0;
            for (size_t i = 0; i < ax.size(); ++i) {
                ops::SliceAxis s = ops::slice_axis(x.dim(ax[i]), starts[i], ends[i], steps[i]);
                KILN_ASSERT(s.count == y.dim(ax[i]));
                if (s.count == 0) return;
                origin += s.start * xs[ax[i]];
                src[ax[i]] = xs[ax[i]] * s.step;
            }
            size_t es = dtype_size(x.dtype());
            strided_copy(y.raw(), strides_of(y.shape()), elem_ptr(x.raw(), origin, es), src, y.shape(), es);
        },
        "slice_ref");
}

// ------------------------------------------------------------------------------------------ Gather

// y[o, j..., i] = x[o, idx[j...], i] with o over x's dims before `axis` and i over those after it.
std::unique_ptr<Kernel> make_ref_Gather(const KernelNode& node) {
    int64_t axis = node.attrs.get_int("axis", 0);
    if (axis < 0) axis += node.inputs[0].rank();
    std::string where = node.where();
    return make_kernel(
        [axis, where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const Tensor& idx = *a.inputs[1];
            Tensor& y = *a.outputs[0];
            int64_t n = x.dim(static_cast<int>(axis));
            int64_t outer = 1, inner = 1;
            for (int k = 0; k < axis; ++k) outer *= x.dim(k);
            for (int k = static_cast<int>(axis) + 1; k < x.rank(); ++k) inner *= x.dim(k);
            size_t row = inner * dtype_size(x.dtype());
            int64_t m = idx.numel();
            const char* src = static_cast<const char*>(x.raw());
            char* dst = static_cast<char*>(y.raw());
            for (int64_t j = 0; j < m; ++j) {
                int64_t i = idx.get_i64(j);
                KILN_CHECK(i >= -n && i < n, kInvalidArgument, where, ": index ", i, " is out of range for axis ", axis,
                           " of size ", n);
                if (i < 0) i += n;
                for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + (o * m + j) * row, src + (o * n + i) * row, row);
            }
        },
        "gather_ref");
}

// y[i_0, ..., i_r] = x[i_0, ..., idx[i_0, ..., i_r], ..., i_r] (the index replaces the coordinate on `axis`).
std::unique_ptr<Kernel> make_ref_GatherElements(const KernelNode& node) {
    int64_t axis = node.attrs.get_int("axis", 0);
    if (axis < 0) axis += node.inputs[0].rank();
    std::string where = node.where();
    return make_kernel(
        [axis, where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const Tensor& idx = *a.inputs[1];
            Tensor& y = *a.outputs[0];
            int r = x.rank();
            std::vector<int64_t> xs = strides_of(x.shape());
            int64_t n = x.dim(static_cast<int>(axis));
            std::vector<int64_t> pos(r, 0);
            int64_t base = 0;  // offset in x of pos with the axis coordinate left at 0
            dispatch_elem_size(dtype_size(x.dtype()), [&]<typename U>() {
                const U* src = x.data<U>();
                U* dst = y.data<U>();
                for (int64_t e = 0; e < y.numel(); ++e) {
                    int64_t i = idx.get_i64(e);
                    KILN_CHECK(i >= -n && i < n, kInvalidArgument, where, ": index ", i, " is out of range for axis ",
                               axis, " of size ", n);
                    dst[e] = src[base + (i < 0 ? i + n : i) * xs[axis]];
                    for (int k = r - 1; k >= 0; --k) {
                        if (k != axis) base += xs[k];
                        if (++pos[k] < y.dim(k)) break;
                        if (k != axis) base -= y.dim(k) * xs[k];
                        pos[k] = 0;
                    }
                }
            });
        },
        "gather_elements_ref");
}

// ------------------------------------------------------------------------------------------ Pad

// constant: fill with the value, then copy the kept part of x (negative pads crop) into place.
// reflect / edge / wrap: y[j] = x[src_k(j_k - begin_k) per axis], where src_k maps an out-of-range coordinate c
// of an axis of size n to: edge clamp(c, 0, n-1); wrap c mod n; reflect |c| folded with period 2(n-1).
std::unique_ptr<Kernel> make_ref_Pad(const KernelNode& node) {
    std::string mode = node.attrs.get_string("mode", "constant");
    std::string where = node.where();
    return make_kernel(
        [mode, where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            int r = x.rank();
            size_t es = dtype_size(x.dtype());
            std::vector<int64_t> axes = ints_of(a.inputs.size() > 3 ? a.inputs[3] : nullptr);
            std::vector<int64_t> pads = ops::resolve_pads(
                a.inputs[1]->to_i64_vector(), a.inputs.size() > 3 && a.inputs[3] ? &axes : nullptr, r, where);
            std::vector<int64_t> xs = strides_of(x.shape()), ys = strides_of(y.shape());
            if (mode == "constant") {
                const Tensor* cv = a.inputs.size() > 2 ? a.inputs[2] : nullptr;
                std::vector<char> zero(es, 0);
                fill_elements(y.raw(), y.numel(), cv && cv->numel() ? cv->raw() : zero.data(), es);
                Shape kept(r);
                int64_t src_off = 0, dst_off = 0;
                for (int k = 0; k < r; ++k) {
                    int64_t b = pads[k], e = pads[r + k];
                    kept[k] = x.dim(k) - std::max<int64_t>(-b, 0) - std::max<int64_t>(-e, 0);
                    if (kept[k] <= 0) return;
                    src_off += std::max<int64_t>(-b, 0) * xs[k];
                    dst_off += std::max<int64_t>(b, 0) * ys[k];
                }
                strided_copy(elem_ptr(y.raw(), dst_off, es), ys, elem_ptr(x.raw(), src_off, es), xs, kept, es);
                return;
            }
            if (y.numel() == 0) return;
            // Per-axis source offsets (coordinate * stride) for every output coordinate.
            std::vector<std::vector<int64_t>> src(r);
            for (int k = 0; k < r; ++k) {
                int64_t n = x.dim(k);
                KILN_CHECK(n > 0, kInvalidArgument, where, ": cannot ", mode, "-pad axis ", k, " of size 0");
                for (int64_t j = 0; j < y.dim(k); ++j) {
                    int64_t c = j - pads[k];
                    if (c < 0 || c >= n) {
                        if (mode == "edge") {
                            c = std::clamp<int64_t>(c, 0, n - 1);
                        } else if (mode == "wrap") {
                            c = ((c % n) + n) % n;
                        } else if (n == 1) {
                            c = 0;
                        } else {
                            int64_t p = 2 * (n - 1);
                            c = ((c % p) + p) % p;
                            if (c >= n) c = p - c;
                        }
                    }
                    src[k].push_back(c * xs[k]);
                }
            }
            dispatch_elem_size(es, [&]<typename U>() {
                const U* in = x.data<U>();
                U* out = y.data<U>();
                std::vector<int64_t> pos(r, 0);
                for (int64_t e = 0; e < y.numel(); ++e) {
                    int64_t off = 0;
                    for (int k = 0; k < r; ++k) off += src[k][pos[k]];
                    out[e] = in[off];
                    for (int k = r - 1; k >= 0; --k) {
                        if (++pos[k] < y.dim(k)) break;
                        pos[k] = 0;
                    }
                }
            });
        },
        "pad_ref");
}

}  // namespace kiln::backends::reference

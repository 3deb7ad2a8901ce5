// Reference Conv and ConvTranspose (1-D, 2-D, 3-D; groups, strides, dilations, pads, auto_pad) for float32/64.
// Conv:          per image and group, Y_g[Mg x out] = W_g[Mg x Cg*kvol] * im2col(X_g)[Cg*kvol x out] (+ bias)
// ConvTranspose: per image and group, col[Mg*kvol x in] = W_g^T * X_g[Cg x in], then col2im scatters col into Y.
// 1-D and 2-D are run as 3-D with leading extent-1 spatial dims.
#include <algorithm>
#include <cstring>
#include <vector>

#include "src/backends/reference/gemm_util.h"
#include "src/backends/reference/reference_backend.h"
#include "src/ops/nn.h"

namespace kiln::backends::reference {
namespace {

/// A 3-D view of a sliding window: input/output extents, kernel, strides, dilations and begin pads per dim.
struct Geometry3 {
    int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1},
            pad[3] = {0, 0, 0};
    int64_t in_size() const { return in[0] * in[1] * in[2]; }
    int64_t out_size() const { return out[0] * out[1] * out[2]; }
    int64_t kernel_size() const { return k[0] * k[1] * k[2]; }
};

// Output positions o in [0, n_out) whose input position o * s + off lies in [0, n_in): [*lo, *hi).
void valid_range(int64_t n_out, int64_t n_in, int64_t s, int64_t off, int64_t* lo, int64_t* hi) {
    // o * s + off >= 0  <=>  o >= ceil(-off / s);   o * s + off < n_in  <=>  o < ceil((n_in - off) / s)
    auto ceil_div = [](int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
    *lo = std::clamp<int64_t>(ceil_div(-off, s), 0, n_out);
    *hi = std::clamp<int64_t>(ceil_div(n_in - off, s), *lo, n_out);
}

// The column matrix for output rows [r0, r1) of the flattened (od, oh) rows, (r1 - r0) * out_w columns:
// col[(c, kd, kh, kw), (od, oh, ow)] = x[c, od*s0 - p0 + kd*d0, oh*s1 - p1 + kh*d1, ow*s2 - p2 + kw*d2] (0 outside).
template <typename T>
void im2col(const T* x, int64_t channels, const Geometry3& g, int64_t r0, int64_t r1, T* col) {
    const int64_t isz = g.in_size(), ow_n = g.out[2], ncols = (r1 - r0) * ow_n;
    T* dst = col;
    for (int64_t c = 0; c < channels; ++c) {
        const T* xc = x + c * isz;
        for (int64_t kd = 0; kd < g.k[0]; ++kd)
            for (int64_t kh = 0; kh < g.k[1]; ++kh)
                for (int64_t kw = 0; kw < g.k[2]; ++kw, dst += ncols) {
                    int64_t off_w = kw * g.d[2] - g.pad[2], lo, hi;
                    valid_range(ow_n, g.in[2], g.s[2], off_w, &lo, &hi);
                    T* row = dst;
                    for (int64_t r = r0; r < r1; ++r, row += ow_n) {
                        int64_t id = (r / g.out[1]) * g.s[0] - g.pad[0] + kd * g.d[0];
                        int64_t ih = (r % g.out[1]) * g.s[1] - g.pad[1] + kh * g.d[1];
                        if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
                            std::fill(row, row + ow_n, T(0));
                            continue;
                        }
                        const T* src = xc + (id * g.in[1] + ih) * g.in[2];
                        std::fill(row, row + lo, T(0));
                        if (g.s[2] == 1) {
                            std::copy(src + lo + off_w, src + hi + off_w, row + lo);
                        } else {
                            for (int64_t ow = lo; ow < hi; ++ow) row[ow] = src[ow * g.s[2] + off_w];
                        }
                        std::fill(row + hi, row + ow_n, T(0));
                    }
                }
    }
}

// The adjoint of im2col for ConvTranspose: y[c, pos(i, k)] += col[(c, k), i] for positions inside y, over input
// rows [r0, r1) of the flattened (id, ih) rows. `g.in` is the extent of col's positions (ConvTranspose's input)
// and `g.out` the extent of y (its output).
template <typename T>
void col2im(const T* col, int64_t channels, const Geometry3& g, int64_t r0, int64_t r1, T* y) {
    const int64_t ysz = g.out_size(), iw_n = g.in[2], ncols = (r1 - r0) * iw_n;
    const T* src = col;
    for (int64_t c = 0; c < channels; ++c) {
        T* yc = y + c * ysz;
        for (int64_t kd = 0; kd < g.k[0]; ++kd)
            for (int64_t kh = 0; kh < g.k[1]; ++kh)
                for (int64_t kw = 0; kw < g.k[2]; ++kw, src += ncols) {
                    int64_t off_w = kw * g.d[2] - g.pad[2], lo, hi;
                    valid_range(iw_n, g.out[2], g.s[2], off_w, &lo, &hi);
                    const T* row = src;
                    for (int64_t r = r0; r < r1; ++r, row += iw_n) {
                        int64_t od = (r / g.in[1]) * g.s[0] - g.pad[0] + kd * g.d[0];
                        int64_t oh = (r % g.in[1]) * g.s[1] - g.pad[1] + kh * g.d[1];
                        if (od < 0 || od >= g.out[0] || oh < 0 || oh >= g.out[1]) continue;
                        T* dst = yc + (od * g.out[1] + oh) * g.out[2];
                        for (int64_t iw = lo; iw < hi; ++iw) dst[iw * g.s[2] + off_w] += row[iw];
                    }
                }
    }
}

// Rows of (d, h) positions per column-matrix chunk, so that a chunk holds at most ~kColBudget elements.
constexpr int64_t kColBudget = int64_t{1} << 22;  // 4M elements: 16 MiB of float
int64_t rows_per_chunk(int64_t col_rows, int64_t width, int64_t total_rows) {
    return std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, col_rows * width), 1,
                               std::max<int64_t>(1, total_rows));
}

// Lifts spatial dims (1..3) to the trailing dims of a Geometry3.
void lift(int spatial, int i, int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pad, Geometry3* g) {
    int j = 3 - spatial + i;
    g->in[j] = in, g->out[j] = out, g->k[j] = k, g->s[j] = s, g->d[j] = d, g->pad[j] = pad;
}

void check_float(const KernelNode& node) {
    DataType t = node.inputs[0].dtype;
    KILN_CHECK(t == DataType::kFloat32 || t == DataType::kFloat64, kUnsupported, node.where(), ": dtype ",
               dtype_name(t), " is not supported (float32, float64 are)");
    int spatial = node.inputs[0].rank() - 2;
    KILN_CHECK(spatial >= 1 && spatial <= 3, kUnsupported, node.where(), ": ", spatial,
               "-D convolution is not supported (1-D, 2-D, 3-D are)");
}

template <typename T>
void fill_bias(const Tensor* b, int64_t first, int64_t count, int64_t plane, T* y) {
    for (int64_t m = 0; m < count; ++m)
        std::fill(y + m * plane, y + (m + 1) * plane, b ? b->data<T>()[first + m] : T(0));
}

template <typename T>
void conv_forward(const KernelArgs& a, const ops::WindowAttrs& attrs, int64_t group, const std::string& where) {
    const Tensor& x = *a.inputs[0];
    const Tensor& w = *a.inputs[1];
    const Tensor* b = a.inputs.size() > 2 ? a.inputs[2] : nullptr;
    Tensor& y = *a.outputs[0];
    const int spatial = x.rank() - 2;
    ops::WindowAttrs win = attrs;
    Geometry3 g;
    for (int i = 0; i < spatial; ++i) {
        win.kernel[i] = w.dim(2 + i);
        int64_t pb, pe;
        int64_t out = ops::window_output_dim(win, i, x.dim(2 + i), &pb, &pe, where);
        KILN_ASSERT(out == y.dim(2 + i));
        lift(spatial, i, x.dim(2 + i), out, win.kernel[i], win.strides[i], win.dilations[i], pb, &g);
    }
    const int64_t n_batch = x.dim(0), c = x.dim(1), m = w.dim(0), cg = c / group, mg = m / group;
    KILN_CHECK(c == w.dim(1) * group && m % group == 0, kInvalidArgument, where, ": X ", shape_str(x.shape()),
               " and W ", shape_str(w.shape()), " do not match for group ", group);
    const int64_t osz = g.out_size(), isz = g.in_size(), rows = cg * g.kernel_size();
    // A 1x1 kernel with stride 1 and no padding reads X directly as the column matrix.
    const bool direct = g.kernel_size() == 1 && osz == isz && g.pad[0] == 0 && g.pad[1] == 0 && g.pad[2] == 0;
    const int64_t out_rows = g.out[0] * g.out[1], chunk = direct ? out_rows : rows_per_chunk(rows, g.out[2], out_rows);
    std::vector<T> col(direct ? 0 : static_cast<size_t>(rows * chunk * g.out[2]));
    for (int64_t n = 0; n < n_batch; ++n) {
        for (int64_t gi = 0; gi < group; ++gi) {
            const T* xg = x.data<T>() + (n * c + gi * cg) * isz;
            const T* wg = w.data<T>() + gi * mg * rows;
            T* yg = y.data<T>() + (n * m + gi * mg) * osz;
            fill_bias(b, gi * mg, mg, osz, yg);
            for (int64_t r0 = 0; r0 < out_rows; r0 += chunk) {
                const int64_t r1 = std::min(out_rows, r0 + chunk), j0 = r0 * g.out[2], ncols = (r1 - r0) * g.out[2];
                if (!direct) im2col(xg, cg, g, r0, r1, col.data());
                // Y_g[:, j0:j0+ncols] += W_g * col
                gemm<T>(false, false, mg, ncols, rows, T(1), wg, rows, direct ? xg + j0 : col.data(),
                        direct ? osz : ncols, T(1), yg + j0, osz);
            }
        }
    }
}

template <typename T>
void conv_transpose_forward(const KernelArgs& a, const ops::ConvTransposeAttrs& attrs, int64_t group,
                            const std::string& where) {
    const Tensor& x = *a.inputs[0];
    const Tensor& w = *a.inputs[1];
    const Tensor* b = a.inputs.size() > 2 ? a.inputs[2] : nullptr;
    Tensor& y = *a.outputs[0];
    const int spatial = x.rank() - 2;
    ops::ConvTransposeAttrs ct = attrs;
    Geometry3 g;  // in: X's spatial extents (col positions); out: Y's
    for (int i = 0; i < spatial; ++i) {
        ct.window.kernel[i] = w.dim(2 + i);
        int64_t pb, pe;
        int64_t out = ops::conv_transpose_output_dim(ct, i, x.dim(2 + i), &pb, &pe, where);
        KILN_ASSERT(out == y.dim(2 + i));
        lift(spatial, i, x.dim(2 + i), out, ct.window.kernel[i], ct.window.strides[i], ct.window.dilations[i], pb, &g);
    }
    const int64_t n_batch = x.dim(0), c = x.dim(1), mg = w.dim(1), cg = c / group, m = mg * group;
    KILN_CHECK(c == w.dim(0) && c % group == 0, kInvalidArgument, where, ": X ", shape_str(x.shape()), " and W ",
               shape_str(w.shape()), " do not match for group ", group);
    const int64_t isz = g.in_size(), ysz = g.out_size(), rows = mg * g.kernel_size();
    const int64_t in_rows = g.in[0] * g.in[1], chunk = rows_per_chunk(rows, g.in[2], in_rows);
    std::vector<T> col(static_cast<size_t>(rows * chunk * g.in[2]));
    for (int64_t n = 0; n < n_batch; ++n) {
        for (int64_t gi = 0; gi < group; ++gi) {
            const T* xg = x.data<T>() + (n * c + gi * cg) * isz;
            const T* wg = w.data<T>() + gi * cg * rows;
            T* yg = y.data<T>() + (n * m + gi * mg) * ysz;
            fill_bias(b, gi * mg, mg, ysz, yg);
            for (int64_t r0 = 0; r0 < in_rows; r0 += chunk) {
                const int64_t r1 = std::min(in_rows, r0 + chunk), j0 = r0 * g.in[2], ncols = (r1 - r0) * g.in[2];
                // W_g is Cg x (Mg*kvol); col = W_g^T * X_g[:, j0:j0+ncols].
                gemm<T>(true, false, rows, ncols, cg, T(1), wg, rows, xg + j0, isz, T(0), col.data(), ncols);
                col2im(col.data(), mg, g, r0, r1, yg);
            }
        }
    }
}

std::vector<int64_t> weight_kernel_hint(const KernelNode& node) {
    std::vector<int64_t> hint;
    const SymShape& wd = node.inputs[1].dims;
    for (size_t i = 2; i < wd.size(); ++i) hint.push_back(wd[i].is_static() ? wd[i].value : -1);
    return hint;
}

}  // namespace

std::unique_ptr<Kernel> make_ref_Conv(const KernelNode& node) {
    check_float(node);
    const std::string where = node.where();
    const int spatial = node.inputs[0].rank() - 2;
    const int64_t group = node.attrs.get_int("group", 1);
    const ops::WindowAttrs win = ops::parse_window_attrs(node.attrs, spatial, weight_kernel_hint(node), false, where);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) {
            if (dtype == DataType::kFloat32)
                conv_forward<float>(a, win, group, where);
            else
                conv_forward<double>(a, win, group, where);
        },
        cat("conv", spatial, "d_", dtype == DataType::kFloat32 ? "f32" : "f64", "_nchw_im2col_ref"));
}

std::unique_ptr<Kernel> make_ref_ConvTranspose(const KernelNode& node) {
    check_float(node);
    const std::string where = node.where();
    const int spatial = node.inputs[0].rank() - 2;
    const int64_t group = node.attrs.get_int("group", 1);
    const ops::ConvTransposeAttrs ct =
        ops::parse_conv_transpose_attrs(node.attrs, spatial, weight_kernel_hint(node), where);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) {
            if (dtype == DataType::kFloat32)
                conv_transpose_forward<float>(a, ct, group, where);
            else
                conv_transpose_forward<double>(a, ct, group, where);
        },
        cat("conv_transpose", spatial, "d_", dtype == DataType::kFloat32 ? "f32" : "f64", "_nchw_col2im_ref"));
}

}  // namespace kiln::backends::reference

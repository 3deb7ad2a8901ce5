// Reference Gemm, MatMul and Einsum for float32/64 and int32/64, all on the blocked gemm helper (gemm_util.h).
#include <algorithm>
#include <numeric>
#include <vector>

#include "src/backends/reference/gemm_util.h"
#include "src/backends/reference/reference_backend.h"
#include "src/ops/nn.h"
#include "src/ops/shape_utils.h"

namespace kiln::backends::reference {
namespace {

void check_gemm_dtype(const KernelNode& node) {
    for (const ops::TensorInfo& t : node.inputs) {
        if (!t.present) continue;
        KILN_CHECK(t.dtype == DataType::kFloat32 || t.dtype == DataType::kFloat64 || t.dtype == DataType::kInt32 ||
                       t.dtype == DataType::kInt64,
                   kUnsupported, node.where(), ": dtype ", dtype_name(t.dtype),
                   " is not supported (float32, float64, int32, int64 are)");
    }
}

/// Calls f.template operator()<T>() for the gemm dtypes.
template <typename F>
void dispatch_gemm(DataType dtype, F&& f) {
    switch (dtype) {
        case DataType::kFloat32:
            return f.template operator()<float>();
        case DataType::kFloat64:
            return f.template operator()<double>();
        case DataType::kInt32:
            return f.template operator()<int32_t>();
        default:
            return f.template operator()<int64_t>();
    }
}

/// Y = alpha * op(A) * op(B) + beta * C, C broadcast unidirectionally to M x N.
template <typename T>
void run_gemm(const KernelArgs& a, bool ta, bool tb, double alpha, double beta) {
    const Tensor& A = *a.inputs[0];
    const Tensor& B = *a.inputs[1];
    const Tensor* C = a.inputs.size() > 2 ? a.inputs[2] : nullptr;
    Tensor& Y = *a.outputs[0];
    const int64_t m = Y.dim(0), n = Y.dim(1), k = ta ? A.dim(0) : A.dim(1);
    T* y = Y.data<T>();
    if (C) {
        std::vector<int64_t> cs = ops::broadcast_strides(C->shape(), {m, n});
        const T* c = C->data<T>();
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) y[i * n + j] = c[i * cs[0] + j * cs[1]];
    }
    gemm<T>(ta, tb, m, n, k, static_cast<T>(alpha), A.data<T>(), A.dim(1), B.data<T>(), B.dim(1),
            C ? static_cast<T>(beta) : T(0), y, n);
}

/// numpy matmul: 1-D operands are promoted (and the extra dim dropped), batch dims broadcast.
template <typename T>
void run_matmul(const KernelArgs& a) {
    const Tensor& A = *a.inputs[0];
    const Tensor& B = *a.inputs[1];
    Tensor& Y = *a.outputs[0];
    Shape as = A.shape(), bs = B.shape();
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
    KILN_CHECK(bs[bs.size() - 2] == k, kInvalidArgument, "MatMul: inner dims of ", shape_str(A.shape()), " and ",
               shape_str(B.shape()), " do not match");
    Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    Shape batch = ops::broadcast_shapes(a_batch, b_batch);
    const int64_t nb = shape_numel(batch);
    const T* ap = A.data<T>();
    const T* bp = B.data<T>();
    T* yp = Y.data<T>();
    if (shape_numel(b_batch) == 1 && shape_numel(a_batch) == nb) {
        // B is shared by every batch: one (batch * M) x K by K x N product.
        gemm<T>(false, false, nb * m, n, k, T(1), ap, k, bp, n, T(0), yp, n);
        return;
    }
    std::vector<int64_t> sa = ops::broadcast_strides(a_batch, batch), sb = ops::broadcast_strides(b_batch, batch);
    std::vector<int64_t> idx(batch.size(), 0);
    for (int64_t t = 0; t < nb; ++t) {
        int64_t oa = 0, ob = 0;
        for (size_t d = 0; d < batch.size(); ++d) oa += idx[d] * sa[d], ob += idx[d] * sb[d];
        gemm<T>(false, false, m, n, k, T(1), ap + oa * m * k, k, bp + ob * k * n, n, T(0), yp + t * m * n, n);
        for (int d = static_cast<int>(batch.size()) - 1; d >= 0 && ++idx[d] == batch[d]; --d) idx[d] = 0;
    }
}

// ------------------------------------------------------------------------------------------ einsum

/// dst[i_0..i_r] = src[i_perm...] : dst dim j is src dim perm[j]; src_strides may hold 0 (broadcast).
template <typename T>
void strided_copy(const T* src, const std::vector<int64_t>& src_strides, const Shape& dst_shape, T* dst) {
    const int r = static_cast<int>(dst_shape.size());
    const int64_t total = shape_numel(dst_shape);
    if (r == 0) {
        if (total) dst[0] = src[0];
        return;
    }
    const int64_t inner = dst_shape[r - 1], inner_stride = src_strides[r - 1];
    std::vector<int64_t> idx(r, 0);
    for (int64_t o = 0; o < total; o += inner) {
        int64_t off = 0;
        for (int d = 0; d < r - 1; ++d) off += idx[d] * src_strides[d];
        for (int64_t i = 0; i < inner; ++i) dst[o + i] = src[off + i * inner_stride];
        for (int d = r - 2; d >= 0 && ++idx[d] == dst_shape[d]; --d) idx[d] = 0;
    }
}

/// Strides of each label in a tensor whose dims carry `labels` (repeated labels add up: a diagonal; extent-1
/// dims get 0: broadcast).
std::vector<int64_t> label_strides(const std::vector<int>& labels, const Shape& shape, int num_labels) {
    std::vector<int64_t> s(num_labels, 0), st = ops::strides_of(shape);
    for (size_t d = 0; d < labels.size(); ++d)
        if (shape[d] != 1) s[labels[d]] += st[d];
    return s;
}

/// Any equation: out[output labels] = sum over the other labels of prod_t in_t[labels_t]. Loops over every label.
template <typename T>
void einsum_generic(const ops::EinsumSpec& spec, const std::vector<int64_t>& dims, const KernelArgs& a) {
    const size_t n_in = spec.inputs.size();
    std::vector<int> order = spec.output;  // output labels outermost, summed labels innermost
    for (int l = 0; l < spec.num_labels; ++l)
        if (std::find(order.begin(), order.end(), l) == order.end()) order.push_back(l);
    const int L = static_cast<int>(order.size());
    // strides[t][j]: stride of label order[j] in input t; t == n_in is the output.
    std::vector<std::vector<int64_t>> strides(n_in + 1, std::vector<int64_t>(L, 0));
    for (size_t t = 0; t <= n_in; ++t) {
        std::vector<int64_t> s = t < n_in ? label_strides(spec.inputs[t], a.inputs[t]->shape(), spec.num_labels)
                                          : label_strides(spec.output, a.outputs[0]->shape(), spec.num_labels);
        for (int j = 0; j < L; ++j) strides[t][j] = s[order[j]];
    }
    std::vector<const T*> in(n_in);
    for (size_t t = 0; t < n_in; ++t) in[t] = a.inputs[t]->data<T>();
    T* out = a.outputs[0]->data<T>();
    std::fill(out, out + a.outputs[0]->numel(), T(0));
    int64_t total = 1;
    for (int j = 0; j < L; ++j) total *= dims[order[j]];
    if (total == 0) return;
    std::vector<int64_t> idx(L, 0), off(n_in + 1, 0);
    for (int64_t it = 0; it < total; ++it) {
        T prod = T(1);
        for (size_t t = 0; t < n_in; ++t) prod *= in[t][off[t]];
        out[off[n_in]] += prod;
        // Odometer step: advance the innermost label, carrying outwards, and keep the offsets in sync.
        for (int j = L - 1; j >= 0; --j) {
            for (size_t t = 0; t <= n_in; ++t) off[t] += strides[t][j];
            if (++idx[j] < dims[order[j]]) break;
            for (size_t t = 0; t <= n_in; ++t) off[t] -= strides[t][j] * idx[j];
            idx[j] = 0;
        }
    }
}

/// Two operands without diagonals or labels summed in one operand only: permute A to [batch, m, k] and B to
/// [batch, k, n], run one gemm per (broadcast) batch, permute [batch, m, n] to the output order.
template <typename T>
void einsum_two(const ops::EinsumSpec& spec, const std::vector<int64_t>& dims, const KernelArgs& a) {
    const std::vector<int>& la = spec.inputs[0];
    const std::vector<int>& lb = spec.inputs[1];
    auto has = [](const std::vector<int>& v, int l) { return std::find(v.begin(), v.end(), l) != v.end(); };
    std::vector<int> batch, ms, ns, ks;
    for (int l : spec.output) {
        if (has(la, l) && has(lb, l))
            batch.push_back(l);
        else if (has(la, l))
            ms.push_back(l);
        else
            ns.push_back(l);
    }
    for (int l : la)
        if (has(lb, l) && !has(spec.output, l)) ks.push_back(l);
    auto extent = [&](const std::vector<int>& ls) {
        int64_t p = 1;
        for (int l : ls) p *= dims[l];
        return p;
    };
    const int64_t m = extent(ms), n = extent(ns), k = extent(ks), nb = extent(batch);
    // Permuted copies: A' = [batch (own extents, maybe 1), ms, ks], B' = [batch, ks, ns].
    auto permuted = [&](const Tensor& t, const std::vector<int>& labels, const std::vector<int>& first,
                        const std::vector<int>& second, Shape* batch_shape) {
        std::vector<int64_t> ls = label_strides(labels, t.shape(), spec.num_labels);
        Shape shape;
        std::vector<int64_t> strides;
        for (int l : batch) {
            int64_t e = 1;
            for (size_t d = 0; d < labels.size(); ++d)
                if (labels[d] == l) e = t.shape()[d];
            batch_shape->push_back(e);
            shape.push_back(e);
            strides.push_back(ls[l]);
        }
        for (const auto* group : {&first, &second})
            for (int l : *group) shape.push_back(dims[l]), strides.push_back(ls[l]);
        std::vector<T> buf(static_cast<size_t>(shape_numel(shape)));
        strided_copy(t.data<T>(), strides, shape, buf.data());
        return buf;
    };
    Shape a_batch, b_batch, batch_shape;
    std::vector<T> ap = permuted(*a.inputs[0], la, ms, ks, &a_batch);
    std::vector<T> bp = permuted(*a.inputs[1], lb, ks, ns, &b_batch);
    for (int l : batch) batch_shape.push_back(dims[l]);
    std::vector<int64_t> sa = ops::broadcast_strides(a_batch, batch_shape);
    std::vector<int64_t> sb = ops::broadcast_strides(b_batch, batch_shape);
    std::vector<T> r(static_cast<size_t>(nb * m * n));
    std::vector<int64_t> idx(batch.size(), 0);
    for (int64_t t = 0; t < nb; ++t) {
        int64_t oa = 0, ob = 0;
        for (size_t d = 0; d < batch.size(); ++d) oa += idx[d] * sa[d], ob += idx[d] * sb[d];
        gemm<T>(false, false, m, n, k, T(1), ap.data() + oa * m * k, k, bp.data() + ob * k * n, n, T(0),
                r.data() + t * m * n, n);
        for (int d = static_cast<int>(batch.size()) - 1; d >= 0 && ++idx[d] == batch_shape[d]; --d) idx[d] = 0;
    }
    // r carries labels [batch, ms, ns]; gather it in the output's label order.
    std::vector<int> r_labels = batch;
    r_labels.insert(r_labels.end(), ms.begin(), ms.end());
    r_labels.insert(r_labels.end(), ns.begin(), ns.end());
    Shape r_shape;
    for (int l : r_labels) r_shape.push_back(dims[l]);
    std::vector<int64_t> rs = label_strides(r_labels, r_shape, spec.num_labels), out_strides;
    for (int l : spec.output) out_strides.push_back(rs[l]);
    strided_copy(r.data(), out_strides, a.outputs[0]->shape(), a.outputs[0]->data<T>());
}

/// True when einsum_two applies: two operands, no label twice in one operand, every label in both operands or in
/// the output, and contracted labels of equal extent on both sides.
bool einsum_two_applies(const ops::EinsumSpec& spec, const Shape& sa, const Shape& sb) {
    if (spec.inputs.size() != 2) return false;
    const std::vector<int>& la = spec.inputs[0];
    const std::vector<int>& lb = spec.inputs[1];
    auto count = [](const std::vector<int>& v, int l) { return std::count(v.begin(), v.end(), l); };
    for (int l = 0; l < spec.num_labels; ++l) {
        auto ca = count(la, l), cb = count(lb, l), co = count(spec.output, l);
        if (ca > 1 || cb > 1) return false;
        if (co == 0 && !(ca && cb)) return false;  // summed in one operand only
        if (co == 0) {
            int64_t ea = sa[std::find(la.begin(), la.end(), l) - la.begin()];
            int64_t eb = sb[std::find(lb.begin(), lb.end(), l) - lb.begin()];
            if (ea != eb) return false;  // a broadcast contracted label
        }
    }
    return true;
}

}  // namespace

std::unique_ptr<Kernel> make_ref_Gemm(const KernelNode& node) {
    check_gemm_dtype(node);
    const bool ta = node.attrs.get_int("transA", 0) != 0, tb = node.attrs.get_int("transB", 0) != 0;
    const double alpha = node.attrs.get_float("alpha", 1.f), beta = node.attrs.get_float("beta", 1.f);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) { dispatch_gemm(dtype, [&]<typename T>() { run_gemm<T>(a, ta, tb, alpha, beta); }); },
        cat("gemm_", dtype_name(dtype), "_ref"));
}

std::unique_ptr<Kernel> make_ref_MatMul(const KernelNode& node) {
    check_gemm_dtype(node);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel([=](const KernelArgs& a) { dispatch_gemm(dtype, [&]<typename T>() { run_matmul<T>(a); }); },
                       cat("matmul_", dtype_name(dtype), "_ref"));
}

std::unique_ptr<Kernel> make_ref_Einsum(const KernelNode& node) {
    check_gemm_dtype(node);
    const std::string where = node.where();
    const std::string equation = node.attrs.get_string("equation", "");
    std::vector<int> ranks;
    for (const ops::TensorInfo& t : node.inputs) ranks.push_back(t.rank());
    const ops::EinsumSpec spec = ops::parse_einsum(equation, ranks, where);
    const DataType dtype = node.inputs[0].dtype;
    return make_kernel(
        [=](const KernelArgs& a) {
            std::vector<std::vector<int64_t>> shapes;
            for (const Tensor* t : a.inputs) shapes.push_back(t->shape());
            std::vector<int64_t> dims = ops::einsum_label_dims(spec, shapes, equation, where);
            bool two =
                einsum_two_applies(spec, a.inputs[0]->shape(), a.inputs.size() > 1 ? a.inputs[1]->shape() : Shape{});
            dispatch_gemm(dtype, [&]<typename T>() {
                if (two)
                    einsum_two<T>(spec, dims, a);
                else
                    einsum_generic<T>(spec, dims, a);
            });
        },
        cat("einsum_", dtype_name(dtype), "_ref"));
}

}  // namespace kiln::backends::reference

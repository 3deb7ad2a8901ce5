// Reference kernels for reductions and search: Reduce{Mean,Sum,Max,Min,Prod}, ArgMax, TopK, CumSum.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "src/backends/reference/reference_backend.h"
#include "src/ops/shape_utils.h"
#include "src/ops/tensor_ops.h"

namespace kiln::backends::reference {

namespace {

enum class ReduceKind { kSum, kMean, kMax, kMin, kProd };

// NaN counts as larger than every number (numpy / ONNX reference semantics): ReduceMax/ReduceMin propagate it,
// ArgMax picks it and TopK sorts it first when largest=1.
template <typename T>
bool is_nan(T v) {
    if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
    return false;
}
template <typename T>
bool greater(T u, T v) {
    if (is_nan(u) || is_nan(v)) return is_nan(u) && !is_nan(v);
    return u > v;
}
template <typename T>
bool same(T u, T v) {
    return u == v || (is_nan(u) && is_nan(v));
}

/// Accumulates in double for floating types and int64 for integers, then stores back as T.
template <typename T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;

template <typename T>
Acc<T> reduce_init(ReduceKind kind) {
    using A = Acc<T>;
    switch (kind) {
        case ReduceKind::kProd: return A(1);
        case ReduceKind::kMax:
            return std::is_floating_point_v<T> ? A(-std::numeric_limits<double>::infinity())
                                               : A(std::numeric_limits<T>::lowest());
        case ReduceKind::kMin:
            return std::is_floating_point_v<T> ? A(std::numeric_limits<double>::infinity())
                                               : A(std::numeric_limits<T>::max());
        default: return A(0);
    }
}

// y[j] = reduce over every i of x that maps to j, where the map drops (zeroes) the reduced coordinates.
template <typename T>
void reduce(const Tensor& x, Tensor& y, const std::vector<bool>& mask, ReduceKind kind) {
    int r = x.rank();
    Shape kept = x.shape();
    for (int k = 0; k < r; ++k)
        if (mask[k]) kept[k] = 1;
    std::vector<int64_t> ystr = ops::strides_of(kept);
    for (int k = 0; k < r; ++k)
        if (mask[k]) ystr[k] = 0;
    std::vector<Acc<T>> acc(y.numel(), reduce_init<T>(kind));
    const T* in = x.data<T>();
    int64_t inner = r ? x.dim(r - 1) : 1, inner_stride = r ? ystr[r - 1] : 0;
    int64_t outer = inner ? x.numel() / inner : 0;
    std::vector<int64_t> pos(std::max(r - 1, 0), 0);
    int64_t off = 0;  // y offset of the current outer position
    for (int64_t o = 0; o < outer; ++o, in += inner) {
        Acc<T>* a = acc.data() + off;
        for (int64_t i = 0; i < inner; ++i) {
            Acc<T> v = static_cast<Acc<T>>(in[i]);
            Acc<T>& dst = a[i * inner_stride];
            switch (kind) {
                case ReduceKind::kProd: dst *= v; break;
                case ReduceKind::kMax: dst = v > dst || is_nan(v) ? v : dst; break;
                case ReduceKind::kMin: dst = v < dst || is_nan(v) ? v : dst; break;
                default: dst += v; break;
            }
        }
        for (int k = r - 2; k >= 0; --k) {  // odometer over the outer axes
            off += ystr[k];
            if (++pos[k] < x.dim(k)) break;
            off -= x.dim(k) * ystr[k];
            pos[k] = 0;
        }
    }
    int64_t count = y.numel() ? x.numel() / y.numel() : 0;
    T* out = y.data<T>();
    for (int64_t j = 0; j < y.numel(); ++j) {
        Acc<T> v = acc[j];
        if (kind == ReduceKind::kMean) v = count ? v / static_cast<Acc<T>>(count) : v / Acc<T>(1);
        out[j] = static_cast<T>(v);
    }
}

std::unique_ptr<Kernel> make_reduce(const KernelNode& node, ReduceKind kind, const char* name) {
    bool noop = node.attrs.get_int("noop_with_empty_axes", 0) != 0;
    std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            std::vector<int64_t> axes;
            bool has_axes = a.inputs.size() > 1 && a.inputs[1] != nullptr;
            if (has_axes) axes = a.inputs[1]->to_i64_vector();
            std::vector<bool> mask = ops::reduce_mask(has_axes ? &axes : nullptr, x.rank(), noop, where);
            dispatch_dtype(x.dtype(), where, [&]<typename T>() { reduce<T>(x, *a.outputs[0], mask, kind); });
        },
        name);
}

/// Splits x around `axis` into outer x n x inner.
void split_dims(const Tensor& x, int axis, int64_t* outer, int64_t* n, int64_t* inner) {
    *outer = 1;
    *inner = 1;
    for (int k = 0; k < axis; ++k) *outer *= x.dim(k);
    for (int k = axis + 1; k < x.rank(); ++k) *inner *= x.dim(k);
    *n = x.dim(axis);
}

int node_axis(const KernelNode& node, int64_t def) {
    int64_t axis = node.attrs.get_int("axis", def);
    return static_cast<int>(axis < 0 ? axis + node.inputs[0].rank() : axis);
}

}  // namespace

std::unique_ptr<Kernel> make_ref_ReduceSum(const KernelNode& n) {
    return make_reduce(n, ReduceKind::kSum, "reduce_sum_ref");
}
std::unique_ptr<Kernel> make_ref_ReduceMean(const KernelNode& n) {
    return make_reduce(n, ReduceKind::kMean, "reduce_mean_ref");
}
std::unique_ptr<Kernel> make_ref_ReduceMax(const KernelNode& n) {
    return make_reduce(n, ReduceKind::kMax, "reduce_max_ref");
}
std::unique_ptr<Kernel> make_ref_ReduceMin(const KernelNode& n) {
    return make_reduce(n, ReduceKind::kMin, "reduce_min_ref");
}
std::unique_ptr<Kernel> make_ref_ReduceProd(const KernelNode& n) {
    return make_reduce(n, ReduceKind::kProd, "reduce_prod_ref");
}

// ------------------------------------------------------------------------------------------ ArgMax

// y[o, i] = the first (or with select_last_index the last) j maximising x[o, j, i]; NaN is the maximum.
std::unique_ptr<Kernel> make_ref_ArgMax(const KernelNode& node) {
    int axis = node_axis(node, 0);
    bool last = node.attrs.get_int("select_last_index", 0) != 0;
    std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            int64_t outer, n, inner;
            split_dims(x, axis, &outer, &n, &inner);
            int64_t* out = a.outputs[0]->data<int64_t>();
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                const T* in = x.data<T>();
                for (int64_t o = 0; o < outer; ++o) {
                    for (int64_t i = 0; i < inner; ++i) {
                        const T* col = in + o * n * inner + i;
                        int64_t best = 0;
                        for (int64_t j = 1; j < n; ++j) {
                            T v = col[j * inner], b = col[best * inner];
                            if (greater(v, b) || (last && same(v, b))) best = j;
                        }
                        out[o * inner + i] = best;
                    }
                }
            });
        },
        "argmax_ref");
}

// ------------------------------------------------------------------------------------------ TopK

// The k largest (or smallest) values along `axis`, sorted; equal values keep the lower index first.
std::unique_ptr<Kernel> make_ref_TopK(const KernelNode& node) {
    int axis = node_axis(node, -1);
    bool largest = node.attrs.get_int("largest", 1) != 0;
    std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& values = *a.outputs[0];
            int64_t outer, n, inner;
            split_dims(x, axis, &outer, &n, &inner);
            int64_t k = values.dim(axis);
            int64_t* indices = a.outputs[1]->data<int64_t>();
            std::vector<int64_t> order(n);
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                const T* in = x.data<T>();
                T* out = values.data<T>();
                for (int64_t o = 0; o < outer; ++o) {
                    for (int64_t i = 0; i < inner; ++i) {
                        const T* col = in + o * n * inner + i;
                        std::iota(order.begin(), order.end(), int64_t{0});
                        auto before = [&](int64_t p, int64_t q) {
                            T vp = col[p * inner], vq = col[q * inner];
                            if (greater(vp, vq)) return largest;
                            if (greater(vq, vp)) return !largest;
                            return p < q;
                        };
                        std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
                        for (int64_t j = 0; j < k; ++j) {
                            int64_t dst = (o * k + j) * inner + i;
                            out[dst] = col[order[j] * inner];
                            indices[dst] = order[j];
                        }
                    }
                }
            });
        },
        "topk_ref");
}

// ------------------------------------------------------------------------------------------ CumSum

// y[j] = sum of x[i] along the axis for i <= j (i < j when exclusive; i >= j / i > j when reverse).
std::unique_ptr<Kernel> make_ref_CumSum(const KernelNode& node) {
    bool exclusive = node.attrs.get_int("exclusive", 0) != 0;
    bool reverse = node.attrs.get_int("reverse", 0) != 0;
    std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            KILN_CHECK(a.inputs[1]->numel() == 1, kInvalidModel, where, ": axis must be a scalar, got shape ",
                       shape_str(a.inputs[1]->shape()));
            int64_t axis = a.inputs[1]->get_i64(0);
            int r = x.rank();
            KILN_CHECK(axis >= -r && axis < r, kInvalidModel, where, ": axis ", axis, " is out of range for a rank-", r,
                       " tensor");
            int64_t outer, n, inner;
            split_dims(x, static_cast<int>(axis < 0 ? axis + r : axis), &outer, &n, &inner);
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                const T* in = x.data<T>();
                T* out = a.outputs[0]->data<T>();
                for (int64_t o = 0; o < outer; ++o) {
                    for (int64_t i = 0; i < inner; ++i) {
                        int64_t base = o * n * inner + i;
                        T sum = T(0);
                        for (int64_t s = 0; s < n; ++s) {
                            int64_t p = base + (reverse ? n - 1 - s : s) * inner;
                            if (exclusive) {
                                out[p] = sum;
                                sum += in[p];
                            } else {
                                sum += in[p];
                                out[p] = sum;
                            }
                        }
                    }
                }
            });
        },
        "cumsum_ref");
}

}  // namespace kiln::backends::reference

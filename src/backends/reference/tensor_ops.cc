// Reference kernels for data movement and shape arithmetic: Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
// Concat, Split, Expand, Tile, Shape, Size, Constant, ConstantOfShape, Range. (Slice, Gather, GatherElements and
// Pad are in tensor_ops_index.cc.) Byte-moving kernels are dtype-agnostic: they copy elements of dtype_size bytes.
#include "src/ops/tensor_ops.h"

#include <algorithm>
#include <cstring>

#include "src/backends/reference/copy_util.h"
#include "src/backends/reference/reference_backend.h"
#include "src/ops/shape_utils.h"

namespace kiln::backends::reference {

using ops::strides_of;

namespace {

/// Reshape-like ops: the output holds the input's bytes under another shape.
std::unique_ptr<Kernel> make_copy_kernel(const char* name) {
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            KILN_ASSERT(x.bytes() == y.bytes());
            if (x.bytes() && x.raw() != y.raw()) std::memcpy(y.raw(), x.raw(), x.bytes());
        },
        name);
}

int axis_attr(const KernelNode& node, const char* name, int64_t def, int rank) {
    int64_t axis = node.attrs.get_int(name, def);
    return static_cast<int>(axis < 0 ? axis + rank : axis);
}

}  // namespace

std::unique_ptr<Kernel> make_ref_Reshape(const KernelNode&) { return make_copy_kernel("reshape_ref"); }
std::unique_ptr<Kernel> make_ref_Flatten(const KernelNode&) { return make_copy_kernel("flatten_ref"); }
std::unique_ptr<Kernel> make_ref_Squeeze(const KernelNode&) { return make_copy_kernel("squeeze_ref"); }
std::unique_ptr<Kernel> make_ref_Unsqueeze(const KernelNode&) { return make_copy_kernel("unsqueeze_ref"); }

// ------------------------------------------------------------------------------------------ Transpose

std::unique_ptr<Kernel> make_ref_Transpose(const KernelNode& node) {
    std::vector<int64_t> perm = node.attrs.get_ints("perm");
    if (!node.attrs.has("perm"))
        for (int i = node.inputs[0].rank() - 1; i >= 0; --i) perm.push_back(i);
    return make_kernel(
        [perm](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            // y[i_0, ..., i_r] = x[...] with x's axis perm[k] indexed by i_k.
            std::vector<int64_t> xs = strides_of(x.shape()), src(perm.size());
            for (size_t k = 0; k < perm.size(); ++k) src[k] = xs[perm[k]];
            strided_copy(y.raw(), strides_of(y.shape()), x.raw(), src, y.shape(), dtype_size(x.dtype()));
        },
        "transpose_ref");
}

// ------------------------------------------------------------------------------------------ Concat / Split

std::unique_ptr<Kernel> make_ref_Concat(const KernelNode& node) {
    int axis = axis_attr(node, "axis", 0, node.inputs[0].rank());
    return make_kernel(
        [axis](const KernelArgs& a) {
            Tensor& y = *a.outputs[0];
            size_t es = dtype_size(y.dtype());
            std::vector<int64_t> ys = strides_of(y.shape());
            int64_t offset = 0;  // position along `axis` where the next input starts
            for (const Tensor* x : a.inputs) {
                strided_copy(elem_ptr(y.raw(), offset * ys[axis], es), ys, x->raw(), strides_of(x->shape()), x->shape(),
                             es);
                offset += x->dim(axis);
            }
        },
        "concat_ref");
}

std::unique_ptr<Kernel> make_ref_Split(const KernelNode& node) {
    int axis = axis_attr(node, "axis", 0, node.inputs[0].rank());
    return make_kernel(
        [axis](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            size_t es = dtype_size(x.dtype());
            std::vector<int64_t> xs = strides_of(x.shape());
            // Chunk sizes from the split input, else ceil(dim / n) with a smaller last chunk.
            int64_t n = static_cast<int64_t>(a.outputs.size()), dim = x.dim(axis);
            std::vector<int64_t> sizes;
            if (a.inputs.size() > 1 && a.inputs[1]) sizes = a.inputs[1]->to_i64_vector();
            for (int64_t i = static_cast<int64_t>(sizes.size()), chunk = (dim + n - 1) / n; i < n; ++i)
                sizes.push_back(std::clamp<int64_t>(dim - i * chunk, 0, chunk));
            int64_t offset = 0;
            for (int64_t i = 0; i < n; ++i) {
                if (Tensor* y = a.outputs[i]) {
                    KILN_ASSERT(y->dim(axis) == sizes[i]);
                    strided_copy(y->raw(), strides_of(y->shape()), elem_ptr(x.raw(), offset * xs[axis], es), xs,
                                 y->shape(), es);
                }
                offset += sizes[i];
            }
        },
        "split_ref");
}

// ------------------------------------------------------------------------------------------ Expand / Tile

std::unique_ptr<Kernel> make_ref_Expand(const KernelNode&) {
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            strided_copy(y.raw(), strides_of(y.shape()), x.raw(), ops::broadcast_strides(x.shape(), y.shape()),
                         y.shape(), dtype_size(x.dtype()));
        },
        "expand_ref");
}

std::unique_ptr<Kernel> make_ref_Tile(const KernelNode&) {
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            if (y.numel() == 0) return;
            // View y as [r_0, d_0, r_1, d_1, ...] (r = repeats, d = x's dims): the repeat axes read x with stride 0.
            std::vector<int64_t> xs = strides_of(x.shape()), ys = strides_of(y.shape());
            Shape shape;
            std::vector<int64_t> dst, src;
            for (int k = 0; k < x.rank(); ++k) {
                int64_t d = x.dim(k);
                shape.insert(shape.end(), {y.dim(k) / d, d});
                dst.insert(dst.end(), {d * ys[k], ys[k]});
                src.insert(src.end(), {0, xs[k]});
            }
            strided_copy(y.raw(), dst, x.raw(), src, shape, dtype_size(x.dtype()));
        },
        "tile_ref");
}

// ------------------------------------------------------------------------------------------ Shape / Size

std::unique_ptr<Kernel> make_ref_Shape(const KernelNode& node) {
    int64_t r = node.inputs[0].rank();
    int64_t start = node.attrs.get_int("start", 0);
    if (start < 0) start += r;
    start = std::clamp<int64_t>(start, 0, r);
    return make_kernel(
        [start](const KernelArgs& a) {
            Tensor& y = *a.outputs[0];
            for (int64_t i = 0; i < y.numel(); ++i) y.data<int64_t>()[i] = a.inputs[0]->dim(start + i);
        },
        "shape_ref");
}

std::unique_ptr<Kernel> make_ref_Size(const KernelNode&) {
    return make_kernel([](const KernelArgs& a) { *a.outputs[0]->data<int64_t>() = a.inputs[0]->numel(); }, "size_ref");
}

// ------------------------------------------------------------------------------------------ constants

std::unique_ptr<Kernel> make_ref_Constant(const KernelNode& node) {
    Tensor value = ops::constant_value(node.attrs, node.where());
    return make_kernel(
        [value](const KernelArgs& a) {
            Tensor& y = *a.outputs[0];
            KILN_ASSERT(y.bytes() == value.bytes());
            if (y.bytes()) std::memcpy(y.raw(), value.raw(), value.bytes());
        },
        "constant_ref");
}

std::unique_ptr<Kernel> make_ref_ConstantOfShape(const KernelNode& node) {
    Tensor value(DataType::kFloat32, {1});
    if (const Tensor* v = node.attrs.get_tensor("value")) value = v->clone();
    return make_kernel(
        [value](const KernelArgs& a) {
            Tensor& y = *a.outputs[0];
            fill_elements(y.raw(), y.numel(), value.raw(), dtype_size(value.dtype()));
        },
        "constant_of_shape_ref");
}

// out[i] = start + i * delta, accumulated in the input type as onnxruntime does (val += delta).
std::unique_ptr<Kernel> make_ref_Range(const KernelNode& node) {
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            Tensor& y = *a.outputs[0];
            dispatch_dtype(y.dtype(), where, [&]<typename T>() {
                T val = static_cast<T>(a.inputs[0]->get_f64(0));
                T delta = static_cast<T>(a.inputs[2]->get_f64(0));
                if constexpr (std::is_integral_v<T>) {
                    val = static_cast<T>(a.inputs[0]->get_i64(0));
                    delta = static_cast<T>(a.inputs[2]->get_i64(0));
                }
                T* out = y.data<T>();
                for (int64_t i = 0; i < y.numel(); ++i, val += delta) out[i] = val;
            });
        },
        "range_ref");
}

}  // namespace kiln::backends::reference

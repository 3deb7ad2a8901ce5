// Reference kernels for the elementwise ops that are not plain math: Clip, Cast, Identity and Dropout (inference).
// Arithmetic, comparisons and Where live in elementwise_binary.cc, unary math and activations in
// elementwise_unary.cc.
#include <cstring>
#include <limits>
#include <type_traits>

#include "src/backends/reference/elementwise_common.h"
#include "src/backends/reference/reference_backend.h"

namespace kiln::backends::reference {
namespace {

using namespace elementwise;  // NOLINT(google-build-using-namespace): helpers of this kernel family

// ---------------------------------------------------------------- Cast

// Storage types that need a conversion of their own: bool (stored as one byte, read as != 0) and the 16-bit floats.
struct Bool {
    uint8_t v;
};
struct Half {
    uint16_t bits;
};
struct BFloat16 {
    uint16_t bits;
};

/// Calls f.template operator()<T>() with T the storage type of `dtype`, bool and 16-bit floats included.
template <typename F>
void dispatch_storage(DataType dtype, F&& f) {
    switch (dtype) {
        case DataType::kFloat32: return f.template operator()<float>();
        case DataType::kFloat16: return f.template operator()<Half>();
        case DataType::kBFloat16: return f.template operator()<BFloat16>();
        case DataType::kFloat64: return f.template operator()<double>();
        case DataType::kInt8: return f.template operator()<int8_t>();
        case DataType::kUInt8: return f.template operator()<uint8_t>();
        case DataType::kInt32: return f.template operator()<int32_t>();
        case DataType::kInt64: return f.template operator()<int64_t>();
        case DataType::kBool: return f.template operator()<Bool>();
    }
    KILN_FAIL(kInternal, "unknown dtype");
}

/// One element of Cast. Float -> integer truncates toward zero (see float_to_int for out-of-range values),
/// anything -> bool is x != 0 (NaN gives true), integer -> integer wraps, 16-bit floats go through float32.
template <typename D, typename S>
D convert(S s) {
    if constexpr (std::is_same_v<D, S>) {
        return s;
    } else if constexpr (std::is_same_v<S, Half>) {
        return convert<D>(half_to_float(s.bits));
    } else if constexpr (std::is_same_v<S, BFloat16>) {
        return convert<D>(bf16_to_float(s.bits));
    } else if constexpr (std::is_same_v<S, Bool>) {
        return convert<D>(static_cast<uint8_t>(s.v != 0));
    } else if constexpr (std::is_same_v<D, Half>) {
        return Half{float_to_half(static_cast<float>(s))};
    } else if constexpr (std::is_same_v<D, BFloat16>) {
        return BFloat16{float_to_bf16(static_cast<float>(s))};
    } else if constexpr (std::is_same_v<D, Bool>) {
        return Bool{static_cast<uint8_t>(s != 0)};
    } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
        return float_to_int<D>(s);
    } else {
        return static_cast<D>(s);
    }
}

}  // namespace

std::unique_ptr<Kernel> make_ref_Cast(const KernelNode& node) {
    const DataType from = node.inputs[0].dtype, to = node.outputs[0].dtype;
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            dispatch_storage(x.dtype(), [&]<typename S>() {
                dispatch_storage(y.dtype(), [&]<typename D>() {
                    const S* px = x.data<S>();
                    D* py = y.data<D>();
                    for (int64_t i = 0, n = x.numel(); i < n; ++i) py[i] = convert<D>(px[i]);
                });
            });
        },
        cat("cast_", dtype_tag(from), "_to_", dtype_tag(to), "_ref"));
}

// ---------------------------------------------------------------- Clip

// y = min(max(x, lo), hi) with lo/hi the optional scalar inputs 1 and 2 (absent: no bound). When lo > hi every
// element becomes hi, as in onnxruntime; NaN stays NaN.
std::unique_ptr<Kernel> make_ref_Clip(const KernelNode& node) {
    require_dtype(node, 0, kNumeric);
    for (size_t i = 1; i < node.inputs.size(); ++i) {
        if (!node.inputs[i].present) continue;
        KILN_CHECK(node.inputs[i].dtype == node.inputs[0].dtype, kInvalidModel, node.where(), ": input ", i,
                   i == 1 ? " (min)" : " (max)", " has dtype ", dtype_name(node.inputs[i].dtype), " but input 0 has ",
                   dtype_name(node.inputs[0].dtype));
    }
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
                for (size_t i = 1; i < a.inputs.size() && i < 3; ++i) {
                    const Tensor* b = a.inputs[i];
                    if (!b) continue;
                    KILN_CHECK(b->numel() == 1, kInvalidArgument, where, ": ", i == 1 ? "min" : "max",
                               " (input ", i, ") must be a scalar, got shape ", shape_str(b->shape()));
                    (i == 1 ? lo : hi) = b->data<T>()[0];
                }
                const T* px = x.data<T>();
                T* py = a.outputs[0]->data<T>();
                for (int64_t i = 0, n = x.numel(); i < n; ++i) {
                    T v = px[i] < lo ? lo : px[i];
                    py[i] = v > hi ? hi : v;
                }
            });
        },
        kernel_name("clip", node.inputs[0].dtype));
}

// ---------------------------------------------------------------- Identity, Dropout

std::unique_ptr<Kernel> make_ref_Identity(const KernelNode& node) {
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            if (y.raw() != x.raw() && x.bytes()) std::memcpy(y.raw(), x.raw(), x.bytes());
        },
        "identity_ref");
}

// Inference mode: y = x and, when requested, mask = all true. A training_mode input that turns out true at run time
// is refused (inference also refuses it when the value is known earlier).
std::unique_ptr<Kernel> make_ref_Dropout(const KernelNode& node) {
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            if (a.inputs.size() > 2 && a.inputs[2] && a.inputs[2]->numel() > 0)
                KILN_CHECK(a.inputs[2]->get_i64(0) == 0, kUnsupported, where,
                           ": training_mode (input 2) is true; kiln runs Dropout in inference mode only");
            const Tensor& x = *a.inputs[0];
            Tensor& y = *a.outputs[0];
            if (y.raw() != x.raw() && x.bytes()) std::memcpy(y.raw(), x.raw(), x.bytes());
            if (a.outputs.size() > 1 && a.outputs[1]) {
                Tensor& mask = *a.outputs[1];
                if (mask.bytes()) std::memset(mask.raw(), 1, mask.bytes());
            }
        },
        "dropout_inference_ref");
}

}  // namespace kiln::backends::reference

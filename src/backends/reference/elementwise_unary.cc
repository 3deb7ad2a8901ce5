// Reference kernels for unary elementwise math and activations: y[i] = f(x[i]).
#include <algorithm>
#include <cmath>
#include <numbers>
#include <type_traits>

#include "src/backends/reference/elementwise_common.h"
#include "src/backends/reference/reference_backend.h"

namespace kiln::backends::reference {
namespace {

using namespace elementwise;  // NOLINT(google-build-using-namespace): helpers of this kernel family

template <typename T, typename Op>
void map(const Tensor& x, Tensor& y, Op op) {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) py[i] = op(px[i]);
}

/// y = op(x) on float32/float64; Op is a generic callable.
template <typename Op>
std::unique_ptr<Kernel> float_kernel(const KernelNode& node, const char* name, Op op) {
    require_dtype(node, 0, kFloats);
    std::string where = node.where();
    return make_kernel(
        [where, op](const KernelArgs& a) {
            dispatch_float(a.inputs[0]->dtype(), where,
                           [&]<typename T>() { map<T>(*a.inputs[0], *a.outputs[0], [&](T v) { return T(op(v)); }); });
        },
        kernel_name(name, node.inputs[0].dtype));
}

/// y = op(x) on any dtype of `allowed` (integer-capable ops).
template <typename Op>
std::unique_ptr<Kernel> any_kernel(const KernelNode& node, const char* name, unsigned allowed, Op op) {
    require_dtype(node, 0, allowed);
    std::string where = node.where();
    return make_kernel(
        [where, op](const KernelArgs& a) {
            dispatch_dtype(a.inputs[0]->dtype(), where, [&]<typename T>() {
                map<T>(*a.inputs[0], *a.outputs[0], [&](T v) { return static_cast<T>(op(v)); });
            });
        },
        kernel_name(name, node.inputs[0].dtype));
}

// Logistic function without overflow for large |x|: 1 / (1 + e^-x) = e^x / (1 + e^x).
template <typename T>
T sigmoid(T x) {
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
}

}  // namespace

// ---------------------------------------------------------------- math

std::unique_ptr<Kernel> make_ref_Sqrt(const KernelNode& node) {
    return float_kernel(node, "sqrt", [](auto x) { return std::sqrt(x); });
}

std::unique_ptr<Kernel> make_ref_Exp(const KernelNode& node) {
    return float_kernel(node, "exp", [](auto x) { return std::exp(x); });
}

std::unique_ptr<Kernel> make_ref_Log(const KernelNode& node) {
    return float_kernel(node, "log", [](auto x) { return std::log(x); });
}

std::unique_ptr<Kernel> make_ref_Reciprocal(const KernelNode& node) {
    return float_kernel(node, "reciprocal", [](auto x) { return decltype(x)(1) / x; });
}

std::unique_ptr<Kernel> make_ref_Erf(const KernelNode& node) {
    return float_kernel(node, "erf", [](auto x) { return std::erf(x); });
}

std::unique_ptr<Kernel> make_ref_Tanh(const KernelNode& node) {
    return float_kernel(node, "tanh", [](auto x) { return std::tanh(x); });
}

std::unique_ptr<Kernel> make_ref_Neg(const KernelNode& node) {
    return any_kernel(node, "neg", kNumeric, [](auto x) { return wrap_neg(x); });
}

// |INT_MIN| wraps to INT_MIN, as in onnxruntime.
std::unique_ptr<Kernel> make_ref_Abs(const KernelNode& node) {
    return any_kernel(node, "abs", kNumeric, [](auto x) {
        if constexpr (std::is_unsigned_v<decltype(x)>) {
            return x;
        } else {
            return x < 0 ? wrap_neg(x) : x;
        }
    });
}

std::unique_ptr<Kernel> make_ref_Not(const KernelNode& node) {
    return any_kernel(node, "not", kBoolean, [](auto x) { return x ? 0 : 1; });
}

// ---------------------------------------------------------------- activations

std::unique_ptr<Kernel> make_ref_Relu(const KernelNode& node) {
    return any_kernel(node, "relu", kFloats | kSigned, [](auto x) { return x < 0 ? decltype(x)(0) : x; });
}

// y = x >= 0 ? x : alpha * x
std::unique_ptr<Kernel> make_ref_LeakyRelu(const KernelNode& node) {
    const double alpha = node.attrs.get_float("alpha", 0.01f);
    return float_kernel(node, "leaky_relu", [alpha](auto x) {
        using T = decltype(x);
        return x >= 0 ? x : T(alpha) * x;
    });
}

// y = x >= 0 ? x : alpha * (e^x - 1)
std::unique_ptr<Kernel> make_ref_Elu(const KernelNode& node) {
    const double alpha = node.attrs.get_float("alpha", 1.0f);
    return float_kernel(node, "elu", [alpha](auto x) {
        using T = decltype(x);
        return x >= 0 ? x : T(alpha) * std::expm1(x);
    });
}

// y = gamma * (x > 0 ? x : alpha * (e^x - 1))
std::unique_ptr<Kernel> make_ref_Selu(const KernelNode& node) {
    const double alpha = node.attrs.get_float("alpha", 1.67326319217681884765625f);
    const double gamma = node.attrs.get_float("gamma", 1.05070102214813232421875f);
    return float_kernel(node, "selu", [alpha, gamma](auto x) {
        using T = decltype(x);
        return T(gamma) * (x > 0 ? x : T(alpha) * std::expm1(x));
    });
}

std::unique_ptr<Kernel> make_ref_Sigmoid(const KernelNode& node) {
    return float_kernel(node, "sigmoid", [](auto x) { return sigmoid(x); });
}

// y = max(0, min(1, alpha * x + beta))
std::unique_ptr<Kernel> make_ref_HardSigmoid(const KernelNode& node) {
    const double alpha = node.attrs.get_float("alpha", 0.2f);
    const double beta = node.attrs.get_float("beta", 0.5f);
    return float_kernel(node, "hard_sigmoid", [alpha, beta](auto x) {
        using T = decltype(x);
        return std::max(T(0), std::min(T(1), T(alpha) * x + T(beta)));
    });
}

// y = x * max(0, min(1, x / 6 + 1/2))
std::unique_ptr<Kernel> make_ref_HardSwish(const KernelNode& node) {
    return float_kernel(node, "hard_swish", [](auto x) {
        using T = decltype(x);
        return x * std::max(T(0), std::min(T(1), x / T(6) + T(0.5)));
    });
}

// y = ln(1 + e^x), computed as max(x, 0) + ln(1 + e^-|x|) so it neither overflows nor loses small values.
std::unique_ptr<Kernel> make_ref_Softplus(const KernelNode& node) {
    return float_kernel(node, "softplus", [](auto x) {
        using T = decltype(x);
        return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
    });
}

// approximate="none": y = x/2 * (1 + erf(x / sqrt(2)));
// approximate="tanh": y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
std::unique_ptr<Kernel> make_ref_Gelu(const KernelNode& node) {
    const std::string approximate = node.attrs.get_string("approximate", "none");
    if (approximate == "tanh") {
        return float_kernel(node, "gelu_tanh", [](auto x) {
            using T = decltype(x);
            const T k = T(std::numbers::sqrt2 / std::sqrt(std::numbers::pi));  // sqrt(2/pi)
            return T(0.5) * x * (T(1) + std::tanh(k * (x + T(0.044715) * x * x * x)));
        });
    }
    KILN_CHECK(approximate == "none", kInvalidModel, node.where(), ": attribute 'approximate' = '", approximate,
               "' is invalid (expected 'none' or 'tanh')");
    return float_kernel(node, "gelu", [](auto x) {
        using T = decltype(x);
        return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    });
}

}  // namespace kiln::backends::reference

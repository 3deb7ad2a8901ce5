// Reference kernels for broadcasting binary/ternary elementwise ops: Add Sub Mul Div Pow Mod, variadic Min/Max,
// comparisons, And/Or, PRelu and Where.
#include <cmath>
#include <type_traits>

#include "src/backends/reference/broadcast.h"
#include "src/backends/reference/elementwise_common.h"
#include "src/backends/reference/reference_backend.h"

namespace kiln::backends::reference {
namespace {

using namespace elementwise;  // NOLINT(google-build-using-namespace): helpers of this kernel family

/// Same-dtype binary op out = op(a, b), T any type of `allowed`; Op is a generic callable on (T, T).
template <typename TOut = void, typename Op>
std::unique_ptr<Kernel> binary_kernel(const KernelNode& node, const char* name, unsigned allowed, Op op) {
    require_dtype(node, 0, allowed);
    require_dtype(node, 1, allowed);
    std::string where = node.where();
    return make_kernel(
        [where, op](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const Tensor& y = *a.inputs[1];
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                using O = std::conditional_t<std::is_void_v<TOut>, T, TOut>;
                broadcast_binary<T, T, O>(x, y, *a.outputs[0], [&](T u, T v) { return static_cast<O>(op(u, v)); });
            });
        },
        kernel_name(name, node.inputs[0].dtype));
}

// a / b; integer division truncates toward zero like C (and onnxruntime). Integer division by zero is defined as
// 0 here instead of trapping, and INT_MIN / -1 wraps to INT_MIN.
template <typename T>
T divide(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>)
            if (b == -1) return wrap_neg(a);
        return static_cast<T>(a / b);
    } else {
        return a / b;
    }
}

// x^y for integer x and y, exact with wrap-around. For y < 0 the result 1/x^|y| truncates to 0 unless |x| == 1;
// 0^negative (infinite) is defined as 0, like integer division by zero.
template <typename TX, typename TY>
TX int_pow(TX x, TY y) {
    if constexpr (std::is_signed_v<TY>) {
        if (y < 0) {
            if (x == 1) return 1;
            if constexpr (std::is_signed_v<TX>)
                if (x == -1) return (y & 1) ? -1 : 1;
            return 0;
        }
    }
    using U = Wrap<TX>;
    U result = 1, base = static_cast<U>(x);
    for (uint64_t e = static_cast<uint64_t>(y); e; e >>= 1) {
        if (e & 1) result = static_cast<U>(result * base);
        base = static_cast<U>(base * base);
    }
    return static_cast<TX>(result);
}

// Pow(X, Y) with X and Y of possibly different dtypes; the result has X's dtype. An integer X with a float Y is
// computed in double and truncated (2^0.5 -> 1, like onnxruntime); NaN gives 0 and out-of-range values saturate.
template <typename TX, typename TY>
TX power(TX x, TY y) {
    if constexpr (std::is_floating_point_v<TX>) {
        using C = std::conditional_t<std::is_same_v<TX, double> || std::is_same_v<TY, double>, double, float>;
        return static_cast<TX>(std::pow(static_cast<C>(x), static_cast<C>(y)));
    } else if constexpr (std::is_floating_point_v<TY>) {
        double r = std::pow(static_cast<double>(x), static_cast<double>(y));
        if (std::isnan(r)) return 0;
        if (r <= static_cast<double>(std::numeric_limits<TX>::lowest())) return std::numeric_limits<TX>::lowest();
        if (r >= static_cast<double>(std::numeric_limits<TX>::max())) return std::numeric_limits<TX>::max();
        return static_cast<TX>(r);
    } else {
        return int_pow(x, y);
    }
}

// Mod(a, b). fmod=1: C's fmod / %, the result has the sign of a. fmod=0: the result has the sign of b (Python's
// %), which ONNX defines for integers; kiln also accepts it for floats (onnxruntime does too). An integer x mod 0
// is defined as 0 here, like integer division by zero.
template <typename T>
T modulo(T a, T b, bool c_style) {
    if constexpr (std::is_integral_v<T>) {
        if (b == 0) return 0;
        if constexpr (std::is_signed_v<T>) {
            if (b == -1) return 0;  // also avoids INT_MIN % -1
            T r = static_cast<T>(a % b);
            if (!c_style && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
            return r;
        } else {
            return static_cast<T>(a % b);
        }
    } else {
        using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
        C r = std::fmod(static_cast<C>(a), static_cast<C>(b));
        if (!c_style && r != 0 && ((r < 0) != (static_cast<C>(b) < 0))) r += static_cast<C>(b);
        return static_cast<T>(r);
    }
}

// Min/Max propagate NaN (like numpy and onnxruntime).
template <typename T>
T min_of(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        return (a < b || std::isnan(a)) ? a : b;
    } else {
        return a < b ? a : b;
    }
}
template <typename T>
T max_of(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
        return (a > b || std::isnan(a)) ? a : b;
    } else {
        return a > b ? a : b;
    }
}

/// Variadic Min/Max: out = in0, then out = op(out, in_k) for k = 1..n-1, all broadcast to the output shape.
template <bool kIsMax>
std::unique_ptr<Kernel> min_max_kernel(const KernelNode& node, const char* name) {
    for (size_t i = 0; i < node.inputs.size(); ++i) require_dtype(node, i, kNumeric);
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            Tensor& out = *a.outputs[0];
            dispatch_dtype(out.dtype(), where, [&]<typename T>() {
                auto op = [](T u, T v) { return kIsMax ? max_of(u, v) : min_of(u, v); };
                if (a.inputs.size() == 1) {
                    broadcast_unary<T, T>(*a.inputs[0], out, [](T u) { return u; });
                    return;
                }
                broadcast_binary<T, T, T>(*a.inputs[0], *a.inputs[1], out, op);
                for (size_t k = 2; k < a.inputs.size(); ++k) broadcast_binary<T, T, T>(out, *a.inputs[k], out, op);
            });
        },
        kernel_name(name, node.inputs[0].dtype));
}

}  // namespace

// ---------------------------------------------------------------- arithmetic

std::unique_ptr<Kernel> make_ref_Add(const KernelNode& node) {
    return binary_kernel(node, "add", kNumeric, [](auto a, auto b) { return wrap_add(a, b); });
}

std::unique_ptr<Kernel> make_ref_Sub(const KernelNode& node) {
    return binary_kernel(node, "sub", kNumeric, [](auto a, auto b) { return wrap_sub(a, b); });
}

std::unique_ptr<Kernel> make_ref_Mul(const KernelNode& node) {
    return binary_kernel(node, "mul", kNumeric, [](auto a, auto b) { return wrap_mul(a, b); });
}

std::unique_ptr<Kernel> make_ref_Div(const KernelNode& node) {
    return binary_kernel(node, "div", kNumeric, [](auto a, auto b) { return divide(a, b); });
}

std::unique_ptr<Kernel> make_ref_Pow(const KernelNode& node) {
    require_dtype(node, 0, kNumeric);
    require_dtype(node, 1, kNumeric);
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const Tensor& y = *a.inputs[1];
            dispatch_dtype(x.dtype(), where, [&]<typename TX>() {
                dispatch_dtype(y.dtype(), where, [&]<typename TY>() {
                    broadcast_binary<TX, TY, TX>(x, y, *a.outputs[0], [](TX u, TY v) { return power(u, v); });
                });
            });
        },
        kernel_name("pow", node.inputs[0].dtype));
}

std::unique_ptr<Kernel> make_ref_Mod(const KernelNode& node) {
    bool c_style = node.attrs.get_int("fmod", 0) != 0;
    return binary_kernel(node, "mod", kNumeric, [c_style](auto a, auto b) { return modulo(a, b, c_style); });
}

std::unique_ptr<Kernel> make_ref_Min(const KernelNode& node) { return min_max_kernel<false>(node, "min"); }

std::unique_ptr<Kernel> make_ref_Max(const KernelNode& node) { return min_max_kernel<true>(node, "max"); }

// PRelu: y = x < 0 ? slope * x : x, slope broadcast unidirectionally to x.
std::unique_ptr<Kernel> make_ref_PRelu(const KernelNode& node) {
    require_dtype(node, 0, kFloats | kSigned);
    require_dtype(node, 1, kFloats | kSigned);
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const Tensor& slope = *a.inputs[1];
            Tensor& out = *a.outputs[0];
            KILN_CHECK(out.shape() == x.shape(), kInvalidModel, where, ": slope shape ", shape_str(slope.shape()),
                       " cannot be broadcast to X shape ", shape_str(x.shape()));
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                broadcast_binary<T, T, T>(x, slope, out, [](T v, T s) { return v < 0 ? wrap_mul(v, s) : v; });
            });
        },
        kernel_name("prelu", node.inputs[0].dtype));
}

// ---------------------------------------------------------------- comparisons and logic (bool output)

std::unique_ptr<Kernel> make_ref_Equal(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "equal", kAll, [](auto a, auto b) { return a == b; });
}

std::unique_ptr<Kernel> make_ref_Less(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "less", kAll, [](auto a, auto b) { return a < b; });
}

std::unique_ptr<Kernel> make_ref_Greater(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "greater", kAll, [](auto a, auto b) { return a > b; });
}

std::unique_ptr<Kernel> make_ref_LessOrEqual(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "less_or_equal", kAll, [](auto a, auto b) { return a <= b; });
}

std::unique_ptr<Kernel> make_ref_GreaterOrEqual(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "greater_or_equal", kAll, [](auto a, auto b) { return a >= b; });
}

std::unique_ptr<Kernel> make_ref_And(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "and", kBoolean, [](auto a, auto b) { return a && b; });
}

std::unique_ptr<Kernel> make_ref_Or(const KernelNode& node) {
    return binary_kernel<uint8_t>(node, "or", kBoolean, [](auto a, auto b) { return a || b; });
}

// ---------------------------------------------------------------- Where

// out = cond ? x : y, all three broadcast together.
std::unique_ptr<Kernel> make_ref_Where(const KernelNode& node) {
    require_dtype(node, 0, kBoolean);
    require_dtype(node, 1, kAll);
    std::string where = node.where();
    return make_kernel(
        [where](const KernelArgs& a) {
            const Tensor& cond = *a.inputs[0];
            const Tensor& x = *a.inputs[1];
            const Tensor& y = *a.inputs[2];
            dispatch_dtype(x.dtype(), where, [&]<typename T>() {
                broadcast_ternary<uint8_t, T, T, T>(cond, x, y, *a.outputs[0],
                                                    [](uint8_t c, T u, T v) { return c ? u : v; });
            });
        },
        kernel_name("where", node.inputs[1].dtype));
}

}  // namespace kiln::backends::reference

#pragma once
// Helpers shared by the elementwise reference kernels (elementwise.cc, elementwise_unary.cc,
// elementwise_binary.cc): dtype checks at kernel creation, kernel names, float-only dispatch and integer
// arithmetic without undefined behaviour.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "src/backends/reference/reference_backend.h"

namespace kiln::backends::reference::elementwise {

/// Dtype classes a kernel accepts, as a bit mask.
enum DtypeClass : unsigned {
    kFloats = 1,    ///< float32, float64
    kSigned = 2,    ///< int8, int32, int64
    kUnsigned = 4,  ///< uint8
    kBoolean = 8,   ///< bool
    kIntegers = kSigned | kUnsigned,
    kNumeric = kFloats | kIntegers,
    kAll = kNumeric | kBoolean,
};

inline unsigned dtype_class(DataType t) {
    switch (t) {
        case DataType::kFloat32:
        case DataType::kFloat64: return kFloats;
        case DataType::kInt8:
        case DataType::kInt32:
        case DataType::kInt64: return kSigned;
        case DataType::kUInt8: return kUnsigned;
        case DataType::kBool: return kBoolean;
        default: return 0;  // float16 / bfloat16: only Cast, Identity and Dropout handle them
    }
}

/// Throws kUnsupported naming the node when input `i` has a dtype outside `allowed`.
inline void require_dtype(const KernelNode& node, size_t i, unsigned allowed) {
    DataType t = node.inputs.at(i).dtype;
    KILN_CHECK(dtype_class(t) & allowed, kUnsupported, node.where(), ": input ", i, " has dtype ", dtype_name(t),
               ", which the reference ", node.op_type, " kernel does not support");
}

inline const char* dtype_tag(DataType t) {
    switch (t) {
        case DataType::kFloat32: return "f32";
        case DataType::kFloat16: return "f16";
        case DataType::kBFloat16: return "bf16";
        case DataType::kFloat64: return "f64";
        case DataType::kInt8: return "i8";
        case DataType::kUInt8: return "u8";
        case DataType::kInt32: return "i32";
        case DataType::kInt64: return "i64";
        case DataType::kBool: return "bool";
    }
    return "?";
}

/// "add_f32_ref" from ("add", float32).
inline std::string kernel_name(const char* base, DataType t) { return cat(base, "_", dtype_tag(t), "_ref"); }

/// Like dispatch_dtype, restricted to float32 / float64 (math that has no integer form).
template <typename F>
void dispatch_float(DataType dtype, const std::string& where, F&& f) {
    if (dtype == DataType::kFloat32) return f.template operator()<float>();
    if (dtype == DataType::kFloat64) return f.template operator()<double>();
    KILN_FAIL(kUnsupported, where, ": dtype ", dtype_name(dtype), " is not supported (float32 or float64 only)");
}

// Integer + - * and negation wrap around in two's complement (as onnxruntime does in practice) instead of being
// undefined on overflow: the arithmetic is done on the unsigned type of the same width.
template <typename T>
using Wrap = typename std::conditional_t<std::is_integral_v<T>, std::make_unsigned<T>, std::type_identity<T>>::type;

template <typename T>
inline T wrap_add(T a, T b) { return static_cast<T>(static_cast<Wrap<T>>(a) + static_cast<Wrap<T>>(b)); }
template <typename T>
inline T wrap_sub(T a, T b) { return static_cast<T>(static_cast<Wrap<T>>(a) - static_cast<Wrap<T>>(b)); }
template <typename T>
inline T wrap_mul(T a, T b) { return static_cast<T>(static_cast<Wrap<T>>(a) * static_cast<Wrap<T>>(b)); }
template <typename T>
inline T wrap_neg(T a) {
    if constexpr (std::is_integral_v<T>) {
        return static_cast<T>(Wrap<T>(0) - static_cast<Wrap<T>>(a));
    } else {
        return -a;
    }
}

/// Float -> integer conversion truncating toward zero, as onnxruntime on x86-64: NaN and values outside the
/// range of int32 (int64 for a 64-bit target) give that type's minimum, and narrower types take the low bits of
/// the int32 result (so 300.7 -> int8 44, -1.7 -> uint8 255). Defined for every input, unlike a plain cast.
template <typename D, typename S>
inline D float_to_int(S s) {
    static_assert(std::is_integral_v<D> && std::is_floating_point_v<S>);
    const double v = static_cast<double>(s);
    if constexpr (sizeof(D) == 8) {
        if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
            return static_cast<D>(std::numeric_limits<int64_t>::min());
        return static_cast<D>(static_cast<int64_t>(v));
    } else {
        if (!(v >= -2147483648.0 && v < 2147483648.0)) return static_cast<D>(std::numeric_limits<int32_t>::min());
        return static_cast<D>(static_cast<int32_t>(v));
    }
}

}  // namespace kiln::backends::reference::elementwise

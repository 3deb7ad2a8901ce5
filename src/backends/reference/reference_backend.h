#pragma once
// Declarations of every reference kernel factory named by op_list.def (make_ref_<Op>), plus helpers the
// reference kernel files share.
#include "src/backends/backend.h"
#include "src/common/check.h"

namespace kiln::backends::reference {

#define KILN_OP(name, min_in, max_in, min_out, max_out, infer) std::unique_ptr<Kernel> make_ref_##name(const KernelNode& node);
#include "src/ops/op_list.def"
#undef KILN_OP

/// Calls f.template operator()<T>() with T the C++ type of `dtype` (float, double, int8..int64, uint8 for bool).
template <typename F>
decltype(auto) dispatch_dtype(DataType dtype, const std::string& where, F&& f) {
    switch (dtype) {
        case DataType::kFloat32: return f.template operator()<float>();
        case DataType::kFloat64: return f.template operator()<double>();
        case DataType::kInt64: return f.template operator()<int64_t>();
        case DataType::kInt32: return f.template operator()<int32_t>();
        case DataType::kInt8: return f.template operator()<int8_t>();
        case DataType::kUInt8: return f.template operator()<uint8_t>();
        case DataType::kBool: return f.template operator()<uint8_t>();
        default: break;
    }
    KILN_FAIL(kUnsupported, where, ": dtype ", dtype_name(dtype), " is not supported by the reference backend");
}

}  // namespace kiln::backends::reference

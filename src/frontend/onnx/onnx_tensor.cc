#include "src/frontend/onnx/onnx_tensor.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/common/check.h"

namespace kiln::onnx_import {

DataType convert_dtype(int t, const std::string& what) {
    switch (t) {
        case onnx::TensorProto::FLOAT: return DataType::kFloat32;
        case onnx::TensorProto::UINT8: return DataType::kUInt8;
        case onnx::TensorProto::INT8: return DataType::kInt8;
        case onnx::TensorProto::INT32: return DataType::kInt32;
        case onnx::TensorProto::INT64: return DataType::kInt64;
        case onnx::TensorProto::BOOL: return DataType::kBool;
        case onnx::TensorProto::FLOAT16: return DataType::kFloat16;
        case onnx::TensorProto::DOUBLE: return DataType::kFloat64;
        case onnx::TensorProto::BFLOAT16: return DataType::kBFloat16;
        default: break;
    }
    std::string name = onnx::TensorProto::DataType_IsValid(t)
                           ? onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t))
                           : std::to_string(t);
    KILN_FAIL(kUnsupported, what, ": data type ", name, " is not supported (kiln supports float32, float16, ",
              "bfloat16, float64, int8, uint8, int32, int64, bool)");
}

namespace {

void read_external(const onnx::TensorProto& t, const std::string& model_dir, const std::string& what, Tensor& out) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
        if (kv.key() == "location") location = kv.value();
        if (kv.key() == "offset") offset = std::stoll(kv.value());
        if (kv.key() == "length") length = std::stoll(kv.value());
    }
    KILN_CHECK(!location.empty(), kInvalidModel, what, ": external data without a location");
    std::filesystem::path rel(location);
    KILN_CHECK(!rel.is_absolute() && location.find("..") == std::string::npos, kInvalidModel, what,
               ": external data location '", location, "' must be a relative path inside the model's directory");
    std::filesystem::path p = std::filesystem::path(model_dir) / rel;
    std::ifstream f(p, std::ios::binary);
    KILN_CHECK(f.good(), kIoError, what, ": cannot open external data file '", p.string(),
               "'; keep it next to the model file");
    f.seekg(0, std::ios::end);
    int64_t file_size = f.tellg();
    int64_t want = static_cast<int64_t>(out.bytes());
    if (length < 0) length = want;
    KILN_CHECK(length == want, kInvalidModel, what, ": external data length ", length, " does not match the ",
               want, " bytes of its ", shape_str(out.shape()), " ", dtype_name(out.dtype()), " shape");
    KILN_CHECK(offset >= 0 && offset + length <= file_size, kInvalidModel, what, ": external data [", offset, ", +",
               length, ") lies outside '", p.string(), "' (", file_size, " bytes); the file is truncated");
    f.seekg(offset);
    f.read(static_cast<char*>(out.raw()), length);
    KILN_CHECK(f.good(), kIoError, what, ": reading '", p.string(), "' failed");
}

template <typename Src, typename Dst>
void copy_field(const google::protobuf::RepeatedField<Src>& field, Tensor& out, const std::string& what) {
    KILN_CHECK(field.size() == out.numel(), kInvalidModel, what, ": has ", field.size(), " values but its shape ",
               shape_str(out.shape()), " needs ", out.numel());
    Dst* d = out.data<Dst>();
    for (int i = 0; i < field.size(); ++i) d[i] = static_cast<Dst>(field.Get(i));
}

}  // namespace

Tensor convert_tensor(const onnx::TensorProto& t, const std::string& model_dir, const std::string& what) {
    DataType dt = convert_dtype(t.data_type(), what);
    Shape shape(t.dims().begin(), t.dims().end());
    for (int64_t d : shape) KILN_CHECK(d >= 0, kInvalidModel, what, ": negative dimension in ", shape_str(shape));
    KILN_CHECK(!t.has_segment(), kUnsupported, what, ": segmented tensors are not supported");
    Tensor out(dt, shape);
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
        read_external(t, model_dir, what, out);
    } else if (t.has_raw_data()) {
        KILN_CHECK(t.raw_data().size() == out.bytes(), kInvalidModel, what, ": raw data has ", t.raw_data().size(),
                   " bytes, but its ", shape_str(shape), " ", dtype_name(dt), " shape needs ", out.bytes());
        if (out.bytes()) std::memcpy(out.raw(), t.raw_data().data(), out.bytes());
    } else if (out.numel() > 0) {
        switch (dt) {
            case DataType::kFloat32: copy_field<float, float>(t.float_data(), out, what); break;
            case DataType::kFloat64: copy_field<double, double>(t.double_data(), out, what); break;
            case DataType::kInt64: copy_field<int64_t, int64_t>(t.int64_data(), out, what); break;
            case DataType::kInt32: copy_field<int32_t, int32_t>(t.int32_data(), out, what); break;
            case DataType::kInt8: copy_field<int32_t, int8_t>(t.int32_data(), out, what); break;
            case DataType::kUInt8: copy_field<int32_t, uint8_t>(t.int32_data(), out, what); break;
            case DataType::kBool: copy_field<int32_t, uint8_t>(t.int32_data(), out, what); break;
            case DataType::kFloat16:
            case DataType::kBFloat16: copy_field<int32_t, uint16_t>(t.int32_data(), out, what); break;
        }
    }
    return out;
}

Attribute convert_attribute(const onnx::AttributeProto& a, const std::string& model_dir, const std::string& where) {
    using A = onnx::AttributeProto;
    std::string what = cat(where, " attribute '", a.name(), "'");
    switch (a.type()) {
        case A::INT: return static_cast<int64_t>(a.i());
        case A::FLOAT: return a.f();
        case A::STRING: return a.s();
        case A::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
        case A::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
        case A::STRINGS: return std::vector<std::string>(a.strings().begin(), a.strings().end());
        case A::TENSOR: return convert_tensor(a.t(), model_dir, what);
        default: break;
    }
    KILN_FAIL(kUnsupported, what, ": attribute type ", A::AttributeType_Name(a.type()),
              " is not supported (subgraphs and sparse tensors are not supported yet)");
}

}  // namespace kiln::onnx_import

#pragma once
// TensorProto / AttributeProto / type conversion. Only included by frontend .cc files (it sees protobuf).
#include <string>

#include "kiln/attribute.h"
#include "kiln/tensor.h"
#include "onnx/onnx.pb.h"

namespace kiln::onnx_import {

/// Maps an ONNX TensorProto data type to kiln's; throws kUnsupported naming `what` for types kiln lacks.
DataType convert_dtype(int onnx_type, const std::string& what);
/// Reads a tensor's data (raw_data, typed fields or external data relative to `model_dir`).
Tensor convert_tensor(const onnx::TensorProto& t, const std::string& model_dir, const std::string& what);
Attribute convert_attribute(const onnx::AttributeProto& a, const std::string& model_dir, const std::string& where);

}  // namespace kiln::onnx_import

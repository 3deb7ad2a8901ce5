#pragma once
// .npy read/write (format version 1.0/2.0, little-endian, C order) and ONNX TensorProto .pb input files.
#include <string>

#include "kiln/tensor.h"

namespace kiln::cli {

Tensor read_npy(const std::string& path);
/// Writes atomically (temporary file + rename).
void write_npy(const std::string& path, const Tensor& t);
/// .npy by content (magic) or .pb (ONNX TensorProto).
Tensor read_tensor_file(const std::string& path);

}  // namespace kiln::cli

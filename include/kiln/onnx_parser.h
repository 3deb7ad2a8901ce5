#pragma once
/// \file onnx_parser.h
/// Imports an ONNX model (file or bytes) into a NetworkDefinition.
///
/// Example usage:
/// \code
///   kiln::StderrLogger logger;
///   kiln::NetworkDefinition net;
///   kiln::OnnxParser(net, logger).parse_file("resnet50.onnx");
/// \endcode
/// Errors are kiln::Error: kIoError (missing file), kInvalidModel (malformed/truncated protobuf, bad graph),
/// kUnsupported (lists every node whose op kiln does not support, with its op type and domain).
#include <cstddef>
#include <cstdint>
#include <string>

#include "kiln/logger.h"
#include "kiln/network.h"
#include "kiln/tensor.h"

namespace kiln {

class OnnxParser {
public:
    OnnxParser(NetworkDefinition& network, Logger& logger) : network_(network), logger_(logger) {}
    void parse_file(const std::string& path);
    /// `model_dir` resolves external-data tensors; `source` names the model in errors.
    void parse_bytes(const void* data, size_t size, const std::string& source, const std::string& model_dir = ".");

private:
    NetworkDefinition& network_;
    Logger& logger_;
};

/// Reads a serialised ONNX TensorProto (the .pb files of ONNX test data sets); `source` names it in errors.
Tensor read_tensor_proto(const void* data, size_t size, const std::string& source);

}  // namespace kiln

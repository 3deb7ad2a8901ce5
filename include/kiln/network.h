#pragma once
/// \file network.h
/// NetworkDefinition: a model built in code (or filled by OnnxParser), handed to the Builder.
///
/// Example usage:
/// \code
///   kiln::NetworkDefinition net;
///   auto x = net.add_input("x", kiln::DataType::kFloat32, {kiln::Dim("batch"), 4});
///   auto w = net.add_constant("w", weights);              // kiln::Tensor [4, 8]
///   auto y = net.add_layer("MatMul", {x, w})[0];
///   auto z = net.add_layer("Relu", {y})[0];
///   net.mark_output(z);
/// \endcode
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/tensor.h"

namespace kiln {

namespace ir {
class Graph;
}

class NetworkDefinition {
public:
    NetworkDefinition();
    ~NetworkDefinition();
    NetworkDefinition(const NetworkDefinition&) = delete;
    NetworkDefinition& operator=(const NetworkDefinition&) = delete;

    /// Declares a graph input; returns its name.
    std::string add_input(const std::string& name, DataType dtype, const SymShape& dims);
    /// Adds a constant (weights); returns its name.
    std::string add_constant(const std::string& name, const Tensor& value);
    /// Adds a layer of ONNX op type `op_type`; "" in `inputs` skips an optional input. Returns the output names
    /// (generated from the layer name). Shapes are inferred at build time.
    std::vector<std::string> add_layer(const std::string& op_type, const std::vector<std::string>& inputs,
                                       const AttributeMap& attrs = {}, int num_outputs = 1,
                                       const std::string& name = "");
    void mark_output(const std::string& name);

    size_t num_layers() const;
    std::vector<std::string> input_names() const;
    std::vector<std::string> output_names() const;
    /// Textual listing of the network (one layer per line).
    std::string to_text() const;

    /// Internal: the IR graph behind this definition.
    ir::Graph& graph() { return *graph_; }
    const ir::Graph& graph() const { return *graph_; }

private:
    std::unique_ptr<ir::Graph> graph_;
};

}  // namespace kiln

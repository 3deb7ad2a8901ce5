#pragma once
// What a per-op importer sees: the node's inputs/outputs as IR values, its attributes already converted, the
// opset version in force, and helpers to emit nodes and constants. Importers normalise old opset forms to the
// newest one (attributes that became inputs are turned into constant inputs).
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "src/common/check.h"
#include "src/ir/graph.h"

namespace kiln::onnx_import {

struct ImportContext {
    ir::Graph& graph;
    int64_t opset;
    const std::string& node_name;
    const std::string& op_type;
    std::vector<ir::Value*> inputs;  // nullptr for omitted optional inputs
    std::vector<ir::Value*> outputs;
    AttributeMap attrs;

    std::string where() const { return cat("node '", node_name, "' (", op_type, ", opset ", opset, ")"); }
    ir::Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
    /// Adds an int64 1-D constant named after the node.
    ir::Value* const_i64(const std::vector<int64_t>& values, const std::string& hint);
    ir::Value* const_scalar_f32(float v, const std::string& hint);
    /// A fresh intermediate value.
    ir::Value* temp(const std::string& hint);
    /// Emits a node; by default with this node's name, inputs, outputs and attributes.
    ir::Node* emit(const std::string& op_type, std::vector<ir::Value*> ins, std::vector<ir::Value*> outs,
                   AttributeMap attrs, const std::string& name = "");
    ir::Node* emit_as_is() { return emit(op_type, inputs, outputs, attrs, node_name); }
    /// Moves attribute `attr` (ints) to input position `pos` as a constant, if present.
    void attr_to_input(const std::string& attr, size_t pos);
};

using ImporterFn = void (*)(ImportContext&);

/// The importer for an op type, or nullptr when the op is imported as is (same name, inputs and attributes).
ImporterFn find_importer(const std::string& op_type);

}  // namespace kiln::onnx_import

#include "src/frontend/onnx/import_context.h"

#include <cstring>

namespace kiln::onnx_import {

ir::Value* ImportContext::const_i64(const std::vector<int64_t>& values, const std::string& hint) {
    Tensor t(DataType::kInt64, {static_cast<int64_t>(values.size())});
    if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(int64_t));
    return graph.add_constant(graph.unique_name(node_name + "_" + hint), std::move(t));
}

ir::Value* ImportContext::const_scalar_f32(float v, const std::string& hint) {
    Tensor t(DataType::kFloat32, {});
    *t.data<float>() = v;
    return graph.add_constant(graph.unique_name(node_name + "_" + hint), std::move(t));
}

ir::Value* ImportContext::temp(const std::string& hint) { return graph.add_value(graph.unique_name(node_name + "_" + hint)); }

ir::Node* ImportContext::emit(const std::string& type, std::vector<ir::Value*> ins, std::vector<ir::Value*> outs,
                              AttributeMap a, const std::string& name) {
    ir::Node* n = graph.add_node(type, name.empty() ? graph.unique_name(node_name) : name, std::move(ins),
                                 std::move(outs), std::move(a));
    n->fused_from = {node_name};
    return n;
}

void ImportContext::attr_to_input(const std::string& attr, size_t pos) {
    if (!attrs.has(attr)) return;
    std::vector<int64_t> v = attrs.get_ints(attr);
    attrs.erase(attr);
    if (inputs.size() <= pos) inputs.resize(pos + 1, nullptr);
    inputs[pos] = const_i64(v, attr);
}

}  // namespace kiln::onnx_import

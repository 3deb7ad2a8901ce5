// NetworkDefinition: the public face of an IR graph under construction.
#include "kiln/network.h"

#include "src/common/check.h"
#include "src/ir/graph.h"

namespace kiln {

NetworkDefinition::NetworkDefinition() : graph_(std::make_unique<ir::Graph>()) {}
NetworkDefinition::~NetworkDefinition() = default;

std::string NetworkDefinition::add_input(const std::string& name, DataType dtype, const SymShape& dims) {
    return graph_->add_input(name, dtype, dims)->name;
}

std::string NetworkDefinition::add_constant(const std::string& name, const Tensor& value) {
    return graph_->add_constant(name, value)->name;
}

std::vector<std::string> NetworkDefinition::add_layer(const std::string& op_type,
                                                      const std::vector<std::string>& inputs,
                                                      const AttributeMap& attrs, int num_outputs,
                                                      const std::string& name) {
    std::string layer = name.empty() ? graph_->unique_name(op_type) : name;
    std::vector<ir::Value*> ins;
    for (const std::string& in : inputs) {
        if (in.empty()) {
            ins.push_back(nullptr);
            continue;
        }
        ir::Value* v = graph_->find_value(in);
        KILN_CHECK(v, kInvalidArgument, "layer '", layer, "' (", op_type, "): input '", in, "' is not defined");
        ins.push_back(v);
    }
    std::vector<ir::Value*> outs;
    std::vector<std::string> names;
    for (int i = 0; i < num_outputs; ++i) {
        std::string n = num_outputs == 1 ? layer + "_out" : cat(layer, "_out", i);
        if (graph_->find_value(n)) n = graph_->unique_name(n);
        outs.push_back(graph_->add_value(n));
        names.push_back(n);
    }
    graph_->add_node(op_type, layer, std::move(ins), std::move(outs), attrs);
    return names;
}

void NetworkDefinition::mark_output(const std::string& name) {
    ir::Value* v = graph_->find_value(name);
    KILN_CHECK(v, kInvalidArgument, "cannot mark '", name, "' as output: no such tensor");
    graph_->mark_output(v);
}

size_t NetworkDefinition::num_layers() const { return graph_->num_nodes(); }

std::vector<std::string> NetworkDefinition::input_names() const {
    std::vector<std::string> out;
    for (auto* v : graph_->inputs()) out.push_back(v->name);
    return out;
}

std::vector<std::string> NetworkDefinition::output_names() const {
    std::vector<std::string> out;
    for (auto* v : graph_->outputs()) out.push_back(v->name);
    return out;
}

std::string NetworkDefinition::to_text() const { return graph_->to_text(); }

}  // namespace kiln

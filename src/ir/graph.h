#pragma once
// The graph IR: typed values with symbolic dims, nodes with attributes, a verifier and a text printer.
// Passes mutate a Graph; the builder lowers it to a plan::PlanModel. The runtime never sees this type.
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/tensor.h"

namespace kiln::ir {

struct Node;

struct Value {
    std::string name;
    DataType dtype = DataType::kFloat32;
    SymShape dims;
    bool shape_known = false;        ///< rank known (dims may still hold symbols/unknowns)
    Node* producer = nullptr;        ///< nullptr for graph inputs and constants
    std::optional<Tensor> constant;  ///< initializers and folded constants
    bool is_input = false;
    bool is_output = false;

    bool is_constant() const { return constant.has_value(); }
};

struct Node {
    std::string name;
    std::string op_type;
    std::string domain;
    AttributeMap attrs;
    std::vector<Value*> inputs;  ///< nullptr for an omitted optional input
    std::vector<Value*> outputs;
    std::vector<std::string> fused_from;

    Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
};

class Graph {
public:
    Graph() = default;
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;

    /// Deep copy (constants share their buffers, which are immutable).
    std::unique_ptr<Graph> clone() const;

    /// Creates a value; names must be unique (throws kInvalidModel naming the duplicate).
    Value* add_value(const std::string& name, DataType dtype = DataType::kFloat32, SymShape dims = {},
                     bool shape_known = false);
    Value* add_input(const std::string& name, DataType dtype, SymShape dims);
    Value* add_constant(const std::string& name, Tensor t);
    void mark_output(Value* v);
    Node* add_node(const std::string& op_type, const std::string& name, std::vector<Value*> inputs,
                   std::vector<Value*> outputs, AttributeMap attrs = {}, const std::string& domain = "");
    /// Removes a node (its outputs stay as values without producer).
    void remove_node(Node* n);
    /// Every use of `from` (node inputs and graph outputs) now reads `to`.
    void replace_all_uses(Value* from, Value* to);
    /// Drops values that nothing produces, consumes or exposes.
    void remove_unused_values();

    Value* find_value(const std::string& name) const;
    std::string unique_name(const std::string& base);
    std::vector<Node*> nodes() const;
    std::vector<Node*> consumers(const Value* v) const;
    const std::vector<Value*>& inputs() const { return inputs_; }
    const std::vector<Value*>& outputs() const { return outputs_; }
    std::vector<Value*>& mutable_outputs() { return outputs_; }
    size_t num_nodes() const { return nodes_.size(); }

    /// Orders nodes so every producer comes before its consumers; throws kInvalidModel on a cycle or on a node
    /// reading a value that nothing produces.
    void topological_sort();
    /// Runs every node's shape/dtype inference in order (constant values feed shape arithmetic).
    /// `lenient`: a node whose output rank depends on values not known yet (a Reshape whose shape is computed by
    /// ops that constant folding has not evaluated yet) gets outputs of unknown rank instead of an error, and so do
    /// its consumers; the builder infers leniently until the optimizer has run, then strictly.
    void infer_shapes(bool lenient = false);
    /// Inference for one node (its inputs' infos must be current). Returns false when `lenient` left its outputs
    /// of unknown rank.
    bool infer_node(Node* n, bool lenient = false);
    /// Structural checks: unique names, defined inputs, single producer, known op types (kUnsupported lists every
    /// unknown node at once), outputs reachable.
    void verify() const;
    /// Human-readable listing, one node per line: `%y: float32[batch,64] = Conv(%x, %w) {strides=[1,1]}`.
    std::string to_text() const;

    std::map<std::string, std::string> metadata;
    std::string producer_name;
    std::string name;

private:
    std::vector<std::unique_ptr<Value>> values_;
    std::map<std::string, Value*> by_name_;
    std::list<std::unique_ptr<Node>> nodes_;
    std::vector<Value*> inputs_, outputs_;
    int name_counter_ = 0;
};

}  // namespace kiln::ir

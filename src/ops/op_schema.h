#pragma once
// Op schemas: arity and shape/dtype inference for every op kiln knows, generated from op_list.def.
// Inference works on symbolic dims at build time and on concrete dims (with every input value known) at run time,
// so the same function serves the optimizer and the runtime.
#include <string>
#include <string_view>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "src/common/strings.h"

namespace kiln::ops {

/// What is known about one tensor: dtype, (symbolic) dims and, when known, its value.
struct TensorInfo {
    DataType dtype = DataType::kFloat32;
    SymShape dims;
    const Tensor* value = nullptr;  ///< constant at build time; always set for host tensors at run time
    bool present = true;            ///< false for an omitted optional input
    int rank() const { return static_cast<int>(dims.size()); }
};

class InferContext {
public:
    InferContext(const std::string& node_name, const std::string& op_type, const AttributeMap& attrs,
                 const std::vector<TensorInfo>& inputs, size_t num_outputs);

    size_t num_inputs() const { return inputs_.size(); }
    bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i].present; }
    /// Throws (naming the node) when input i is absent.
    const TensorInfo& input(size_t i) const;
    /// The input's value as int64s (shape tensors, axes, pads ...), or false when not known yet.
    bool input_ints(size_t i, std::vector<int64_t>* out) const;
    const AttributeMap& attrs() const { return attrs_; }
    size_t num_outputs() const { return outputs_.size(); }
    void set_output(size_t i, DataType dtype, SymShape dims);
    std::vector<TensorInfo>& outputs() { return outputs_; }

    const std::string& node_name() const { return node_name_; }
    const std::string& op_type() const { return op_type_; }
    /// "node 'name' (Op)" for messages.
    std::string where() const;
    /// Throws Error(code) prefixed with the node's name and op.
    template <typename... Args>
    [[noreturn]] void fail(ErrorCode code, const Args&... args) const {
        throw Error(code, cat(where(), ": ", args...));
    }
    template <typename... Args>
    void check(bool cond, const Args&... args) const {
        if (!cond) fail(ErrorCode::kInvalidModel, args...);
    }

    /// Normalises a possibly negative axis against `rank`, failing with a clear message when out of range.
    int normalize_axis(int64_t axis, int rank) const;

private:
    const std::string& node_name_;
    const std::string& op_type_;
    const AttributeMap& attrs_;
    const std::vector<TensorInfo>& inputs_;
    std::vector<TensorInfo> outputs_;
};

using InferFn = void (*)(InferContext&);

struct OpSchema {
    const char* name;
    int min_inputs, max_inputs;  // max -1: variadic
    int min_outputs, max_outputs;
    InferFn infer;
};

/// nullptr for ops kiln does not know.
const OpSchema* find_schema(std::string_view op_type);
const std::vector<OpSchema>& all_schemas();

/// Checks arity, runs the op's inference and returns the output infos. Errors name the node.
std::vector<TensorInfo> infer_node(const std::string& node_name, const std::string& op_type, const AttributeMap& attrs,
                                   const std::vector<TensorInfo>& inputs, size_t num_outputs);

// Declarations of every inference function named in op_list.def.
#define KILN_OP(name, min_in, max_in, min_out, max_out, infer) void infer(InferContext& ctx);
#include "src/ops/op_list.def"
#undef KILN_OP

}  // namespace kiln::ops

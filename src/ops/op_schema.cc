// Schema table generated from op_list.def, and the shared InferContext.
#include "src/ops/op_schema.h"

#include <algorithm>

#include "src/common/check.h"

namespace kiln::ops {

InferContext::InferContext(const std::string& node_name, const std::string& op_type, const AttributeMap& attrs,
                           const std::vector<TensorInfo>& inputs, size_t num_outputs)
    : node_name_(node_name), op_type_(op_type), attrs_(attrs), inputs_(inputs), outputs_(num_outputs) {}

const TensorInfo& InferContext::input(size_t i) const {
    if (!has_input(i)) fail(ErrorCode::kInvalidModel, "required input ", i, " is missing");
    return inputs_[i];
}

bool InferContext::input_ints(size_t i, std::vector<int64_t>* out) const {
    if (!has_input(i) || inputs_[i].value == nullptr) return false;
    *out = inputs_[i].value->to_i64_vector();
    return true;
}

void InferContext::set_output(size_t i, DataType dtype, SymShape dims) {
    if (i >= outputs_.size()) return;  // optional output not requested
    outputs_[i].dtype = dtype;
    outputs_[i].dims = std::move(dims);
}

std::string InferContext::where() const { return cat("node '", node_name_, "' (", op_type_, ")"); }

int InferContext::normalize_axis(int64_t axis, int rank) const {
    if (axis < -rank || axis >= std::max(rank, 1))
        fail(ErrorCode::kInvalidModel, "axis ", axis, " is out of range for a rank-", rank, " tensor");
    return static_cast<int>(axis < 0 ? axis + rank : axis);
}

const std::vector<OpSchema>& all_schemas() {
    static const std::vector<OpSchema> kSchemas = {
#define KILN_OP(name, min_in, max_in, min_out, max_out, infer) {#name, min_in, max_in, min_out, max_out, &infer},
#include "src/ops/op_list.def"
#undef KILN_OP
    };
    return kSchemas;
}

const OpSchema* find_schema(std::string_view op_type) {
    for (const OpSchema& s : all_schemas())
        if (op_type == s.name) return &s;
    return nullptr;
}

std::vector<TensorInfo> infer_node(const std::string& node_name, const std::string& op_type, const AttributeMap& attrs,
                                   const std::vector<TensorInfo>& inputs, size_t num_outputs) {
    const OpSchema* s = find_schema(op_type);
    KILN_CHECK(s, kUnsupported, "node '", node_name, "': op type '", op_type, "' is not supported by kiln");
    int n_in = static_cast<int>(inputs.size());
    KILN_CHECK(n_in >= s->min_inputs && (s->max_inputs < 0 || n_in <= s->max_inputs), kInvalidModel, "node '",
               node_name, "' (", op_type, "): has ", n_in, " inputs, expected ", s->min_inputs,
               s->max_inputs < 0 ? " or more" : cat(" to ", s->max_inputs));
    int n_out = static_cast<int>(num_outputs);
    KILN_CHECK(n_out >= s->min_outputs && (s->max_outputs < 0 || n_out <= s->max_outputs), kInvalidModel, "node '",
               node_name, "' (", op_type, "): has ", n_out, " outputs, expected ", s->min_outputs,
               s->max_outputs < 0 ? " or more" : cat(" to ", s->max_outputs));
    InferContext ctx(node_name, op_type, attrs, inputs, num_outputs);
    try {
        s->infer(ctx);
    } catch (const Error& e) {
        // errors raised below the op (e.g. an attribute of the wrong kind) get the node's name
        if (std::string(e.what()).find(node_name) != std::string::npos) throw;
        throw Error(e.code(), cat(ctx.where(), ": ", e.what()));
    }
    return std::move(ctx.outputs());
}

}  // namespace kiln::ops

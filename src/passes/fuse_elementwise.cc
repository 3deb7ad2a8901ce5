// Chains of elementwise ops on float32 / bool values -> one FusedElementwise node whose `program` attribute computes
// them (postfix, documented in src/backends/reference/fused_elementwise.cc):
//   y = sigmoid(x * 0.5 + b) * x - c   ->   FusedElementwise(x, b, c)
//       program = [in0, const:0.5, mul, in1, add, sigmoid, in0, mul, in2, sub]
//   HF attention mask: Where(And(k, Cast<bool>(m)), 0, -3.4e38) with m int64, k a bool constant
//       ->   FusedElementwise(k, m) {out_dtype absent: float32}
//       program = [in0, in1, to_bool, and, const:0, const:-3.40282347e+38, where]
//
// A region is a tree: its root is a fusable node whose output is not the single-use input of another fusable node;
// it grows up through inputs that are produced by a fusable node and read only there (single-use, not a graph
// output). Everything else that the tree reads is a leaf: the distinct leaf tensors become the node's inputs,
// except constants of one element, which are inlined into the program as `const:<v>`. Elementwise ops are
// pointwise and broadcasting composes, so every interior value at output index i only depends on the leaves at the
// indices that broadcast to i, and the output shape is the broadcast of all leaves; a one-element constant can only
// change that shape by adding leading 1s, so one is inlined only when its rank is at most the largest rank of the
// non-inlined inputs.
//
// Values: every interior value is float32 or bool (held as a float 0 / 1 by the kernels); a leaf may also be int32
// or int64 (read by a Cast only; loaded as static_cast<float>, as ONNX's Cast to float32). The output is float32 or
// bool; a bool output sets the attribute `out_dtype` = 9 (ONNX's bool), a float32 one leaves it absent, so float32
// chains give the same node as before.
//
// Fusable (default domain, one output):
//   float32 in and out: Add, Sub, Mul, Div, Min, Max, Neg, Abs, Sqrt, Exp, Log, Reciprocal, Erf, Tanh, Sigmoid,
//     Relu, LeakyRelu, Pow with a constant float32 exponent, Clip with constant (or absent) bounds;
//   Cast to float32 (no token: the value is already a float) or to bool (`to_bool`: v != 0) from float32, bool,
//     int32 or int64;
//   Not, And, Or, Xor on bool; Equal on two float32 or two bool operands; Less, LessOrEqual, Greater,
//     GreaterOrEqual on float32 (never on integers: int64 -> float rounding could change a comparison);
//   Where(cond bool, a, b) with a, b and the output float32 or bool.
// Limits: a region needs at least 2 ops and at most 8 distinct inputs (op_list.def) and leaves of known rank; a
// region with more inputs is left alone as a whole. Values read twice (x * x with x computed) are leaves, not
// interior, so DAG-shaped chains split into several trees. Nodes marked with a `subgraph` attribute
// (mark_squeeze_excite) are never fused.
#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "src/ops/op_schema.h"
#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

const std::map<std::string, std::string>& binary_tokens() {
    static const std::map<std::string, std::string> k = {
        {"Add", "add"}, {"Sub", "sub"}, {"Mul", "mul"}, {"Div", "div"}, {"Pow", "pow"}, {"Min", "min"}, {"Max", "max"},
    };
    return k;
}

// Binary ops on bool or float32 operands with a bool result.
const std::map<std::string, std::string>& logic_tokens() {
    static const std::map<std::string, std::string> k = {
        {"And", "and"}, {"Or", "or"},  {"Xor", "xor"}, {"Equal", "eq"}, {"Less", "lt"}, {"LessOrEqual", "le"},
        {"Greater", "gt"}, {"GreaterOrEqual", "ge"},
    };
    return k;
}

const std::map<std::string, std::string>& unary_tokens() {
    static const std::map<std::string, std::string> k = {
        {"Neg", "neg"}, {"Abs", "abs"},   {"Sqrt", "sqrt"}, {"Exp", "exp"},         {"Log", "log"},
        {"Erf", "erf"}, {"Tanh", "tanh"}, {"Relu", "relu"}, {"Sigmoid", "sigmoid"}, {"Reciprocal", "reciprocal"},
    };
    return k;
}

std::string fmt(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<float>(v));
    return buf;
}

bool is_f32(const ir::Value* v) { return v && v->dtype == DataType::kFloat32; }
bool is_bool(const ir::Value* v) { return v && v->dtype == DataType::kBool; }

// dtypes a leaf may have (the kernels load them as float).
bool leaf_dtype(const ir::Value* v) {
    return v && (v->dtype == DataType::kFloat32 || v->dtype == DataType::kBool || v->dtype == DataType::kInt32 ||
                 v->dtype == DataType::kInt64);
}

bool const_f32_scalar(const ir::Value* v) { return is_f32(v) && v->is_constant() && v->constant->numel() == 1; }

// A one-element constant that can be inlined as `const:<v>`.
bool inlinable_scalar(const ir::Value* v) { return leaf_dtype(v) && v->is_constant() && v->constant->numel() == 1; }

// The value of an inlinable scalar as the kernels see it (int64 -> float32 directly, not through double).
float scalar_value(const ir::Value* v) {
    const Tensor& t = *v->constant;
    if (t.dtype() == DataType::kInt64) return static_cast<float>(t.data<int64_t>()[0]);
    return static_cast<float>(t.get_f64(0));
}

bool all_of_inputs(const ir::Node* n, size_t count, bool (*pred)(const ir::Value*)) {
    if (n->inputs.size() != count) return false;
    for (const ir::Value* in : n->inputs)
        if (!pred(in)) return false;
    return true;
}

bool fusable(const ir::Node* n) {
    if (!(n->domain.empty() || n->domain == "ai.onnx") || n->outputs.size() != 1) return false;
    const ir::Value* out = n->outputs[0];
    if (!is_f32(out) && !is_bool(out)) return false;
    if (n->attrs.has("subgraph")) return false;  // part of a block a backend runs as one unit (mark_squeeze_excite)
    const std::string& op = n->op_type;
    if (op == "Cast") return n->inputs.size() == 1 && leaf_dtype(n->input(0));
    if (op == "Not") return all_of_inputs(n, 1, is_bool);
    if (op == "Where") {
        return n->inputs.size() == 3 && is_bool(n->input(0)) && n->input(1) && n->input(2) &&
               n->input(1)->dtype == out->dtype && n->input(2)->dtype == out->dtype;
    }
    if (logic_tokens().count(op)) {
        if (!is_bool(out)) return false;
        if (op == "And" || op == "Or" || op == "Xor") return all_of_inputs(n, 2, is_bool);
        if (op == "Equal" && all_of_inputs(n, 2, is_bool)) return true;
        return all_of_inputs(n, 2, is_f32);  // comparisons: float32 only
    }
    // float32 arithmetic
    if (!is_f32(out)) return false;
    if (op == "Clip") {
        return is_f32(n->input(0)) && (!n->input(1) || const_f32_scalar(n->input(1))) &&
               (!n->input(2) || const_f32_scalar(n->input(2)));
    }
    if (op == "Pow") return n->inputs.size() == 2 && is_f32(n->input(0)) && is_f32(n->input(1)) &&
                            n->input(1)->is_constant();
    if (op == "LeakyRelu" || unary_tokens().count(op)) return all_of_inputs(n, 1, is_f32);
    if (!binary_tokens().count(op) || n->inputs.empty()) return false;
    for (const ir::Value* in : n->inputs)
        if (!is_f32(in)) return false;
    return true;
}

// The data inputs of a fusable node (Clip's bounds are folded into its token).
std::vector<ir::Value*> operands(const ir::Node* n) {
    if (n->op_type == "Clip") return {n->inputs[0]};
    return n->inputs;
}

struct Region {
    ir::Node* root = nullptr;
    std::vector<ir::Node*> nodes;   // in program (post-) order, root last
    std::vector<ir::Value*> leaves;  // distinct, first-use order
    std::set<const ir::Value*> inlined;
    std::vector<ir::Value*> inputs;
    std::vector<std::string> program;
};

class Fuser {
public:
    explicit Fuser(const UseMap& uses) : uses_(uses) {}

    bool interior(const ir::Value* v) const {
        return v->producer && fusable(v->producer) && uses_.single_use(v);
    }

    // Collects the tree under `n`: nodes in post-order, leaf values.
    void collect(ir::Node* n, Region& r) const {
        for (ir::Value* in : operands(n)) {
            if (interior(in)) {
                collect(in->producer, r);
            } else if (std::find(r.leaves.begin(), r.leaves.end(), in) == r.leaves.end()) {
                r.leaves.push_back(in);
            }
        }
        r.nodes.push_back(n);
    }

    void emit_value(ir::Value* v, Region& r) const {
        if (interior(v)) return emit_node(v->producer, r);
        if (r.inlined.count(v)) {
            r.program.push_back("const:" + fmt(scalar_value(v)));
            return;
        }
        size_t k = std::find(r.inputs.begin(), r.inputs.end(), v) - r.inputs.begin();
        if (k == r.inputs.size()) r.inputs.push_back(v);
        r.program.push_back("in" + std::to_string(k));
    }

    void emit_node(ir::Node* n, Region& r) const {
        const std::string& op = n->op_type;
        std::vector<ir::Value*> ins = operands(n);
        emit_value(ins[0], r);
        if (auto it = binary_tokens().find(op); it != binary_tokens().end()) {
            for (size_t i = 1; i < ins.size(); ++i) {  // variadic Min/Max: ((a op b) op c) ...
                emit_value(ins[i], r);
                r.program.push_back(it->second);
            }
        } else if (auto l = logic_tokens().find(op); l != logic_tokens().end()) {
            emit_value(ins[1], r);
            r.program.push_back(l->second);
        } else if (auto u = unary_tokens().find(op); u != unary_tokens().end()) {
            r.program.push_back(u->second);
        } else if (op == "Not") {
            r.program.push_back("not");
        } else if (op == "Cast") {  // to float32: the loaded value already is one; to bool: v != 0
            if (is_bool(n->outputs[0]) && !is_bool(ins[0])) r.program.push_back("to_bool");
        } else if (op == "Where") {  // cond a b where
            emit_value(ins[1], r);
            emit_value(ins[2], r);
            r.program.push_back("where");
        } else if (op == "LeakyRelu") {
            r.program.push_back("leaky_relu:" + fmt(n->attrs.get_float("alpha", 0.01f)));
        } else if (op == "Clip") {  // absent bounds: the Clip kernel's lowest / max
            double lo = std::numeric_limits<float>::lowest(), hi = std::numeric_limits<float>::max();
            if (n->input(1)) const_scalar(n->input(1), &lo);
            if (n->input(2)) const_scalar(n->input(2), &hi);
            r.program.push_back("clip:" + fmt(lo) + ":" + fmt(hi));
        }
    }

    // Fills r from its root; false when the region cannot or should not be fused.
    bool build(Region& r, size_t max_inputs) const {
        collect(r.root, r);
        if (r.nodes.size() < 2) return false;
        size_t max_rank = 0;
        bool any_input = false;
        for (const ir::Value* v : r.leaves) {
            if (!v->shape_known) return false;
            if (inlinable_scalar(v)) continue;
            max_rank = std::max(max_rank, v->dims.size());
            any_input = true;
        }
        if (!any_input) return false;  // all constant: constant_folding's business
        for (const ir::Value* v : r.leaves)
            if (inlinable_scalar(v) && v->dims.size() <= max_rank) r.inlined.insert(v);
        emit_node(r.root, r);
        return r.inputs.size() <= max_inputs;
    }

private:
    const UseMap& uses_;
};

}  // namespace

bool fuse_elementwise(ir::Graph& g, PassContext&) {
    const ops::OpSchema* schema = ops::find_schema("FusedElementwise");
    if (!schema) return false;
    const size_t max_inputs = static_cast<size_t>(schema->max_inputs);
    UseMap uses(g);
    Fuser fuser(uses);
    // Regions are disjoint (each fusable node has one root: follow single-use fusable readers down), so find them
    // all first, then rewrite.
    std::vector<Region> regions;
    for (ir::Node* n : g.nodes()) {
        if (!fusable(n)) continue;
        ir::Node* reader = uses.only_user(n->outputs[0]);
        if (reader && fusable(reader)) {
            std::vector<ir::Value*> ops = operands(reader);
            if (std::find(ops.begin(), ops.end(), n->outputs[0]) != ops.end()) continue;  // interior, not a root
        }
        Region r;
        r.root = n;
        if (fuser.build(r, max_inputs)) regions.push_back(std::move(r));
    }
    for (Region& r : regions) {
        ir::Value* out = r.root->outputs[0];
        std::vector<std::string> names = fused_names(r.nodes);
        std::string name = g.unique_name(r.root->name + "_elementwise");
        remove_nodes(g, r.nodes);
        AttributeMap attrs;
        attrs.set("program", r.program);
        if (is_bool(out)) attrs.set("out_dtype", int64_t{9});  // ONNX's bool; absent: float32
        g.add_node("FusedElementwise", name, r.inputs, {out}, attrs, "kiln")->fused_from = names;
    }
    if (regions.empty()) return false;
    g.remove_unused_values();
    return true;
}

}  // namespace kiln::passes

// Graph construction, editing, ordering, inference, verification and printing.
#include "src/ir/graph.h"

#include <algorithm>
#include <set>
#include <sstream>
#include <unordered_map>

#include "src/common/check.h"
#include "src/ops/op_schema.h"

namespace kiln::ir {

Value* Graph::add_value(const std::string& name, DataType dtype, SymShape dims, bool shape_known) {
    KILN_CHECK(!name.empty(), kInvalidModel, "a tensor has an empty name");
    KILN_CHECK(!by_name_.count(name), kInvalidModel, "tensor name '", name, "' is defined more than once");
    auto v = std::make_unique<Value>();
    v->name = name;
    v->dtype = dtype;
    v->dims = std::move(dims);
    v->shape_known = shape_known;
    Value* raw = v.get();
    values_.push_back(std::move(v));
    by_name_[name] = raw;
    return raw;
}

std::unique_ptr<Graph> Graph::clone() const {
    auto g = std::make_unique<Graph>();
    std::unordered_map<const Value*, Value*> map;
    for (auto& v : values_) {
        Value* c = g->add_value(v->name, v->dtype, v->dims, v->shape_known);
        c->constant = v->constant;
        c->is_input = v->is_input;
        c->is_output = v->is_output;
        map[v.get()] = c;
    }
    for (Value* v : inputs_) g->inputs_.push_back(map.at(v));
    for (Value* v : outputs_) g->outputs_.push_back(map.at(v));
    for (auto& n : nodes_) {
        std::vector<Value*> ins, outs;
        for (Value* v : n->inputs) ins.push_back(v ? map.at(v) : nullptr);
        for (Value* v : n->outputs) outs.push_back(map.at(v));
        Node* c = g->add_node(n->op_type, n->name, ins, outs, n->attrs, n->domain);
        c->fused_from = n->fused_from;
    }
    g->metadata = metadata;
    g->producer_name = producer_name;
    g->name = name;
    g->name_counter_ = name_counter_;
    return g;
}

Value* Graph::add_input(const std::string& name, DataType dtype, SymShape dims) {
    Value* v = add_value(name, dtype, std::move(dims), true);
    v->is_input = true;
    inputs_.push_back(v);
    return v;
}

Value* Graph::add_constant(const std::string& name, Tensor t) {
    Value* v = add_value(name, t.dtype(), to_sym(t.shape()), true);
    v->constant = std::move(t);
    return v;
}

void Graph::mark_output(Value* v) {
    if (std::find(outputs_.begin(), outputs_.end(), v) != outputs_.end()) return;
    v->is_output = true;
    outputs_.push_back(v);
}

Node* Graph::add_node(const std::string& op_type, const std::string& name, std::vector<Value*> inputs,
                      std::vector<Value*> outputs, AttributeMap attrs, const std::string& domain) {
    auto n = std::make_unique<Node>();
    n->op_type = op_type;
    n->name = name.empty() ? unique_name(op_type) : name;
    n->domain = domain;
    n->attrs = std::move(attrs);
    n->inputs = std::move(inputs);
    n->outputs = std::move(outputs);
    for (Value* o : n->outputs) {
        KILN_CHECK(o->producer == nullptr && !o->is_input && !o->is_constant(), kInvalidModel, "tensor '", o->name,
                   "' is produced by more than one node (second: '", n->name, "')");
        o->producer = n.get();
    }
    Node* raw = n.get();
    nodes_.push_back(std::move(n));
    return raw;
}

void Graph::remove_node(Node* n) {
    for (Value* o : n->outputs)
        if (o->producer == n) o->producer = nullptr;
    nodes_.remove_if([n](const std::unique_ptr<Node>& p) { return p.get() == n; });
}

void Graph::replace_all_uses(Value* from, Value* to) {
    for (auto& n : nodes_)
        for (Value*& in : n->inputs)
            if (in == from) in = to;
    for (Value*& o : outputs_) {
        if (o != from) continue;
        o = to;
        to->is_output = true;
        from->is_output = false;
    }
}

void Graph::remove_unused_values() {
    std::set<const Value*> used(inputs_.begin(), inputs_.end());
    used.insert(outputs_.begin(), outputs_.end());
    for (auto& n : nodes_) {
        used.insert(n->inputs.begin(), n->inputs.end());
        used.insert(n->outputs.begin(), n->outputs.end());
    }
    std::vector<std::unique_ptr<Value>> kept;
    for (auto& v : values_) {
        if (used.count(v.get())) {
            kept.push_back(std::move(v));
        } else {
            by_name_.erase(v->name);
        }
    }
    values_ = std::move(kept);
}

Value* Graph::find_value(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

std::string Graph::unique_name(const std::string& base) {
    std::string n;
    do {
        n = cat(base, "_k", name_counter_++);
    } while (by_name_.count(n));
    return n;
}

std::vector<Node*> Graph::nodes() const {
    std::vector<Node*> out;
    out.reserve(nodes_.size());
    for (auto& n : nodes_) out.push_back(n.get());
    return out;
}

std::vector<Node*> Graph::consumers(const Value* v) const {
    std::vector<Node*> out;
    for (auto& n : nodes_)
        if (std::find(n->inputs.begin(), n->inputs.end(), v) != n->inputs.end()) out.push_back(n.get());
    return out;
}

void Graph::topological_sort() {
    std::unordered_map<const Node*, int> pending;
    std::unordered_map<const Value*, std::vector<Node*>> users;
    for (auto& n : nodes_) {
        int deps = 0;
        std::set<const Value*> seen;
        for (Value* in : n->inputs) {
            if (!in || !seen.insert(in).second) continue;
            if (in->producer) {
                ++deps;
                users[in].push_back(n.get());
            } else {
                KILN_CHECK(in->is_input || in->is_constant(), kInvalidModel, "node '", n->name, "' (", n->op_type,
                           ") reads tensor '", in->name, "', which is not a graph input, an initializer or the output ",
                           "of any node");
            }
        }
        pending[n.get()] = deps;
    }
    std::vector<Node*> ready, order;
    for (auto& n : nodes_)
        if (pending[n.get()] == 0) ready.push_back(n.get());
    std::reverse(ready.begin(), ready.end());
    while (!ready.empty()) {
        Node* n = ready.back();
        ready.pop_back();
        order.push_back(n);
        std::vector<Node*> newly;
        for (Value* o : n->outputs)
            for (Node* u : users[o])
                if (--pending[u] == 0) newly.push_back(u);
        // keep the original relative order among newly ready nodes
        for (auto it = newly.rbegin(); it != newly.rend(); ++it) ready.push_back(*it);
    }
    if (order.size() != nodes_.size()) {
        for (auto& n : nodes_)
            if (pending[n.get()] > 0)
                KILN_FAIL(kInvalidModel, "the graph has a cycle through node '", n->name, "' (", n->op_type, ")");
    }
    std::unordered_map<const Node*, size_t> pos;
    for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
    nodes_.sort([&](const std::unique_ptr<Node>& a, const std::unique_ptr<Node>& b) {
        return pos[a.get()] < pos[b.get()];
    });
}

void Graph::infer_shapes(bool lenient) {
    for (auto& n : nodes_) infer_node(n.get(), lenient);
}

bool Graph::infer_node(Node* n, bool lenient) {
    auto unknown_rank = [&] {
        for (Value* o : n->outputs) {
            o->shape_known = false;
            o->dims.clear();
        }
        return false;
    };
    if (lenient)
        for (Value* in : n->inputs)
            if (in && !in->shape_known && !in->is_constant() && in->producer) return unknown_rank();
    try {
        std::vector<ops::TensorInfo> infos;
        for (Value* in : n->inputs) {
            ops::TensorInfo t;
            if (!in) {
                t.present = false;
            } else {
                t.dtype = in->dtype;
                t.dims = in->dims;
                t.value = in->is_constant() ? &*in->constant : nullptr;
            }
            infos.push_back(std::move(t));
        }
        std::vector<ops::TensorInfo> outs = ops::infer_node(n->name, n->op_type, n->attrs, infos, n->outputs.size());
        for (size_t i = 0; i < outs.size(); ++i) {
            Value* o = n->outputs[i];
            o->dtype = outs[i].dtype;
            // Keep a symbol the importer already knew (e.g. from value_info) where inference only says "unknown".
            if (o->shape_known && o->dims.size() == outs[i].dims.size()) {
                for (size_t d = 0; d < o->dims.size(); ++d)
                    if (!outs[i].dims[d].is_static() && outs[i].dims[d].symbol.empty()) outs[i].dims[d] = o->dims[d];
            }
            o->dims = outs[i].dims;
            o->shape_known = true;
        }
    } catch (const Error& e) {
        if (!lenient || e.code() != ErrorCode::kUnsupported) throw;
        return unknown_rank();
    }
    return true;
}

void Graph::verify() const {
    std::vector<std::string> unknown;
    std::set<const Value*> defined(inputs_.begin(), inputs_.end());
    for (auto& v : values_)
        if (v->is_constant()) defined.insert(v.get());
    for (auto& n : nodes_) {
        if (!ops::find_schema(n->op_type) || !(n->domain.empty() || n->domain == "ai.onnx" || n->domain == "kiln"))
            unknown.push_back(cat("  node '", n->name, "': op '", n->op_type, "' in domain '",
                                  n->domain.empty() ? "ai.onnx" : n->domain, "'"));
        for (Value* in : n->inputs)
            KILN_CHECK(!in || defined.count(in), kInvalidModel, "node '", n->name, "' (", n->op_type,
                       ") reads tensor '", in->name, "' before it is produced");
        for (Value* o : n->outputs) defined.insert(o);
    }
    KILN_CHECK(unknown.empty(), kUnsupported, unknown.size(), " node(s) use ops kiln does not support yet:\n",
               join(unknown, "\n"));
    for (Value* o : outputs_)
        KILN_CHECK(defined.count(o), kInvalidModel, "graph output '", o->name, "' is never produced");
}

namespace {
std::string value_str(const Value* v) {
    if (!v) return "_";
    return cat("%", v->name);
}
std::string type_str(const Value* v) { return cat(dtype_name(v->dtype), "[", shape_str(v->dims), "]"); }
}  // namespace

std::string Graph::to_text() const {
    std::ostringstream os;
    for (Value* in : inputs_) os << "input " << value_str(in) << ": " << type_str(in) << "\n";
    for (auto& n : nodes_) {
        std::vector<std::string> outs, ins, attrs;
        for (Value* o : n->outputs) outs.push_back(cat(value_str(o), ": ", type_str(o)));
        for (Value* i : n->inputs) ins.push_back(i && i->is_constant() ? cat(value_str(i), "<const>") : value_str(i));
        for (auto& [k, a] : n->attrs.items()) attrs.push_back(cat(k, "=", attribute_str(a)));
        os << join(outs, ", ") << " = " << (n->domain == "kiln" ? "kiln." : "") << n->op_type << "(" << join(ins, ", ")
           << ")";
        if (!attrs.empty()) os << " {" << join(attrs, ", ") << "}";
        os << "  # " << n->name << "\n";
    }
    for (Value* o : outputs_) os << "output " << value_str(o) << ": " << type_str(o) << "\n";
    return os.str();
}

}  // namespace kiln::ir

// Merges duplicate work. First identical small constants (same dtype, shape and bytes, at most kMaxConstBytes) are
// merged into one value; then nodes with the same op type, domain, inputs (the same Value*), number of outputs and
// equal attributes are merged into the first of them, in topological order, so whole duplicated chains collapse
// in one sweep.
//
// Limits: a duplicate whose output (or constant) is a graph output is kept, so output names never change.
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "src/passes/pass.h"

namespace kiln::passes {

namespace {

constexpr size_t kMaxConstBytes = 4096;

bool merge_constants(ir::Graph& g) {
    // Constants read by nodes, in first-use order.
    std::vector<ir::Value*> consts;
    std::set<const ir::Value*> seen;
    for (const ir::Node* n : g.nodes())
        for (ir::Value* in : n->inputs)
            if (in && in->is_constant() && !in->is_input && !in->is_output && seen.insert(in).second)
                consts.push_back(in);
    using Key = std::tuple<DataType, Shape, std::string>;
    std::map<Key, ir::Value*> canon;
    bool changed = false;
    for (ir::Value* v : consts) {
        const Tensor& t = *v->constant;
        if (t.bytes() > kMaxConstBytes) continue;
        std::string bytes(static_cast<const char*>(t.raw()), t.bytes());
        auto [it, inserted] = canon.emplace(Key{t.dtype(), t.shape(), std::move(bytes)}, v);
        if (inserted) continue;
        g.replace_all_uses(v, it->second);
        changed = true;
    }
    return changed;
}

bool merge_nodes(ir::Graph& g) {
    using Key = std::tuple<std::string, std::string, std::vector<ir::Value*>, size_t>;
    std::map<Key, std::vector<ir::Node*>> kept;
    bool changed = false;
    for (ir::Node* n : g.nodes()) {
        std::vector<ir::Node*>& same = kept[Key{n->op_type, n->domain, n->inputs, n->outputs.size()}];
        ir::Node* twin = nullptr;
        for (ir::Node* k : same)
            if (k->attrs == n->attrs) twin = k;
        bool exposes_output = false;
        for (const ir::Value* o : n->outputs) exposes_output |= o->is_output;
        if (!twin || exposes_output) {
            same.push_back(n);
            continue;
        }
        std::vector<ir::Value*> outs = n->outputs;
        g.remove_node(n);
        for (size_t i = 0; i < outs.size(); ++i) g.replace_all_uses(outs[i], twin->outputs[i]);
        changed = true;
    }
    return changed;
}

}  // namespace

bool common_subexpression_elimination(ir::Graph& g, PassContext&) {
    g.topological_sort();
    bool changed = merge_constants(g);
    changed |= merge_nodes(g);
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

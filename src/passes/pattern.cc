#include "src/passes/pattern.h"

#include <algorithm>
#include <cmath>

namespace kiln::passes {

UseMap::UseMap(const ir::Graph& g) {
    for (ir::Node* n : g.nodes())
        for (ir::Value* in : n->inputs)
            if (in) uses_[in].push_back(n);
}

const std::vector<ir::Node*>& UseMap::uses(const ir::Value* v) const {
    auto it = uses_.find(v);
    return it == uses_.end() ? none_ : it->second;
}

bool UseMap::single_use(const ir::Value* v) const { return !v->is_output && uses(v).size() == 1; }

ir::Node* UseMap::only_user(const ir::Value* v) const { return single_use(v) ? uses(v)[0] : nullptr; }

ir::Node* producer_of(const ir::Value* v, const char* op) {
    if (!v || !v->producer) return nullptr;
    ir::Node* p = v->producer;
    return p->op_type == op && (p->domain.empty() || p->domain == "ai.onnx") ? p : nullptr;
}

bool const_scalar(const ir::Value* v, double* out) {
    if (!v || !v->is_constant() || v->constant->numel() != 1) return false;
    *out = v->constant->get_f64(0);
    return true;
}

bool is_const_near(const ir::Value* v, double want, double rel_tol) {
    double x;
    return const_scalar(v, &x) && std::fabs(x - want) <= rel_tol * std::max(1.0, std::fabs(want));
}

ir::Value* other_input(const ir::Node* n, const ir::Value* known) {
    if (n->inputs.size() != 2) return nullptr;
    if (n->inputs[0] == known && n->inputs[1] != known) return n->inputs[1];
    if (n->inputs[1] == known && n->inputs[0] != known) return n->inputs[0];
    return nullptr;
}

bool reduce_axes(const ir::Node* n, int rank, std::vector<int64_t>* axes) {
    std::vector<int64_t> a;
    if (ir::Value* in = n->input(1)) {
        if (!in->is_constant()) return false;
        a = in->constant->to_i64_vector();
    } else if (n->attrs.has("axes")) {
        a = n->attrs.get_ints("axes");
    } else {
        return false;
    }
    for (int64_t& x : a) {
        if (x < 0) x += rank;
        if (x < 0 || x >= rank) return false;
    }
    std::sort(a.begin(), a.end());
    *axes = a;
    return true;
}

void remove_nodes(ir::Graph& g, const std::vector<ir::Node*>& nodes) {
    for (ir::Node* n : nodes) g.remove_node(n);
}

std::vector<std::string> fused_names(const std::vector<ir::Node*>& nodes) {
    std::vector<std::string> out;
    for (const ir::Node* n : nodes) {
        if (n->fused_from.empty()) {
            out.push_back(n->name);
        } else {
            out.insert(out.end(), n->fused_from.begin(), n->fused_from.end());
        }
    }
    return out;
}

void record_fused(ir::Node* into, const std::vector<ir::Node*>& from) {
    if (into->fused_from.empty()) into->fused_from.push_back(into->name);
    std::vector<ir::Node*> others;
    for (ir::Node* n : from)
        if (n != into) others.push_back(n);
    std::vector<std::string> names = fused_names(others);
    into->fused_from.insert(into->fused_from.end(), names.begin(), names.end());
}

}  // namespace kiln::passes

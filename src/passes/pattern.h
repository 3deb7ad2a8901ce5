#pragma once
// Small helpers for rewrite rules: who produces/reads a value, constant scalars, and node removal.
#include <unordered_map>
#include <vector>

#include "src/ir/graph.h"

namespace kiln::passes {

/// Value -> the nodes reading it. Build it again after edits that change uses.
class UseMap {
public:
    explicit UseMap(const ir::Graph& g);
    const std::vector<ir::Node*>& uses(const ir::Value* v) const;
    /// Read by exactly one node (once) and not a graph output: safe to fold into that reader.
    bool single_use(const ir::Value* v) const;
    /// The only reader of v, or nullptr.
    ir::Node* only_user(const ir::Value* v) const;

private:
    std::unordered_map<const ir::Value*, std::vector<ir::Node*>> uses_;
    std::vector<ir::Node*> none_;
};

/// v's producer when it has op type `op` (default domain), else nullptr.
ir::Node* producer_of(const ir::Value* v, const char* op);
/// A constant with one element, read as double.
bool const_scalar(const ir::Value* v, double* out);
bool is_const_near(const ir::Value* v, double want, double rel_tol = 1e-4);
/// For a binary node, the input that is not `known` (nullptr when neither / both are).
ir::Value* other_input(const ir::Node* n, const ir::Value* known);
/// The constant axes of a reduction (input 1 or attribute `axes`), normalised against `rank`.
bool reduce_axes(const ir::Node* n, int rank, std::vector<int64_t>* axes);
/// Removes nodes (whose outputs must be unused by then) from the graph.
void remove_nodes(ir::Graph& g, const std::vector<ir::Node*>& nodes);
/// The original ONNX node names behind `nodes` (their fused_from, or their names). Call before removing them.
std::vector<std::string> fused_names(const std::vector<ir::Node*>& nodes);
/// Adds the original-node names of `from` to `into->fused_from` (call before removing `from`).
void record_fused(ir::Node* into, const std::vector<ir::Node*>& from);

/// Calls `rewrite(g, node, uses)` on each node of `op_type` in `domain` and starts over (with fresh uses) after every
/// rewrite that returns true, until none does; true when anything changed.
template <typename Rewrite>
bool rewrite_until_stable(ir::Graph& g, const char* op_type, const char* domain, Rewrite rewrite) {
    bool changed = false;
    for (bool again = true; again;) {
        again = false;
        UseMap uses(g);
        for (ir::Node* n : g.nodes()) {
            if (n->op_type == op_type && n->domain == domain && rewrite(g, n, uses)) {
                changed = again = true;
                break;
            }
        }
    }
    return changed;
}

}  // namespace kiln::passes

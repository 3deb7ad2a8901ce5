// Removes nodes whose outputs reach no graph output.
#include <set>

#include "src/passes/pass.h"

namespace kiln::passes {

bool dead_code_elimination(ir::Graph& g, PassContext&) {
    std::set<const ir::Value*> live(g.outputs().begin(), g.outputs().end());
    std::vector<ir::Node*> nodes = g.nodes();
    bool changed = false;
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
        ir::Node* n = *it;
        bool needed = false;
        for (ir::Value* o : n->outputs) needed |= live.count(o) != 0;
        if (!needed) {
            g.remove_node(n);
            changed = true;
            continue;
        }
        for (ir::Value* in : n->inputs)
            if (in) live.insert(in);
    }
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

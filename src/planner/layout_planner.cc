#include "src/planner/layout_planner.h"

#include <numeric>

namespace kiln::planner {

namespace {

// Union-find over value ids: the groups of values that must share a layout.
struct Groups {
    std::vector<int32_t> parent;
    explicit Groups(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
    int32_t find(int32_t v) {
        while (parent[v] != v) v = parent[v] = parent[parent[v]];
        return v;
    }
    void join(int32_t a, int32_t b) { parent[find(a)] = find(b); }
};

bool port_ok(const std::vector<bool>& ports, size_t k) { return k < ports.size() && ports[k]; }

// A blocked value becomes nChw16c_bf16 when its producer's port and every consumer's port take bf16 (bf16 layers of
// a --bf16 plan), and so does every value tied to it.
void mark_bf16(plan::PlanModel& m, const std::vector<LayoutCaps>& caps, Groups& groups) {
    const size_t n_values = m.values.size();
    std::vector<char> ok(n_values, 0);
    for (size_t id = 0; id < n_values; ++id) ok[id] = m.values[id].layout == Layout::kNChw16c;
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        for (size_t k = 0; k < n.inputs.size(); ++k)
            if (n.inputs[k] >= 0 && !port_ok(caps[i].bf16_inputs, k)) ok[n.inputs[k]] = 0;
        for (size_t k = 0; k < n.outputs.size(); ++k)
            if (!port_ok(caps[i].bf16_outputs, k)) ok[n.outputs[k]] = 0;
    }
    std::vector<char> group_ok(n_values, 1);
    for (size_t id = 0; id < n_values; ++id)
        if (!ok[id]) group_ok[groups.find(static_cast<int32_t>(id))] = 0;
    for (size_t id = 0; id < n_values; ++id)
        if (ok[id] && group_ok[groups.find(static_cast<int32_t>(id))]) m.values[id].layout = Layout::kNChw16cBf16;
}

}  // namespace

int plan_layouts(plan::PlanModel& m, const std::vector<LayoutCaps>& caps) {
    const size_t n_values = m.values.size();
    for (plan::PlanValue& v : m.values) v.layout = Layout::kPlain;
    // Blocked values live in the memory plan's arena (it sizes them with their padding), which exists only when
    // every activation shape is static; otherwise keep everything plain.
    std::vector<char> is_output(n_values, 0);
    for (int32_t id : m.outputs) is_output[id] = 1;
    for (const plan::PlanNode& n : m.nodes)
        for (int32_t id : n.outputs)
            if (!is_output[id] && !is_static(m.values[id].dims)) return 0;
    std::vector<char> candidate(n_values, 0), produced(n_values, 0), preferred(n_values, 0);
    for (size_t id = 0; id < n_values; ++id) {
        const plan::PlanValue& v = m.values[id];
        if (v.weight >= 0 || v.dtype != DataType::kFloat32 || v.dims.size() != 4 || !is_static(v.dims)) continue;
        if (v.dims[2].value * v.dims[3].value <= 1) continue;
        // padding beyond half the channels (C = 8 -> 16) costs more memory traffic than the reorders it saves
        if (2 * padded_channels(v.dims[1].value) > 3 * v.dims[1].value) continue;
        candidate[id] = 1;
    }
    for (int32_t id : m.outputs) candidate[id] = 0;
    for (int32_t id : m.inputs) candidate[id] = 0;
    // A port that does not accept blocked values pins its value to plain.
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        const LayoutCaps& c = caps[i];
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            int32_t id = n.inputs[k];
            if (id < 0) continue;
            if (!port_ok(c.inputs, k)) candidate[id] = 0;
            if (c.prefers_blocked) preferred[id] = 1;
        }
        for (size_t k = 0; k < n.outputs.size(); ++k) {
            int32_t id = n.outputs[k];
            produced[id] = 1;
            if (!port_ok(c.outputs, k)) candidate[id] = 0;
            if (c.prefers_blocked) preferred[id] = 1;
        }
    }
    // Tied ports share one layout: join their values, then a group is blocked only if all of it can be.
    Groups groups(n_values);
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        if (!caps[i].tied) continue;
        const plan::PlanNode& n = m.nodes[i];
        int32_t first = -1;
        auto tie = [&](int32_t id) {
            if (id < 0) return;
            if (first < 0)
                first = id;
            else
                groups.join(id, first);
        };
        for (size_t k = 0; k < n.inputs.size(); ++k)
            if (port_ok(caps[i].inputs, k)) tie(n.inputs[k]);
        for (size_t k = 0; k < n.outputs.size(); ++k)
            if (port_ok(caps[i].outputs, k)) tie(n.outputs[k]);
    }
    std::vector<char> group_ok(n_values, 1), group_preferred(n_values, 0);
    for (size_t id = 0; id < n_values; ++id) {
        int32_t g = groups.find(static_cast<int32_t>(id));
        if (!candidate[id] || !produced[id]) group_ok[g] = 0;
        if (preferred[id]) group_preferred[g] = 1;
    }
    int blocked = 0;
    for (size_t id = 0; id < n_values; ++id) {
        int32_t g = groups.find(static_cast<int32_t>(id));
        if (candidate[id] && produced[id] && group_ok[g] && group_preferred[g]) {
            m.values[id].layout = Layout::kNChw16c;
            ++blocked;
        }
    }
    mark_bf16(m, caps, groups);
    return blocked;
}

}  // namespace kiln::planner

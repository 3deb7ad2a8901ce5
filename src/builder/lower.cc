#include "src/builder/lower.h"

#include <unordered_map>

#include "kiln/version.h"
#include "src/backends/backend.h"
#include "src/ops/shape_utils.h"
#include "src/common/check.h"
#include "src/planner/layout_planner.h"
#include "src/planner/memory_planner.h"
#include "src/runtime/builtin_backends.h"

namespace kiln::builder {

namespace {

ops::TensorInfo info_of(const ir::Value* v) {
    ops::TensorInfo t;
    if (!v) {
        t.present = false;
        return t;
    }
    t.dtype = v->dtype;
    t.dims = v->dims;
    if (v->is_constant()) t.value = &*v->constant;
    return t;
}

}  // namespace

void plan_activation_memory(plan::PlanModel& m, const std::vector<LayoutCaps>& caps) {
    // Activations = node outputs that are neither graph outputs (returned to the caller) nor constants.
    std::vector<char> is_output(m.values.size(), 0);
    for (int32_t id : m.outputs) is_output[id] = 1;
    std::vector<int> first(m.values.size(), -1), last(m.values.size(), -1);
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        for (int32_t id : m.nodes[i].outputs) first[id] = static_cast<int>(i);
        for (int32_t id : m.nodes[i].inputs)
            if (id >= 0) last[id] = static_cast<int>(i);
    }
    auto is_activation = [&](int32_t id) {
        return id >= 0 && first[id] >= 0 && !is_output[id] && m.values[id].weight < 0;
    };
    std::vector<uint64_t> bytes(m.values.size(), 0);
    uint64_t naive = 0;
    for (size_t id = 0; id < m.values.size(); ++id) {
        if (!is_activation(static_cast<int32_t>(id))) continue;
        const plan::PlanValue& v = m.values[id];
        if (!is_static(v.dims)) return;  // symbolic shapes: allocate per run instead
        bytes[id] = static_cast<uint64_t>(layout_bytes(v.layout, ops::to_concrete(v.dims), dtype_size(v.dtype)));
        naive += (bytes[id] + planner::kArenaAlignment - 1) / planner::kArenaAlignment * planner::kArenaAlignment;
    }
    // In place, in node order (so chains of them share one buffer): a reshape-like op whose input dies at it writes
    // its output over the input (same bytes, no copy); so does a kernel that accumulates onto one of its inputs (a
    // convolution's residual, LayoutCaps::overwrite_input) when that input dies there, has the output's layout and
    // is read through no other port of the node.
    std::vector<int32_t> buffer_of(m.values.size());
    for (size_t id = 0; id < m.values.size(); ++id) buffer_of[id] = static_cast<int32_t>(id);
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        static const char* kAliasing[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"};
        bool aliasing = false;
        for (const char* op : kAliasing) aliasing |= n.op_type == op;
        int k = aliasing ? 0 : i < caps.size() ? caps[i].overwrite_input : -1;
        if (k < 0 || k >= static_cast<int>(n.inputs.size()) || n.outputs.empty()) continue;
        int32_t in = n.inputs[k], out = n.outputs[0];
        if (!is_activation(in) || !is_activation(out) || last[in] != static_cast<int>(i) || bytes[in] != bytes[out])
            continue;
        bool read_elsewhere = false;
        for (size_t j = 0; j < n.inputs.size(); ++j)
            read_elsewhere |= static_cast<int>(j) != k && n.inputs[j] >= 0 && buffer_of[n.inputs[j]] == buffer_of[in];
        if (aliasing || (m.values[in].layout == m.values[out].layout && !read_elsewhere))
            buffer_of[out] = buffer_of[in];
    }
    std::vector<planner::BufferRequest> requests;
    std::vector<int32_t> request_of(m.values.size(), -1);
    for (size_t id = 0; id < m.values.size(); ++id) {
        if (!is_activation(static_cast<int32_t>(id))) continue;
        int32_t b = buffer_of[id];
        int end = std::max(first[id], last[id]);
        if (request_of[b] < 0) {
            request_of[b] = static_cast<int32_t>(requests.size());
            requests.push_back({bytes[id], first[id], end});
        } else {
            planner::BufferRequest& r = requests[request_of[b]];
            r.last = std::max(r.last, end);
        }
    }
    planner::MemoryLayout layout = planner::plan_memory(requests);
    m.memory.valid = true;
    m.memory.arena_bytes = layout.arena_bytes;
    m.memory.naive_bytes = naive;
    m.memory.lower_bound_bytes = layout.lower_bound_bytes;
    m.memory.offsets.assign(m.values.size(), -1);
    for (size_t id = 0; id < m.values.size(); ++id)
        if (is_activation(static_cast<int32_t>(id)))
            m.memory.offsets[id] = static_cast<int64_t>(layout.offsets[request_of[buffer_of[id]]]);
}

plan::PlanModel lower_to_plan(const ir::Graph& g, const std::string& backend_name, const PrecisionOf& precision_of) {
    plan::PlanModel m;
    m.kiln_version = kVersionString;
    m.target_backend = backend_name;
    m.metadata = g.metadata;
    m.producer = g.producer_name;
    std::unordered_map<const ir::Value*, int32_t> ids;
    auto id_of = [&](const ir::Value* v) -> int32_t {
        if (!v) return -1;
        auto it = ids.find(v);
        if (it != ids.end()) return it->second;
        plan::PlanValue pv;
        pv.name = v->name;
        pv.dtype = v->dtype;
        pv.dims = v->dims;
        if (v->is_constant()) {
            pv.weight = static_cast<int32_t>(m.weights.size());
            m.weights.push_back(*v->constant);
        }
        int32_t id = static_cast<int32_t>(m.values.size());
        m.values.push_back(std::move(pv));
        ids[v] = id;
        return id;
    };
    for (const ir::Value* v : g.inputs()) m.inputs.push_back(id_of(v));
    // Placement: each node goes to the target backend when it supports the node, else to the reference backend
    // (`kiln inspect` shows the backend of every layer, so a fallback is never silent).
    runtime::register_builtin_backends();
    std::unique_ptr<backends::Backend> backend = backends::make_backend(backend_name);
    std::unique_ptr<backends::Backend> fallback = backends::make_reference_backend();
    std::vector<LayoutCaps> caps;  // per node, from its backend
    for (const ir::Node* n : g.nodes()) {
        plan::PlanNode pn;
        pn.name = n->name;
        pn.op_type = n->op_type;
        pn.domain = n->domain;
        pn.attrs = n->attrs;
        pn.fused_from = n->fused_from;
        for (const ir::Value* v : n->inputs) pn.inputs.push_back(id_of(v));
        for (const ir::Value* v : n->outputs) pn.outputs.push_back(id_of(v));
        backends::KernelNode kn{pn.name, pn.op_type, pn.attrs, {}, {}};
        for (const ir::Value* v : n->inputs) kn.inputs.push_back(info_of(v));
        for (const ir::Value* v : n->outputs) kn.outputs.push_back(info_of(v));
        if (backend->supports(kn)) {
            pn.backend = backend->name();
            if (precision_of) kn.precision = precision_of(pn);
            caps.push_back(backend->layout_caps(kn));
        } else {
            caps.emplace_back();
            KILN_CHECK(fallback->supports(kn), kUnsupported, kn.where(), ": no backend supports it");
            pn.backend = fallback->name();
        }
        m.nodes.push_back(std::move(pn));
    }
    for (const ir::Value* v : g.outputs()) m.outputs.push_back(id_of(v));
    planner::plan_layouts(m, caps);
    plan_activation_memory(m, caps);
    return m;
}

}  // namespace kiln::builder

// Engine: creates one kernel per plan node (on the backend the plan names) and describes itself.
#include <limits>
#include <map>
#include <sstream>

#include "kiln/runtime.h"
#include "src/common/check.h"
#include "src/runtime/builtin_backends.h"
#include "src/runtime/engine_impl.h"

namespace kiln {

Engine::Engine() : impl_(std::make_unique<Impl>()) {}
Engine::~Engine() = default;

namespace {

// metadata["precision"], overridden per node by metadata["layer_precision"] ("node=prec;node=prec").
std::map<std::string, std::string> node_precisions(const plan::PlanModel& m, std::string* global) {
    auto it = m.metadata.find("precision");
    *global = it == m.metadata.end() ? "fp32" : it->second;
    std::map<std::string, std::string> per_node;
    auto lp = m.metadata.find("layer_precision");
    if (lp == m.metadata.end()) return per_node;
    std::istringstream items(lp->second);
    for (std::string item; std::getline(items, item, ';');) {
        size_t eq = item.rfind('=');
        if (eq != std::string::npos) per_node[item.substr(0, eq)] = item.substr(eq + 1);
    }
    return per_node;
}

backends::Backend& backend_for(Engine::Impl& impl, const std::string& name) {
    for (auto& b : impl.backends)
        if (b->name() == name) return *b;
    impl.backends.push_back(backends::make_backend(name));
    return *impl.backends.back();
}

}  // namespace

std::shared_ptr<Engine> Engine::create(plan::PlanModel model, Logger& logger, const std::string& timing_cache) {
    std::shared_ptr<Engine> e(new Engine());
    Impl& impl = *e->impl_;
    impl.model = std::move(model);
    impl.logger = &logger;
    const plan::PlanModel& m = impl.model;
    int n_values = static_cast<int>(m.values.size());
    impl.last_use.assign(n_values, -1);
    impl.is_output.assign(n_values, 0);
    for (int32_t o : m.outputs) impl.is_output[o] = 1;
    for (int32_t id : m.inputs) impl.inputs.push_back({m.values[id].name, m.values[id].dtype, m.values[id].dims});
    for (int32_t id : m.outputs) impl.outputs.push_back({m.values[id].name, m.values[id].dtype, m.values[id].dims});
    runtime::register_builtin_backends();
    if (backends::DeviceExecutorFactory f = backends::find_device_executor(m.target_backend)) {
        // the device backend runs the whole plan, host nodes included
        impl.device = f(impl.model, logger, backends::DeviceExecutorOptions{timing_cache});
        for (auto& [k, v] : impl.device->plan_metadata()) impl.model.metadata[k] = v;  // architecture, tactics
        return e;
    }
    KILN_CHECK(m.target_backend != "cuda", kUnsupported, "this plan targets the CUDA backend, but this kiln was ",
               "built without CUDA; rebuild kiln with the CUDA toolkit, or build the plan for --backend cpu");
    std::string precision;
    const std::map<std::string, std::string> layer_precision = node_precisions(m, &precision);
    backend_for(impl, m.target_backend).check_precision(precision);
    for (const auto& [node, p] : layer_precision) backend_for(impl, m.target_backend).check_precision(p);
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        const ops::OpSchema* schema = ops::find_schema(n.op_type);
        KILN_CHECK(schema, kUnsupported, "node '", n.name, "': op '", n.op_type, "' is not supported by this kiln");
        impl.schemas.push_back(schema);
        backends::KernelNode kn{n.name, n.op_type, n.attrs, {}, {}};
        auto lp = layer_precision.find(n.name);
        kn.precision = lp == layer_precision.end() ? precision : lp->second;
        for (int32_t id : n.inputs) {
            kn.inputs.push_back(backends::plan_value_info(m, id));
            if (id >= 0) impl.last_use[id] = static_cast<int>(i);
        }
        for (int32_t id : n.outputs) kn.outputs.push_back(backends::plan_value_info(m, id));
        for (int32_t id : n.inputs) kn.input_layouts.push_back(id >= 0 ? m.values[id].layout : Layout::kPlain);
        for (int32_t id : n.outputs) kn.output_layouts.push_back(m.values[id].layout);
        backends::Backend& b = backend_for(impl, n.backend.empty() ? m.target_backend : n.backend);
        KILN_CHECK(b.supports(kn), kUnsupported, kn.where(), ": not supported by backend '", b.name(), "'");
        try {
            impl.kernels.push_back(b.create_kernel(kn));
            impl.zero_outputs.push_back(!impl.kernels.back()->writes_all_outputs());
        } catch (const Error& e) {
            if (std::string(e.what()).find(n.name) != std::string::npos) throw;
            throw Error(e.code(), cat(kn.where(), ": ", e.what()));
        }
    }
    return e;
}

const plan::PlanModel& Engine::plan_model() const { return impl_->model; }
const std::vector<TensorDesc>& Engine::inputs() const { return impl_->inputs; }
const std::vector<TensorDesc>& Engine::outputs() const { return impl_->outputs; }
std::string Engine::target_backend() const { return impl_->model.target_backend; }
bool Engine::on_device() const { return impl_->device != nullptr; }
std::string Engine::kiln_version() const { return impl_->model.kiln_version; }
const std::map<std::string, std::string>& Engine::metadata() const { return impl_->model.metadata; }

std::vector<LayerInfo> Engine::layers() const {
    const plan::PlanModel& m = impl_->model;
    std::vector<LayerInfo> out;
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        LayerInfo li;
        li.name = n.name;
        li.op_type = n.op_type;
        li.domain = n.domain;
        li.backend = n.backend.empty() ? m.target_backend : n.backend;
        li.kernel = impl_->device ? impl_->device->describe(i) : impl_->kernels[i]->describe();
        li.fused_from = n.fused_from;
        auto desc = [&](int32_t id) {
            if (id < 0) return TensorDesc{"", DataType::kFloat32, {}};
            const plan::PlanValue& v = m.values[id];
            return TensorDesc{v.weight >= 0 ? "@" + v.name : v.name, v.dtype, v.dims};
        };
        for (int32_t id : n.inputs) li.inputs.push_back(desc(id));
        for (int32_t id : n.outputs) li.outputs.push_back(desc(id));
        for (auto& [k, a] : n.attrs.items()) li.attributes.emplace_back(k, attribute_str(a));
        out.push_back(std::move(li));
    }
    return out;
}

MemoryInfo Engine::memory() const {
    const plan::PlanModel& m = impl_->model;
    MemoryInfo mi;
    mi.planned = m.memory.valid;
    mi.arena_bytes = m.memory.arena_bytes;
    mi.naive_bytes = m.memory.naive_bytes;
    mi.lower_bound_bytes = m.memory.lower_bound_bytes;
    for (const Tensor& w : m.weights) mi.weight_bytes += w.bytes();
    return mi;
}

std::vector<uint8_t> Engine::serialize() const { return plan::serialize(impl_->model); }

void Engine::save(const std::string& path) const { plan::write_file_atomic(path, serialize()); }

std::shared_ptr<Engine> Runtime::deserialize(const std::vector<uint8_t>& bytes, const std::string& source) {
    return Engine::create(plan::deserialize(bytes.data(), bytes.size(), source), logger_);
}

std::shared_ptr<Engine> Runtime::load(const std::string& path) { return deserialize(plan::read_file(path), path); }

}  // namespace kiln

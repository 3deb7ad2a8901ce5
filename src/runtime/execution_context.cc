// ExecutionContext: validates inputs, then runs the plan node by node. Shapes are (re)inferred per run, so
// symbolic dims such as the batch take any size (a plan whose shapes are all static infers them once per context);
// activations are freed after their last use.
#include <chrono>
#include <cstring>
#include <map>
#include <new>

#include "src/common/check.h"
#include "src/ops/shape_utils.h"
#include "src/runtime/engine_impl.h"

namespace kiln {

struct ExecutionContext::Impl {
    std::shared_ptr<const Engine> engine;
    std::vector<Tensor> slots;
    Tensor arena;  // one activation block, allocated on the first run of a memory-planned engine
    int num_threads = 1;
    bool profiling = false;
    std::vector<std::pair<std::string, double>> profile;
    std::unique_ptr<backends::DeviceContext> device;  // created on the first run of a device engine
    bool cuda_graphs = true;
    std::map<std::string, Shape> input_shapes;    // set_input_shape
    std::map<std::string, void*> addresses;       // set_tensor_address
    // Output dtype and shape of every node from the last run, reused while the inputs keep their shapes when every
    // value of the plan has a static shape (then no output shape can depend on data): shape inference per node and
    // run cost about 1.5 us (the checks' messages, attribute parsing), a tenth of a small convolution.
    int all_static = -1;  // unknown yet
    std::vector<Shape> inferred_for;  // the input shapes the cache holds
    std::vector<std::vector<std::pair<DataType, Shape>>> inferred;

    backends::DeviceContext& device_context(const Engine::Impl& e) {
        if (!device) {
            device = e.device->create_context();
            device->set_profiling(profiling);
            device->set_graphs(cuda_graphs);
        }
        return *device;
    }
};

ExecutionContext::ExecutionContext(std::shared_ptr<const Engine> engine) : impl_(std::make_unique<Impl>()) {
    impl_->engine = std::move(engine);
}
ExecutionContext::~ExecutionContext() = default;

std::unique_ptr<ExecutionContext> Engine::create_context() const {
    return std::unique_ptr<ExecutionContext>(new ExecutionContext(shared_from_this()));
}

void ExecutionContext::set_num_threads(int n) { impl_->num_threads = n < 1 ? 1 : n; }
void ExecutionContext::set_profiling(bool on) {
    impl_->profiling = on;
    if (impl_->device) impl_->device->set_profiling(on);
}
std::vector<std::pair<std::string, double>> ExecutionContext::last_profile() const {
    return impl_->device ? impl_->device->last_profile() : impl_->profile;
}

void ExecutionContext::set_cuda_graphs(bool on) {
    impl_->cuda_graphs = on;
    if (impl_->device) impl_->device->set_graphs(on);
}
double ExecutionContext::last_gpu_ms() { return impl_->device ? impl_->device->last_gpu_ms() : 0.0; }

namespace {

const TensorDesc* find_desc(const std::vector<TensorDesc>& descs, const std::string& name) {
    for (const TensorDesc& d : descs)
        if (d.name == name) return &d;
    return nullptr;
}

std::string expected_names(const std::vector<TensorDesc>& descs) {
    std::vector<std::string> names;
    for (auto& d : descs) names.push_back(cat("'", d.name, "' ", dtype_name(d.dtype), "[", shape_str(d.dims), "]"));
    return join(names, ", ");
}

void check_inputs(const std::vector<TensorDesc>& descs, const std::map<std::string, Tensor>& inputs) {
    for (auto& [name, t] : inputs) {
        bool known = false;
        for (auto& d : descs) known |= d.name == name;
        KILN_CHECK(known, kInvalidArgument, "unknown input '", name, "'; the engine's inputs are ",
                   expected_names(descs));
    }
    std::map<std::string, int64_t> bound;  // symbol -> size, consistent across inputs
    for (auto& d : descs) {
        auto it = inputs.find(d.name);
        KILN_CHECK(it != inputs.end(), kInvalidArgument, "missing input '", d.name, "' (", dtype_name(d.dtype), "[",
                   shape_str(d.dims), "]); the engine's inputs are ", expected_names(descs));
        const Tensor& t = it->second;
        KILN_CHECK(t.dtype() == d.dtype, kInvalidArgument, "input '", d.name, "' has dtype ", dtype_name(t.dtype()),
                   ", expected ", dtype_name(d.dtype));
        KILN_CHECK(t.rank() == static_cast<int>(d.dims.size()), kInvalidArgument, "input '", d.name, "' has shape ",
                   shape_str(t.shape()), " (rank ", t.rank(), "), expected ", shape_str(d.dims), " (rank ",
                   d.dims.size(), ")");
        for (int i = 0; i < t.rank(); ++i) {
            const Dim& dim = d.dims[i];
            if (dim.is_static()) {
                KILN_CHECK(t.dim(i) == dim.value, kInvalidArgument, "input '", d.name, "' has shape ",
                           shape_str(t.shape()), ", expected ", shape_str(d.dims), " (dimension ", i, " must be ",
                           dim.value, ")");
            } else if (!dim.symbol.empty()) {
                auto [b, inserted] = bound.emplace(dim.symbol, t.dim(i));
                KILN_CHECK(inserted || b->second == t.dim(i), kInvalidArgument, "input '", d.name, "' has ",
                           dim.symbol, "=", t.dim(i), " but another input has ", dim.symbol, "=", b->second);
            }
        }
        KILN_CHECK(t.raw() != nullptr || t.numel() == 0, kInvalidArgument, "input '", d.name, "' has no data");
    }
}

}  // namespace

std::map<std::string, Tensor> ExecutionContext::run(const std::map<std::string, Tensor>& inputs) {
    const Engine::Impl& e = impl_->engine->impl();
    const plan::PlanModel& m = e.model;
    check_inputs(e.inputs, inputs);
    if (e.device) return impl_->device_context(e).run(inputs);

    std::vector<Tensor>& slots = impl_->slots;
    slots.assign(m.values.size(), Tensor());
    for (size_t i = 0; i < m.values.size(); ++i)
        if (m.values[i].weight >= 0) slots[i] = m.weights[m.values[i].weight];
    for (int32_t id : m.inputs) slots[id] = inputs.at(m.values[id].name);

    const plan::MemoryPlan& mem = m.memory;
    uint8_t* arena = nullptr;
    if (mem.valid && mem.arena_bytes > 0) {
        if (impl_->arena.numel() != static_cast<int64_t>(mem.arena_bytes))
            impl_->arena = Tensor(DataType::kUInt8, {static_cast<int64_t>(mem.arena_bytes)});
        arena = impl_->arena.data<uint8_t>();
    }
    impl_->profile.clear();
    if (impl_->all_static < 0) {
        impl_->all_static = 1;
        for (const plan::PlanValue& v : m.values) impl_->all_static &= is_static(v.dims) ? 1 : 0;
    }
    std::vector<Shape> input_shapes;
    for (int32_t id : m.inputs) input_shapes.push_back(slots[id].shape());
    const bool reuse_shapes = impl_->all_static == 1 && impl_->inferred.size() == m.nodes.size() &&
                              impl_->inferred_for == input_shapes;
    if (!reuse_shapes) {
        impl_->inferred.clear();
        impl_->inferred_for = input_shapes;
    }
    std::vector<ops::TensorInfo> infos;
    backends::KernelArgs args;
    args.num_threads = impl_->num_threads;
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        auto t0 = std::chrono::steady_clock::now();
        if (!reuse_shapes) infos.assign(n.inputs.size(), ops::TensorInfo());
        args.inputs.assign(n.inputs.size(), nullptr);
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            int32_t id = n.inputs[k];
            if (id < 0) {
                if (!reuse_shapes) infos[k].present = false;
                continue;
            }
            const Tensor& t = slots[id];
            args.inputs[k] = &t;
            if (reuse_shapes) continue;
            infos[k].dtype = t.dtype();
            infos[k].dims = to_sym(t.shape());
            infos[k].value = &t;
        }
        if (!reuse_shapes) {
            ops::InferContext ictx(n.name, n.op_type, n.attrs, infos, n.outputs.size());
            e.schemas[i]->infer(ictx);
            std::vector<std::pair<DataType, Shape>> outs;
            for (size_t k = 0; k < n.outputs.size(); ++k) {
                const ops::TensorInfo& o = ictx.outputs()[k];
                KILN_CHECK(is_static(o.dims), kInternal, "node '", n.name, "' (", n.op_type, "): output ", k,
                           " shape ", shape_str(o.dims), " is not known at run time");
                outs.emplace_back(o.dtype, ops::to_concrete(o.dims));
            }
            if (impl_->all_static == 1) impl_->inferred.push_back(outs);
            else impl_->inferred.assign(1, std::move(outs));  // this node's only
        }
        const std::vector<std::pair<DataType, Shape>>& outs =
            impl_->all_static == 1 ? impl_->inferred[i] : impl_->inferred[0];
        args.outputs.assign(n.outputs.size(), nullptr);
        try {
            for (size_t k = 0; k < n.outputs.size(); ++k) {
                const DataType o_dtype = outs[k].first;
                const Shape& o_shape = outs[k].second;
                int32_t id = n.outputs[k];
                int64_t offset = arena ? mem.offsets[id] : -1;
                const Layout layout = m.values[id].layout;
                if (offset >= 0) {
                    // planned: the tensor lives in the arena (zeroed unless the kernel writes all of it: some
                    // kernels rely on zeroed outputs). A blocked value has the logical shape but more bytes
                    // (channel padding).
                    slots[id] = Tensor::wrap(o_dtype, o_shape, arena + offset);
                    const size_t bytes = layout_bytes(layout, slots[id].shape(), dtype_size(o_dtype));
                    KILN_CHECK(offset + bytes <= mem.arena_bytes, kInvalidPlan, "node '", n.name, "': output ", k,
                               " does not fit the plan's memory layout");
                    bool in_place = !n.inputs.empty() && n.inputs[0] >= 0 && mem.offsets[n.inputs[0]] == offset;
                    if (!in_place && e.zero_outputs[i]) std::memset(arena + offset, 0, bytes);
                } else {
                    KILN_CHECK(layout == Layout::kPlain, kInvalidPlan, "node '", n.name, "': output ", k, " has layout ",
                               layout_name(layout), " but no place in the plan's memory layout");
                    // a graph output (or an unplanned value): no zeroing when the kernel writes all of it (GPT-2's
                    // logits are 26 MB per run)
                    slots[id] = e.zero_outputs[i] ? Tensor(o_dtype, o_shape) : Tensor::uninitialized(o_dtype, o_shape);
                }
                args.outputs[k] = &slots[n.outputs[k]];
            }
            e.kernels[i]->execute(args);
        } catch (const std::bad_alloc&) {
            KILN_FAIL(kOutOfMemory, "node '", n.name, "' (", n.op_type, "): out of memory");
        }
        for (int32_t id : n.inputs)
            if (id >= 0 && e.last_use[id] == static_cast<int>(i) && !e.is_output[id] && m.values[id].weight < 0)
                slots[id] = Tensor();
        if (impl_->profiling) {
            double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            impl_->profile.emplace_back(n.name, ms);
        }
    }
    std::map<std::string, Tensor> out;
    for (int32_t id : m.outputs) {
        Tensor& t = slots[id];
        // An output that is also an input or a weight is returned as a copy so callers never alias engine state.
        out[m.values[id].name] = (m.values[id].weight >= 0 || inputs.count(m.values[id].name)) ? t.clone() : t;
    }
    for (Tensor& t : slots) t = Tensor();
    return out;
}

// ---------------------------------------------------------------- caller-owned buffers

void ExecutionContext::set_input_shape(const std::string& name, const Shape& shape) {
    const Engine::Impl& e = impl_->engine->impl();
    KILN_CHECK(find_desc(e.inputs, name), kInvalidArgument, "set_input_shape: '", name,
               "' is not an input; the engine's inputs are ", expected_names(e.inputs));
    impl_->input_shapes[name] = shape;
}

void ExecutionContext::set_tensor_address(const std::string& name, void* address) {
    const Engine::Impl& e = impl_->engine->impl();
    KILN_CHECK(find_desc(e.inputs, name) || find_desc(e.outputs, name), kInvalidArgument, "set_tensor_address: '",
               name, "' is neither an input nor an output; inputs: ", expected_names(e.inputs),
               "; outputs: ", expected_names(e.outputs));
    KILN_CHECK(address, kInvalidArgument, "set_tensor_address: null address for '", name, "'");
    impl_->addresses[name] = address;
}

namespace {

// The bound inputs as tensors over the caller's memory (device or host), validated like run()'s inputs.
std::map<std::string, Tensor> bound_inputs(const Engine::Impl& e, const std::map<std::string, Shape>& shapes,
                                           const std::map<std::string, void*>& addresses) {
    std::map<std::string, Tensor> views;
    for (const TensorDesc& d : e.inputs) {
        auto s = shapes.find(d.name);
        Shape shape;
        if (s != shapes.end()) {
            shape = s->second;
        } else {
            KILN_CHECK(is_static(d.dims), kInvalidArgument, "input '", d.name, "' has symbolic dims ",
                       shape_str(d.dims), ": call set_input_shape first");
            shape = ops::to_concrete(d.dims);
        }
        auto a = addresses.find(d.name);
        KILN_CHECK(a != addresses.end(), kInvalidArgument, "input '", d.name, "' has no address: call ",
                   "set_tensor_address(\"", d.name, "\", ptr) first");
        views[d.name] = Tensor::wrap(d.dtype, shape, a->second);
    }
    check_inputs(e.inputs, views);
    return views;
}

}  // namespace

Shape ExecutionContext::output_shape(const std::string& name) {
    const Engine::Impl& e = impl_->engine->impl();
    KILN_CHECK(find_desc(e.outputs, name), kInvalidArgument, "output_shape: '", name,
               "' is not an output; the engine's outputs are ", expected_names(e.outputs));
    std::map<std::string, Shape> shapes;
    for (const TensorDesc& d : e.inputs) {
        auto s = impl_->input_shapes.find(d.name);
        KILN_CHECK(s != impl_->input_shapes.end() || is_static(d.dims), kInvalidArgument, "output_shape('", name,
                   "'): input '", d.name, "' has symbolic dims ", shape_str(d.dims), "; call set_input_shape first");
        shapes[d.name] = s != impl_->input_shapes.end() ? s->second : ops::to_concrete(d.dims);
    }
    if (e.device) return impl_->device_context(e).output_shapes(shapes).at(name);
    // host engine: run shape inference through a dry run would need values; use zero-filled inputs instead
    std::map<std::string, Tensor> zeros;
    for (const TensorDesc& d : e.inputs) {
        Tensor t(d.dtype, shapes[d.name]);
        if (t.bytes()) std::memset(t.raw(), 0, t.bytes());
        zeros[d.name] = std::move(t);
    }
    return run(zeros).at(name).shape();
}

void ExecutionContext::enqueue(void* cuda_stream) {
    const Engine::Impl& e = impl_->engine->impl();
    std::map<std::string, Tensor> views = bound_inputs(e, impl_->input_shapes, impl_->addresses);
    std::map<std::string, void*> outs;
    for (const TensorDesc& d : e.outputs) {
        auto a = impl_->addresses.find(d.name);
        KILN_CHECK(a != impl_->addresses.end(), kInvalidArgument, "output '", d.name, "' has no address: call ",
                   "set_tensor_address(\"", d.name, "\", ptr) with a buffer of output_shape(\"", d.name,
                   "\") elements first");
        outs[d.name] = a->second;
    }
    if (e.device) return impl_->device_context(e).enqueue(views, outs, cuda_stream);
    std::map<std::string, Tensor> results = run(views);
    for (auto& [name, t] : results)
        if (t.bytes()) std::memcpy(outs[name], t.raw(), t.bytes());
}

}  // namespace kiln

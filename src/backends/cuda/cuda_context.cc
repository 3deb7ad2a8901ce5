// The CUDA device context: runs a plan on one stream. Shapes are inferred on the host per node exactly as the host
// runtime does; device nodes launch on the stream, host nodes (placed on "reference") run on host copies of their
// inputs. A run that needs no host work and no allocation outside the arena is captured in a CUDA graph on its
// second call with the same shapes and addresses, and replayed from then on.
#include <cstring>

#include "src/backends/cuda/cuda_executor.h"
#include "src/ops/shape_utils.h"

namespace kiln::cuda {

namespace {

constexpr size_t kMaxGraphs = 16;  // captured (shapes, addresses) signatures kept per context

size_t round_up(size_t bytes) { return (bytes + 255) & ~size_t(255); }

}  // namespace

#define CTX_CHECK(call) KILN_CUDA_CHECK(call, "cuda context")

CudaContext::CudaContext(const CudaExecutor& e) : e_(e) {
    CTX_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    KILN_CHECK(cublasLtCreate(&lt_) == CUBLAS_STATUS_SUCCESS, kInternal, "cuda context: cublasLtCreate failed");
    KILN_CHECK(cudnnCreate(&dnn_) == CUDNN_STATUS_SUCCESS, kInternal, "cuda context: cudnnCreate failed");
    KILN_CHECK(cudnnSetStream(dnn_, stream_) == CUDNN_STATUS_SUCCESS, kInternal, "cuda context: cudnnSetStream");
    CTX_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
    const plan::MemoryPlan& mem = e_.m_.memory;
    if (mem.valid && mem.arena_bytes > 0) CTX_CHECK(cudaMalloc(&arena_, mem.arena_bytes));
    input_bufs_.assign(e_.m_.inputs.size(), nullptr);
    input_buf_bytes_.assign(e_.m_.inputs.size(), 0);
    output_index_.assign(e_.m_.values.size(), -1);
    for (size_t k = 0; k < e_.m_.outputs.size(); ++k) output_index_[e_.m_.outputs[k]] = static_cast<int32_t>(k);
    CTX_CHECK(cudaEventCreate(&ev_start_));
    CTX_CHECK(cudaEventCreate(&ev_end_));
    CTX_CHECK(cudaEventCreateWithFlags(&ev_sync_, cudaEventDisableTiming));
}

CudaContext::~CudaContext() {
    if (stream_) cudaStreamSynchronize(stream_);
    free_owned();
    clear_graphs();
    for (cudaEvent_t ev : {ev_start_, ev_end_, ev_sync_})
        if (ev) cudaEventDestroy(ev);
    for (void* p : input_bufs_)
        if (p) cudaFree(p);
    if (pinned_) cudaFreeHost(pinned_);
    if (arena_) cudaFree(arena_);
    if (workspace_) cudaFree(workspace_);
    if (dnn_) cudnnDestroy(dnn_);
    if (lt_) cublasLtDestroy(lt_);
    if (stream_) cudaStreamDestroy(stream_);
}

void CudaContext::clear_graphs() {
    for (auto& [key, g] : graphs_)
        if (g.exec) cudaGraphExecDestroy(g.exec);
    graphs_.clear();
    eager_runs_.clear();
}

void CudaContext::set_graphs(bool on) {
    graphs_on_ = on;
    if (!on) clear_graphs();
}

double CudaContext::last_gpu_ms() {
    if (!timed_) return 0.0;
    float ms = 0.f;
    KILN_CUDA_CHECK(cudaEventSynchronize(ev_end_), "timing the last run");
    KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, ev_start_, ev_end_), "timing the last run");
    return ms;
}

void* CudaContext::staging(size_t bytes) {
    if (bytes > pinned_bytes_) {
        if (pinned_) cudaFreeHost(pinned_);
        pinned_ = nullptr;
        pinned_bytes_ = 0;
        CTX_CHECK(cudaMallocHost(&pinned_, bytes));
        pinned_bytes_ = bytes;
    }
    return pinned_;
}

void* CudaContext::alloc_value(int32_t id, size_t bytes, const std::string& what, const std::vector<void*>& out_dev) {
    const plan::MemoryPlan& mem = e_.m_.memory;
    Slot& s = slots_[id];
    s.dev_owned = false;
    if (output_index_[id] >= 0 && out_dev[output_index_[id]]) {  // the caller's buffer: written in place
        s.dev = out_dev[output_index_[id]];
    } else if (arena_ && mem.offsets[id] >= 0) {
        KILN_CHECK(mem.offsets[id] + bytes <= mem.arena_bytes, kInvalidPlan, what, ": value '",
                   e_.m_.values[id].name, "' does not fit the plan's memory layout");
        s.dev = static_cast<char*>(arena_) + mem.offsets[id];
    } else {
        KILN_CUDA_CHECK(cudaMallocAsync(&s.dev, bytes ? bytes : 1, stream_), what);
        s.dev_owned = true;
    }
    return s.dev;
}

void* CudaContext::device_of(int32_t id, Slot& s, bool* capturable) {
    if (s.dev) return s.dev;
    const std::string what = cat("uploading '", e_.m_.values[id].name, "'");
    alloc_value(id, s.host.bytes(), what, std::vector<void*>(e_.m_.outputs.size(), nullptr));
    *capturable = false;
    if (s.host.bytes()) {
        // pageable source: cudaMemcpyAsync stages it synchronously, so the host tensor may go away afterwards
        KILN_CUDA_CHECK(cudaMemcpyAsync(s.dev, s.host.raw(), s.host.bytes(), cudaMemcpyHostToDevice, stream_), what);
    }
    return s.dev;
}

void CudaContext::host_of(Slot& s, const std::string& what) {
    if (s.has_host) return;
    s.host = Tensor(s.dtype, s.shape);
    if (s.host.bytes())
        KILN_CUDA_CHECK(cudaMemcpyAsync(s.host.raw(), s.dev, s.host.bytes(), cudaMemcpyDeviceToHost, stream_), what);
    s.has_host = true;
}

void CudaContext::free_owned() {
    for (Slot& s : slots_) {
        if (s.dev_owned && s.dev) cudaFreeAsync(s.dev, stream_);
        s.dev_owned = false;
    }
}

std::map<std::string, Shape> CudaContext::output_shapes(const std::map<std::string, Shape>& input_shapes) {
    const plan::PlanModel& m = e_.m_;
    std::vector<ops::TensorInfo> vals(m.values.size());
    for (size_t i = 0; i < m.values.size(); ++i)
        if (m.values[i].weight >= 0) vals[i] = backends::plan_value_info(m, static_cast<int32_t>(i));
    for (int32_t id : m.inputs) {
        vals[id].dtype = m.values[id].dtype;
        vals[id].dims = to_sym(input_shapes.at(m.values[id].name));
    }
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        std::vector<ops::TensorInfo> infos(n.inputs.size());
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            if (n.inputs[k] < 0) infos[k].present = false;
            else infos[k] = vals[n.inputs[k]];
        }
        ops::InferContext ictx(n.name, n.op_type, n.attrs, infos, n.outputs.size());
        e_.schemas_[i]->infer(ictx);
        for (size_t k = 0; k < n.outputs.size(); ++k) {
            ops::TensorInfo o = ictx.outputs()[k];
            KILN_CHECK(is_static(o.dims), kUnsupported, "node '", n.name, "' (", n.op_type, "): its output shape ",
                       shape_str(o.dims), " depends on input values, so output shapes are not known before running; ",
                       "use run() with host tensors for this engine");
            o.value = nullptr;
            vals[n.outputs[k]] = o;
        }
    }
    std::map<std::string, Shape> out;
    for (int32_t id : m.outputs) out[m.values[id].name] = ops::to_concrete(vals[id].dims);
    return out;
}

// ---------------------------------------------------------------- running

void CudaContext::run_node(size_t i, const std::vector<void*>& out_dev, bool* capturable) {
    const plan::PlanModel& m = e_.m_;
    const plan::PlanNode& n = m.nodes[i];
    const std::string where = cat("node '", n.name, "' (", n.op_type, ")");
    const bool on_device = e_.dev_kernels_[i] != nullptr;
    std::vector<ops::TensorInfo> infos;
    // shape inference on the host, exactly as the host runtime does it
    auto infer = [&](bool with_values) {
        infos.assign(n.inputs.size(), ops::TensorInfo());
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            int32_t id = n.inputs[k];
            if (id < 0) {
                infos[k].present = false;
                continue;
            }
            Slot& s = slots_[id];
            if (with_values && !s.has_host) {
                host_of(s, where);
                *capturable = false;
                KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), where);
            }
            infos[k].dtype = e_.low_value_[id] != DataType::kFloat32 ? DataType::kFloat32 : s.dtype;
            infos[k].dims = to_sym(s.shape);
            infos[k].value = s.has_host ? &s.host : nullptr;
        }
        ops::InferContext ictx(n.name, n.op_type, n.attrs, infos, n.outputs.size());
        e_.schemas_[i]->infer(ictx);
        return ictx.outputs();
    };
    // Shape and Size read dims only: their device inputs are never copied back
    const bool dims_only = n.op_type == "Shape" || n.op_type == "Size";
    std::vector<ops::TensorInfo> outs = infer(!on_device && !dims_only);
    bool static_out = true;
    for (auto& o : outs) static_out &= is_static(o.dims);
    if (!static_out) outs = infer(true);  // a value of a device tensor decides a shape: read it back
    for (size_t k = 0; k < outs.size(); ++k)
        KILN_CHECK(is_static(outs[k].dims), kInternal, where, ": output ", k, " shape ", shape_str(outs[k].dims),
                   " is not known at run time");
    if (on_device) {
        std::vector<DevTensor> din(n.inputs.size()), dout(n.outputs.size());
        std::vector<const DevTensor*> pin(n.inputs.size(), nullptr);
        std::vector<DevTensor*> pout(n.outputs.size(), nullptr);
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            int32_t id = n.inputs[k];
            if (id < 0) continue;
            Slot& s = slots_[id];
            din[k] = DevTensor{device_of(id, s, capturable), s.dtype, s.shape, s.has_host ? &s.host : nullptr};
            pin[k] = &din[k];
        }
        for (size_t k = 0; k < n.outputs.size(); ++k) {
            int32_t id = n.outputs[k];
            Slot& s = slots_[id];
            s.dtype = e_.low_value_[id] != DataType::kFloat32 ? e_.low_value_[id] : outs[k].dtype;
            s.shape = ops::to_concrete(outs[k].dims);
            size_t bytes = static_cast<size_t>(shape_numel(s.shape)) * dtype_size(s.dtype);
            dout[k] = DevTensor{alloc_value(id, bytes, where, out_dev), s.dtype, s.shape, nullptr};
            *capturable &= !s.dev_owned;
            pout[k] = &dout[k];
        }
        RunCtx rc{stream_, lt_, dnn_, workspace_, kWorkspaceBytes, &n.name};
        try {
            e_.dev_kernels_[i]->run(rc, pin, pout);
        } catch (const Error& err) {
            if (std::string(err.what()).find(n.name) != std::string::npos) throw;
            throw Error(err.code(), cat(where, ": ", err.what()));
        }
        KILN_CUDA_CHECK(cudaGetLastError(), where);
    } else {
        *capturable = false;
        backends::KernelArgs args;
        args.inputs.assign(n.inputs.size(), nullptr);
        std::vector<Tensor> dims_views(n.inputs.size());
        bool copied = false;
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            int32_t id = n.inputs[k];
            if (id < 0) continue;
            Slot& s = slots_[id];
            if (dims_only && !s.has_host) {
                dims_views[k] = Tensor::wrap(s.dtype, s.shape, nullptr);
                args.inputs[k] = &dims_views[k];
                continue;
            }
            copied |= !s.has_host;
            host_of(s, where);
            args.inputs[k] = &s.host;
        }
        if (copied) KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), where);
        for (size_t k = 0; k < n.outputs.size(); ++k) {
            Slot& s = slots_[n.outputs[k]];
            s.dtype = outs[k].dtype;
            s.shape = ops::to_concrete(outs[k].dims);
            s.host = Tensor(s.dtype, s.shape);
            s.has_host = true;
            args.outputs.push_back(&s.host);
        }
        e_.host_kernels_[i]->execute(args);
    }
    for (int32_t id : n.inputs) {
        if (id < 0 || e_.last_use_[id] != static_cast<int>(i) || e_.is_output_[id] || m.values[id].weight >= 0)
            continue;
        Slot& s = slots_[id];
        if (s.dev_owned && s.dev) KILN_CUDA_CHECK(cudaFreeAsync(s.dev, stream_), where);
        s = Slot();
    }
}

bool CudaContext::execute(const std::vector<InputBind>& in, const std::vector<void*>& out_dev) {
    const plan::PlanModel& m = e_.m_;
    slots_.assign(m.values.size(), Slot());
    for (size_t i = 0; i < m.values.size(); ++i) {
        const plan::PlanValue& v = m.values[i];
        if (v.weight < 0) continue;
        Slot& s = slots_[i];
        s.host = m.weights[v.weight];
        s.has_host = true;
        s.dtype = s.host.dtype();
        s.shape = s.host.shape();
        s.dev = e_.weights_dev_[v.weight];
    }
    for (size_t k = 0; k < m.inputs.size(); ++k) {
        Slot& s = slots_[m.inputs[k]];
        s.dtype = in[k].dtype;
        s.shape = in[k].shape;
        s.dev = in[k].dev;
        if (in[k].host) s.host = *in[k].host, s.has_host = true;
    }
    bool capturable = true;
    std::vector<cudaEvent_t> events;
    struct EventGuard {
        std::vector<cudaEvent_t>& ev;
        ~EventGuard() {
            for (cudaEvent_t e : ev) cudaEventDestroy(e);
        }
    } event_guard{events};
    auto mark = [&](const std::string& what) {
        cudaEvent_t ev;
        KILN_CUDA_CHECK(cudaEventCreate(&ev), what);
        events.push_back(ev);
        KILN_CUDA_CHECK(cudaEventRecord(ev, stream_), what);
    };
    profile_.clear();
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        if (profiling_) mark(m.nodes[i].name);
        run_node(i, out_dev, &capturable);
    }
    for (int32_t id : m.outputs) capturable &= !slots_[id].has_host;
    if (profiling_) {
        mark("profiling");
        KILN_CUDA_CHECK(cudaEventSynchronize(events.back()), "profiling");
        for (size_t i = 0; i + 1 < events.size(); ++i) {
            float ms = 0.f;
            cudaEventElapsedTime(&ms, events[i], events[i + 1]);
            profile_.emplace_back(m.nodes[i].name, ms);
        }
    }
    return capturable;
}

void CudaContext::launch(const std::vector<InputBind>& in, const std::vector<void*>& out_dev) {
    const plan::PlanModel& m = e_.m_;
    std::string key;
    for (const InputBind& b : in) key += cat(shape_str(b.shape), "@", reinterpret_cast<uintptr_t>(b.dev), ";");
    for (void* p : out_dev) key += cat(reinterpret_cast<uintptr_t>(p), ";");
    timed_ = false;
    const bool use_graphs = graphs_on_ && !profiling_;
    auto replay = [&](const Graph& g) {
        KILN_CUDA_CHECK(cudaEventRecord(ev_start_, stream_), "replaying the CUDA graph");
        KILN_CUDA_CHECK(cudaGraphLaunch(g.exec, stream_), "replaying the CUDA graph");
        KILN_CUDA_CHECK(cudaEventRecord(ev_end_, stream_), "replaying the CUDA graph");
        timed_ = true;
        slots_.assign(m.values.size(), Slot());
        for (size_t k = 0; k < m.outputs.size(); ++k) slots_[m.outputs[k]] = g.outputs[k];
    };
    if (use_graphs) {
        auto it = graphs_.find(key);
        if (it != graphs_.end()) return replay(it->second);
        if (eager_runs_[key] >= 1) {
            // second capturable call with these shapes and addresses: capture, instantiate, replay
            if (graphs_.size() >= kMaxGraphs) clear_graphs();
            KILN_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "capturing a CUDA graph");
            bool ok = false;
            try {
                ok = execute(in, out_dev);
            } catch (...) {
                cudaGraph_t g = nullptr;
                cudaStreamEndCapture(stream_, &g);
                if (g) cudaGraphDestroy(g);
                cudaGetLastError();
                eager_runs_[key] = -1;  // never again for this signature
                throw;
            }
            cudaGraph_t g = nullptr;
            cudaError_t err = cudaStreamEndCapture(stream_, &g);
            Graph entry;
            if (ok && err == cudaSuccess && g && cudaGraphInstantiate(&entry.exec, g, 0) == cudaSuccess) {
                cudaGraphDestroy(g);
                for (int32_t id : m.outputs) entry.outputs.push_back(slots_[id]);
                auto& stored = graphs_[key] = std::move(entry);
                return replay(stored);
            }
            if (g) cudaGraphDestroy(g);
            cudaGetLastError();
            eager_runs_[key] = -1;  // the capture failed: run this signature eagerly from now on
        }
    }
    KILN_CUDA_CHECK(cudaEventRecord(ev_start_, stream_), "running the plan on the GPU");
    bool capturable = execute(in, out_dev);
    KILN_CUDA_CHECK(cudaEventRecord(ev_end_, stream_), "running the plan on the GPU");
    timed_ = true;
    int& runs = eager_runs_[key];
    if (use_graphs && capturable && runs >= 0) ++runs;
}

std::map<std::string, Tensor> CudaContext::run(const std::map<std::string, Tensor>& inputs) {
    const plan::PlanModel& m = e_.m_;
    struct Guard {  // on any failure: wait for the stream, then release this run's allocations
        CudaContext* c;
        ~Guard() {
            cudaStreamSynchronize(c->stream_);
            c->free_owned();
        }
    } guard{this};
    // inputs: host -> pinned staging -> the context's input buffers (one staging block for all inputs)
    size_t total = 0;
    for (int32_t id : m.inputs) total += round_up(inputs.at(m.values[id].name).bytes());
    char* stage = static_cast<char*>(staging(std::max<size_t>(total, 256)));
    std::vector<InputBind> in(m.inputs.size());
    for (size_t k = 0; k < m.inputs.size(); ++k) {
        int32_t id = m.inputs[k];
        const Tensor& t = inputs.at(m.values[id].name);
        if (input_buf_bytes_[k] < t.bytes()) {
            if (input_bufs_[k]) KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), "input buffers");
            if (input_bufs_[k]) cudaFree(input_bufs_[k]);
            input_bufs_[k] = nullptr;
            input_buf_bytes_[k] = 0;
            KILN_CUDA_CHECK(cudaMalloc(&input_bufs_[k], t.bytes()), cat("input '", m.values[id].name, "'"));
            input_buf_bytes_[k] = t.bytes();
        }
        in[k] = InputBind{input_bufs_[k], t.dtype(), t.shape(), &t};
        if (t.bytes()) {
            std::memcpy(stage, t.raw(), t.bytes());
            KILN_CUDA_CHECK(cudaMemcpyAsync(in[k].dev, stage, t.bytes(), cudaMemcpyHostToDevice, stream_),
                            cat("input '", m.values[id].name, "'"));
        }
        stage += round_up(t.bytes());
    }
    launch(in, std::vector<void*>(m.outputs.size(), nullptr));
    // outputs: device -> pinned staging -> host tensors
    total = 0;
    for (int32_t id : m.outputs)
        if (!slots_[id].has_host) total += round_up(shape_numel(slots_[id].shape) * dtype_size(slots_[id].dtype));
    stage = static_cast<char*>(staging(std::max<size_t>(total, 256)));
    std::vector<std::pair<int32_t, char*>> pending;
    for (int32_t id : m.outputs) {
        Slot& s = slots_[id];
        if (s.has_host) continue;
        size_t bytes = static_cast<size_t>(shape_numel(s.shape)) * dtype_size(s.dtype);
        if (bytes)
            KILN_CUDA_CHECK(cudaMemcpyAsync(stage, s.dev, bytes, cudaMemcpyDeviceToHost, stream_),
                            cat("output '", m.values[id].name, "'"));
        pending.emplace_back(id, stage);
        stage += round_up(bytes);
    }
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), "running the plan on the GPU");
    std::map<std::string, Tensor> out;
    for (auto& [id, src] : pending) {
        Slot& s = slots_[id];
        Tensor t(s.dtype, s.shape);
        std::memcpy(t.raw(), src, t.bytes());
        out[m.values[id].name] = std::move(t);
    }
    for (int32_t id : m.outputs) {
        const std::string& name = m.values[id].name;
        if (out.count(name)) continue;
        Slot& s = slots_[id];
        // an output that is also an input or a weight is returned as a copy so callers never alias engine state
        out[name] = (m.values[id].weight >= 0 || inputs.count(name)) ? s.host.clone() : s.host;
    }
    return out;
}

void CudaContext::enqueue(const std::map<std::string, Tensor>& inputs, const std::map<std::string, void*>& outputs,
                          void* stream) {
    const plan::PlanModel& m = e_.m_;
    cudaStream_t user = static_cast<cudaStream_t>(stream);
    if (user && user != stream_) {  // start after the caller's earlier work on its stream
        KILN_CUDA_CHECK(cudaEventRecord(ev_sync_, user), "enqueue");
        KILN_CUDA_CHECK(cudaStreamWaitEvent(stream_, ev_sync_, 0), "enqueue");
    }
    std::vector<InputBind> in(m.inputs.size());
    for (size_t k = 0; k < m.inputs.size(); ++k) {
        const Tensor& t = inputs.at(m.values[m.inputs[k]].name);
        in[k] = InputBind{const_cast<void*>(t.raw()), t.dtype(), t.shape(), nullptr};
    }
    std::vector<void*> out_dev(m.outputs.size(), nullptr);
    for (size_t k = 0; k < m.outputs.size(); ++k) out_dev[k] = outputs.at(m.values[m.outputs[k]].name);
    try {
        launch(in, out_dev);
        for (size_t k = 0; k < m.outputs.size(); ++k) {  // outputs not written in place (made on the host, aliases)
            Slot& s = slots_[m.outputs[k]];
            size_t bytes = static_cast<size_t>(shape_numel(s.shape)) * dtype_size(s.dtype);
            const std::string what = cat("output '", m.values[m.outputs[k]].name, "'");
            if (s.has_host && s.dev != out_dev[k] && bytes)
                KILN_CUDA_CHECK(cudaMemcpyAsync(out_dev[k], s.host.raw(), bytes, cudaMemcpyHostToDevice, stream_),
                                what);
            else if (s.dev != out_dev[k] && bytes)
                KILN_CUDA_CHECK(cudaMemcpyAsync(out_dev[k], s.dev, bytes, cudaMemcpyDeviceToDevice, stream_), what);
        }
        free_owned();
    } catch (...) {
        cudaStreamSynchronize(stream_);
        free_owned();
        throw;
    }
    if (user && user != stream_) {  // the caller's later work on its stream waits for this inference
        KILN_CUDA_CHECK(cudaEventRecord(ev_sync_, stream_), "enqueue");
        KILN_CUDA_CHECK(cudaStreamWaitEvent(user, ev_sync_, 0), "enqueue");
    } else {
        KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), "running the plan on the GPU");
    }
}

}  // namespace kiln::cuda

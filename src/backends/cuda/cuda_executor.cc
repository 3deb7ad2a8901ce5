// The CUDA device executor (one per Engine: weights uploaded once, kernels created once) and its device context
// (one per ExecutionContext: stream, cuBLASLt/cuDNN handles, workspace, activation arena, pinned staging buffers).
// A context runs the whole plan: shapes are inferred on the host per node exactly as the host runtime does, device
// nodes launch on the stream, host nodes (placed on "reference") run on host copies of their inputs.
#include <cublasLt.h>
#include <cudnn.h>

#include <cstring>
#include <map>

#include "src/backends/cuda/cuda_common.h"
#include "src/backends/device_executor.h"
#include "src/ops/op_schema.h"
#include "src/ops/shape_utils.h"

namespace kiln::cuda {

namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

class CudaExecutor;

class CudaContext : public backends::DeviceContext {
public:
    explicit CudaContext(const CudaExecutor& e);
    ~CudaContext() override;
    std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs) override;
    void set_profiling(bool on) override { profiling_ = on; }
    std::vector<std::pair<std::string, double>> last_profile() const override { return profile_; }

private:
    struct Slot {
        DataType dtype = DataType::kFloat32;
        Shape shape;
        Tensor host;
        bool has_host = false;
        void* dev = nullptr;
        bool dev_owned = false;  // cudaMallocAsync'd by this run
    };
    void* device_of(int32_t id, Slot& s);   // uploads a host-only value
    void host_of(Slot& s, const std::string& what);  // downloads a device-only value (async; caller syncs)
    void* alloc_value(int32_t id, size_t bytes, const std::string& what);
    void free_owned();
    void* staging(size_t bytes);

    const CudaExecutor& e_;
    cudaStream_t stream_ = nullptr;
    cublasLtHandle_t lt_ = nullptr;
    cudnnHandle_t dnn_ = nullptr;
    void* workspace_ = nullptr;
    void* arena_ = nullptr;
    void* pinned_ = nullptr;
    size_t pinned_bytes_ = 0;
    std::vector<void*> input_bufs_;
    std::vector<size_t> input_buf_bytes_;
    std::vector<Slot> slots_;
    bool profiling_ = false;
    std::vector<std::pair<std::string, double>> profile_;
};

class CudaExecutor : public backends::DeviceExecutor {
public:
    CudaExecutor(const plan::PlanModel& m, Logger& logger) : m_(m) {
        int count = 0;
        cudaError_t err = cudaGetDeviceCount(&count);
        if (err != cudaSuccess || count == 0) {
            cudaGetLastError();  // clear the sticky error
            const char* why = err == cudaSuccess ? "0 devices" : cudaGetErrorString(err);
            KILN_FAIL(kUnsupported, "no CUDA device found (", why,
                      "): this plan targets the CUDA backend; run it on a machine with an NVIDIA GPU and driver, or ",
                      "build it for --backend cpu");
        }
        auto it = m.metadata.find("precision");
        fp16_ = it != m.metadata.end() && it->second == "fp16";
        try {
            build(logger);
        } catch (...) {
            release();
            throw;
        }
    }
    ~CudaExecutor() override { release(); }

    std::unique_ptr<backends::DeviceContext> create_context() const override {
        return std::make_unique<CudaContext>(*this);
    }
    std::string describe(size_t node) const override {
        if (dev_kernels_[node]) return dev_kernels_[node]->describe();
        std::string d = host_kernels_[node] ? host_kernels_[node]->describe() : "";
        return d.empty() ? "host" : d + " (host)";
    }

private:
    friend class CudaContext;

    void build(Logger& logger) {
        size_t nn = m_.nodes.size();
        weights_dev_.assign(m_.weights.size(), nullptr);
        for (size_t w = 0; w < m_.weights.size(); ++w)
            weights_dev_[w] = upload(m_.weights[w].raw(), m_.weights[w].bytes(), cat("weight ", w));
        last_use_.assign(m_.values.size(), -1);
        is_output_.assign(m_.values.size(), 0);
        for (int32_t o : m_.outputs) is_output_[o] = 1;
        cudnnHandle_t tuning = nullptr;
        if (cudnnCreate(&tuning) != CUDNN_STATUS_SUCCESS) tuning = nullptr;
        std::map<std::string, std::unique_ptr<backends::Backend>> host_backends;
        dev_kernels_.resize(nn);
        host_kernels_.resize(nn);
        try {
            for (size_t i = 0; i < nn; ++i) {
                const plan::PlanNode& n = m_.nodes[i];
                const ops::OpSchema* schema = ops::find_schema(n.op_type);
                KILN_CHECK(schema, kUnsupported, "node '", n.name, "': op '", n.op_type, "' is not supported");
                schemas_.push_back(schema);
                backends::KernelNode kn{n.name, n.op_type, n.attrs, {}, {}};
                for (int32_t id : n.inputs) {
                    kn.inputs.push_back(backends::plan_value_info(m_, id));
                    if (id >= 0) last_use_[id] = static_cast<int>(i);
                }
                for (int32_t id : n.outputs) kn.outputs.push_back(backends::plan_value_info(m_, id));
                std::string backend = n.backend.empty() ? m_.target_backend : n.backend;
                try {
                    if (backend == "cuda") {
                        KernelRequest r{kn, {}, fp16_, tuning};
                        for (int32_t id : n.inputs) {
                            WeightView wv;
                            if (id >= 0 && m_.values[id].weight >= 0) {
                                wv.host = &m_.weights[m_.values[id].weight];
                                wv.device = weights_dev_[m_.values[id].weight];
                            }
                            r.weights.push_back(wv);
                        }
                        if (supports_gemm(kn)) dev_kernels_[i] = make_gemm(r);
                        else if (supports_conv(kn)) dev_kernels_[i] = make_conv(r);
                        else if (supports_simple(kn)) dev_kernels_[i] = make_simple(r);
                        else KILN_FAIL(kUnsupported, kn.where(), ": not supported by backend 'cuda'");
                    } else {
                        auto& b = host_backends[backend];
                        if (!b) b = backends::make_backend(backend);
                        KILN_CHECK(b->supports(kn), kUnsupported, kn.where(), ": not supported by backend '",
                                   backend, "'");
                        host_kernels_[i] = b->create_kernel(kn);
                    }
                } catch (const Error& err) {
                    if (std::string(err.what()).find(n.name) != std::string::npos) throw;
                    throw Error(err.code(), cat(kn.where(), ": ", err.what()));
                }
            }
        } catch (...) {
            if (tuning) cudnnDestroy(tuning);
            throw;
        }
        if (tuning) cudnnDestroy(tuning);
        size_t on_device = 0;
        for (auto& k : dev_kernels_) on_device += k != nullptr;
        logger.log(Severity::kVerbose,
                   cat("cuda: ", on_device, " of ", nn, " nodes on the GPU", fp16_ ? " (fp16)" : ""));
    }

    void release() {
        dev_kernels_.clear();
        for (void* p : weights_dev_)
            if (p) cudaFree(p);
        weights_dev_.clear();
    }

    const plan::PlanModel& m_;
    bool fp16_ = false;
    std::vector<void*> weights_dev_;
    std::vector<const ops::OpSchema*> schemas_;
    std::vector<std::unique_ptr<DeviceKernel>> dev_kernels_;
    std::vector<std::unique_ptr<backends::Kernel>> host_kernels_;
    std::vector<int> last_use_;
    std::vector<char> is_output_;
};

// ---------------------------------------------------------------- context

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
}

CudaContext::~CudaContext() {
    if (stream_) cudaStreamSynchronize(stream_);
    free_owned();
    for (void* p : input_bufs_)
        if (p) cudaFree(p);
    if (pinned_) cudaFreeHost(pinned_);
    if (arena_) cudaFree(arena_);
    if (workspace_) cudaFree(workspace_);
    if (dnn_) cudnnDestroy(dnn_);
    if (lt_) cublasLtDestroy(lt_);
    if (stream_) cudaStreamDestroy(stream_);
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

void* CudaContext::alloc_value(int32_t id, size_t bytes, const std::string& what) {
    const plan::MemoryPlan& mem = e_.m_.memory;
    Slot& s = slots_[id];
    if (arena_ && mem.offsets[id] >= 0) {
        KILN_CHECK(mem.offsets[id] + bytes <= mem.arena_bytes, kInvalidPlan, what, ": value '",
                   e_.m_.values[id].name, "' does not fit the plan's memory layout");
        s.dev = static_cast<char*>(arena_) + mem.offsets[id];
        s.dev_owned = false;
    } else {
        KILN_CUDA_CHECK(cudaMallocAsync(&s.dev, bytes ? bytes : 1, stream_), what);
        s.dev_owned = true;
    }
    return s.dev;
}

void* CudaContext::device_of(int32_t id, Slot& s) {
    if (s.dev) return s.dev;
    const std::string what = cat("uploading '", e_.m_.values[id].name, "'");
    alloc_value(id, s.host.bytes(), what);
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
        s = Slot();
    }
}

std::map<std::string, Tensor> CudaContext::run(const std::map<std::string, Tensor>& inputs) {
    const plan::PlanModel& m = e_.m_;
    slots_.assign(m.values.size(), Slot());
    struct Guard {  // on any failure: wait for the stream, then release this run's allocations
        CudaContext* c;
        ~Guard() {
            cudaStreamSynchronize(c->stream_);
            c->free_owned();
        }
    } guard{this};
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
    // inputs: host -> pinned staging -> device (one staging block for all inputs)
    size_t total = 0;
    for (int32_t id : m.inputs) total += (inputs.at(m.values[id].name).bytes() + 255) & ~size_t(255);
    char* stage = static_cast<char*>(staging(std::max<size_t>(total, 256)));
    for (size_t k = 0; k < m.inputs.size(); ++k) {
        int32_t id = m.inputs[k];
        const Tensor& t = inputs.at(m.values[id].name);
        Slot& s = slots_[id];
        s.host = t;
        s.has_host = true;
        s.dtype = t.dtype();
        s.shape = t.shape();
        if (input_buf_bytes_[k] < t.bytes()) {
            if (input_bufs_[k]) cudaFree(input_bufs_[k]);
            input_bufs_[k] = nullptr;
            input_buf_bytes_[k] = 0;
            KILN_CUDA_CHECK(cudaMalloc(&input_bufs_[k], t.bytes()), cat("input '", m.values[id].name, "'"));
            input_buf_bytes_[k] = t.bytes();
        }
        s.dev = input_bufs_[k];
        if (t.bytes()) {
            std::memcpy(stage, t.raw(), t.bytes());
            KILN_CUDA_CHECK(cudaMemcpyAsync(s.dev, stage, t.bytes(), cudaMemcpyHostToDevice, stream_),
                            cat("input '", m.values[id].name, "'"));
        }
        stage += (t.bytes() + 255) & ~size_t(255);
    }

    profile_.clear();
    std::vector<cudaEvent_t> events;
    std::vector<ops::TensorInfo> infos;
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const plan::PlanNode& n = m.nodes[i];
        const std::string where = cat("node '", n.name, "' (", n.op_type, ")");
        const bool on_device = e_.dev_kernels_[i] != nullptr;
        if (profiling_) {
            cudaEvent_t ev;
            KILN_CUDA_CHECK(cudaEventCreate(&ev), where);
            events.push_back(ev);
            KILN_CUDA_CHECK(cudaEventRecord(ev, stream_), where);
        }
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
                    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), where);
                }
                infos[k].dtype = s.dtype;
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
                din[k] = DevTensor{device_of(id, s), s.dtype, s.shape, s.has_host ? &s.host : nullptr};
                pin[k] = &din[k];
            }
            for (size_t k = 0; k < n.outputs.size(); ++k) {
                int32_t id = n.outputs[k];
                Slot& s = slots_[id];
                s.dtype = outs[k].dtype;
                s.shape = ops::to_concrete(outs[k].dims);
                size_t bytes = static_cast<size_t>(shape_numel(s.shape)) * dtype_size(s.dtype);
                dout[k] = DevTensor{alloc_value(id, bytes, where), s.dtype, s.shape, nullptr};
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
    if (profiling_) {
        cudaEvent_t ev;
        KILN_CUDA_CHECK(cudaEventCreate(&ev), "profiling");
        events.push_back(ev);
        KILN_CUDA_CHECK(cudaEventRecord(ev, stream_), "profiling");
    }
    // outputs: device -> pinned staging -> host tensors
    total = 0;
    for (int32_t id : m.outputs)
        if (!slots_[id].has_host) total += (shape_numel(slots_[id].shape) * dtype_size(slots_[id].dtype) + 255) & ~255;
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
        stage += (bytes + 255) & ~size_t(255);
    }
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream_), "running the plan on the GPU");
    if (profiling_) {
        for (size_t i = 0; i + 1 < events.size(); ++i) {
            float ms = 0.f;
            cudaEventElapsedTime(&ms, events[i], events[i + 1]);
            profile_.emplace_back(m.nodes[i].name, ms);
        }
        for (cudaEvent_t ev : events) cudaEventDestroy(ev);
    }
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

}  // namespace

std::unique_ptr<backends::DeviceExecutor> make_cuda_executor(const plan::PlanModel& model, Logger& logger) {
    return std::make_unique<CudaExecutor>(model, logger);
}

}  // namespace kiln::cuda

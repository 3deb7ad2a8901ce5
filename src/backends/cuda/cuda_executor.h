#pragma once
// The CUDA device executor (one per Engine: weights uploaded once, kernels created and tuned once) and its device
// context (one per ExecutionContext: stream, cuBLASLt/cuDNN handles, workspace, activation arena, pinned staging,
// CUDA graphs). cuda_executor.cc builds the executor, cuda_context.cc runs plans.
#include <cublasLt.h>
#include <cudnn.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/backends/cuda/cuda_common.h"
#include "src/backends/device_executor.h"
#include "src/ops/op_schema.h"

namespace kiln::cuda {

constexpr size_t kWorkspaceBytes = 32u << 20;

class CudaExecutor;

class CudaContext : public backends::DeviceContext {
public:
    explicit CudaContext(const CudaExecutor& e);
    ~CudaContext() override;
    std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs) override;
    void enqueue(const std::map<std::string, Tensor>& inputs, const std::map<std::string, void*>& outputs,
                 void* stream) override;
    std::map<std::string, Shape> output_shapes(const std::map<std::string, Shape>& input_shapes) override;
    void set_graphs(bool on) override;
    double last_gpu_ms() override;
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
    /// One input of a launch: a device address (bound by the caller or the context's input buffer) and its shape,
    /// plus the host tensor when the caller gave one (host nodes and shape inference may read it).
    struct InputBind {
        void* dev = nullptr;
        DataType dtype = DataType::kFloat32;
        Shape shape;
        const Tensor* host = nullptr;
    };
    /// A captured inference: replayed while shapes and addresses stay the same.
    struct Graph {
        cudaGraphExec_t exec = nullptr;
        std::vector<Slot> outputs;  // dtype, shape, device address of each plan output
    };

    // Runs (or replays) the plan; afterwards slots_ holds every plan output (device, or host for host-made ones).
    void launch(const std::vector<InputBind>& in, const std::vector<void*>& out_dev);
    // Launches every node on stream_; returns false when the run cannot be captured (host nodes, read-backs,
    // allocations outside the arena).
    bool execute(const std::vector<InputBind>& in, const std::vector<void*>& out_dev);
    void run_node(size_t i, const std::vector<void*>& out_dev, bool* capturable);
    void* device_of(int32_t id, Slot& s, bool* capturable);  // uploads a host-only value
    void host_of(Slot& s, const std::string& what);          // downloads a device-only value (async; caller syncs)
    void* alloc_value(int32_t id, size_t bytes, const std::string& what, const std::vector<void*>& out_dev);
    void free_owned();
    void* staging(size_t bytes);
    void clear_graphs();

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
    std::vector<int32_t> output_index_;  // per value: index in the plan's outputs, or -1
    cudaEvent_t ev_start_ = nullptr, ev_end_ = nullptr, ev_sync_ = nullptr;
    bool timed_ = false;
    bool graphs_on_ = true;
    std::map<std::string, int> eager_runs_;  // per launch signature: eager runs that could have been captured
    std::map<std::string, Graph> graphs_;
    bool profiling_ = false;
    std::vector<std::pair<std::string, double>> profile_;
};

class CudaExecutor : public backends::DeviceExecutor {
public:
    CudaExecutor(const plan::PlanModel& m, Logger& logger, const backends::DeviceExecutorOptions& options);
    ~CudaExecutor() override { release(); }

    std::unique_ptr<backends::DeviceContext> create_context() const override {
        return std::make_unique<CudaContext>(*this);
    }
    std::string describe(size_t node) const override;
    std::map<std::string, std::string> plan_metadata() const override;

private:
    friend class CudaContext;

    void check_device(const std::map<std::string, std::string>& meta);
    void build(Logger& logger);
    void tune(Logger& logger);  // one run on zero inputs when every input shape is static: tactics get measured
    void load_timing_cache(Logger& logger);
    void save_timing_cache(Logger& logger) const;
    void release();

    const plan::PlanModel& m_;
    backends::DeviceExecutorOptions options_;
    std::string arch_;    // "sm_90"
    std::string device_;  // "NVIDIA H100 80GB HBM3"
    std::string lib_versions_;
    mutable TacticTable tactics_;
    std::vector<void*> weights_dev_;
    std::vector<const ops::OpSchema*> schemas_;
    std::vector<std::unique_ptr<DeviceKernel>> dev_kernels_;
    std::vector<std::unique_ptr<backends::Kernel>> host_kernels_;
    std::vector<int> last_use_;
    std::vector<char> is_output_;
    /// Per value: its storage type on the device when the executor keeps it in fp16/bf16 (else kFloat32; the plan's
    /// dtype then applies). Shape inference still sees the plan's dtype.
    std::vector<DataType> low_value_;
};

}  // namespace kiln::cuda

#pragma once
/// \file engine.h
/// Engine: an immutable, optimised model, shareable across threads. ExecutionContext: per-thread state (activation
/// memory) that runs an Engine.
///
/// Example usage:
/// \code
///   std::shared_ptr<kiln::Engine> engine = kiln::Runtime(logger).load("model.plan");
///   auto ctx = engine->create_context();
///   auto outputs = ctx->run({{"input", x}});   // std::map<std::string, kiln::Tensor>
/// \endcode
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/logger.h"
#include "kiln/tensor.h"

namespace kiln {

namespace plan {
struct PlanModel;
}

struct TensorDesc {
    std::string name;
    DataType dtype;
    SymShape dims;
};

struct LayerInfo {
    std::string name;
    std::string op_type;
    std::string domain;
    std::string backend;
    std::string kernel;
    std::vector<TensorDesc> inputs;  ///< constants are marked by a name prefixed with '@' (weights)
    std::vector<TensorDesc> outputs;
    std::vector<std::string> fused_from;
    std::vector<std::pair<std::string, std::string>> attributes;  ///< name, printed value
};

struct MemoryInfo {
    bool planned = false;              ///< true when the plan holds a static arena layout
    uint64_t arena_bytes = 0;          ///< one activation block per context
    uint64_t naive_bytes = 0;          ///< sum of all activation sizes
    uint64_t lower_bound_bytes = 0;    ///< largest set of simultaneously live activations
    uint64_t weight_bytes = 0;
};

class ExecutionContext;

class Engine : public std::enable_shared_from_this<Engine> {
public:
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    const std::vector<TensorDesc>& inputs() const;
    const std::vector<TensorDesc>& outputs() const;
    std::vector<LayerInfo> layers() const;
    MemoryInfo memory() const;
    std::string target_backend() const;
    std::string kiln_version() const;
    const std::map<std::string, std::string>& metadata() const;

    /// The plan bytes (versioned, checksummed); Runtime::deserialize reads them back.
    std::vector<uint8_t> serialize() const;
    /// Writes the plan atomically (temporary file + rename).
    void save(const std::string& path) const;

    std::unique_ptr<ExecutionContext> create_context() const;

    /// True when the engine runs on a GPU (its tensors live in device memory; see the device-pointer API of
    /// ExecutionContext).
    bool on_device() const;

    /// Internal: engines are made by Builder and Runtime. `timing_cache`: auto-tuning cache file of device backends.
    static std::shared_ptr<Engine> create(plan::PlanModel model, Logger& logger, const std::string& timing_cache = "");
    const plan::PlanModel& plan_model() const;
    struct Impl;
    const Impl& impl() const { return *impl_; }

private:
    Engine();
    std::unique_ptr<Impl> impl_;
};

class ExecutionContext {
public:
    ~ExecutionContext();
    ExecutionContext(const ExecutionContext&) = delete;
    ExecutionContext& operator=(const ExecutionContext&) = delete;

    /// Runs the engine. Every engine input must be given, by name, with the engine's dtype and a shape matching its
    /// static dims (symbolic dims take any size, consistently across inputs). Errors name the tensor and say what
    /// was expected (kInvalidArgument). Returns every engine output by name.
    std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);
    void set_num_threads(int n);

    /// \name Caller-owned buffers (TensorRT's setInputShape / setTensorAddress / enqueueV3)
    /// For a GPU engine the addresses are device pointers (e.g. from cudaMalloc, torch or cupy) and no host copy
    /// happens; for a host engine they are host pointers. Output buffers must hold output_shape(name) elements.
    /// Addresses stay bound until changed; a CUDA graph is kept per (shapes, addresses), so reusing the same buffers
    /// replays without re-capturing.
    ///@{
    void set_input_shape(const std::string& name, const Shape& shape);
    void set_tensor_address(const std::string& name, void* address);
    /// The output's shape for the input shapes set so far (every input shape must be set). Throws kUnsupported when
    /// it depends on input values.
    Shape output_shape(const std::string& name);
    /// Runs on the bound buffers. GPU engines: asynchronous on `cuda_stream` (a cudaStream_t; work already queued
    /// there runs first, later work waits for this inference); nullptr: returns when the results are in place.
    /// Host engines run synchronously and ignore the stream.
    void enqueue(void* cuda_stream = nullptr);
    ///@}

    /// GPU engines: capture the inference in a CUDA graph and replay it (default on; off: kernel-by-kernel launches).
    void set_cuda_graphs(bool on);
    /// GPU engines: device time of the last run/enqueue from its first to its last kernel, measured with CUDA events
    /// (host<->device copies excluded); 0 for host engines. Waits for the inference to finish.
    double last_gpu_ms();

    /// Per-layer time of the last run (ms), when profiling is on.
    void set_profiling(bool on);
    std::vector<std::pair<std::string, double>> last_profile() const;

private:
    friend class Engine;
    explicit ExecutionContext(std::shared_ptr<const Engine> engine);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace kiln

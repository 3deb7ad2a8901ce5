#pragma once
// Hook for backends whose tensors live in device memory (CUDA). Such a backend registers a factory for its name;
// an Engine whose plan targets it creates one DeviceExecutor (weights uploaded once, kernels created once, shared
// by every context), and each ExecutionContext creates one DeviceContext (stream, activation arena, handles, CUDA
// graphs) that runs the whole plan. Nodes the plan places on a host backend run through `host_kernels` with the
// copies around them done by the device context.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/logger.h"
#include "kiln/tensor.h"
#include "src/backends/backend.h"
#include "src/plan/plan_model.h"

namespace kiln::backends {

/// What kernels see of plan value `id` at build time: dtype, dims, and the value when it is a weight
/// (`present` is false for an omitted optional input, id < 0).
inline ops::TensorInfo plan_value_info(const plan::PlanModel& m, int32_t id) {
    ops::TensorInfo t;
    if (id < 0) {
        t.present = false;
        return t;
    }
    const plan::PlanValue& v = m.values[id];
    t.dtype = v.dtype;
    t.dims = v.dims;
    if (v.weight >= 0) t.value = &m.weights[v.weight];
    return t;
}

class DeviceContext {
public:
    virtual ~DeviceContext() = default;
    /// Runs the plan on host inputs (already validated by the runtime) and returns host outputs.
    virtual std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs) = 0;
    /// Runs the plan on caller-owned device memory: `inputs` are views whose data pointer is a device address
    /// (validated by the runtime), `outputs` name -> device address of the right size (see output_shapes).
    /// Asynchronous on `stream` (a cudaStream_t); nullptr: on the context's stream, returning when done.
    virtual void enqueue(const std::map<std::string, Tensor>& inputs, const std::map<std::string, void*>& outputs,
                         void* stream) = 0;
    /// Output shapes for the given input shapes (host shape inference; throws when a shape depends on values).
    virtual std::map<std::string, Shape> output_shapes(const std::map<std::string, Shape>& input_shapes) = 0;
    /// Capture the whole inference in a CUDA graph per (shapes, addresses) and replay it (default on).
    virtual void set_graphs(bool on) = 0;
    /// GPU time of the last run/enqueue between its first and last kernel (CUDA events; copies excluded), in ms.
    virtual double last_gpu_ms() = 0;
    /// Per-layer device times of the last run (ms), when profiling is on.
    virtual void set_profiling(bool on) { (void)on; }
    virtual std::vector<std::pair<std::string, double>> last_profile() const { return {}; }
};

class DeviceExecutor {
public:
    virtual ~DeviceExecutor() = default;
    virtual std::unique_ptr<DeviceContext> create_context() const = 0;
    /// Kernel name per plan node, for `kiln inspect`.
    virtual std::string describe(size_t node) const = 0;
    /// Entries the plan should carry for the next load (device architecture, tuned tactics).
    virtual std::map<std::string, std::string> plan_metadata() const { return {}; }
};

/// Build-time options a device executor may use (they are not stored in the plan).
struct DeviceExecutorOptions {
    std::string timing_cache;  ///< auto-tuning timing cache file; empty: none
};

using DeviceExecutorFactory = std::unique_ptr<DeviceExecutor> (*)(const plan::PlanModel& model, Logger& logger,
                                                                  const DeviceExecutorOptions& options);

using BackendFactory = std::unique_ptr<Backend> (*)();

/// Optional backends (CUDA) register themselves here from runtime::register_builtin_backends(); make_backend()
/// consults this registry first.
void register_backend(const std::string& name, BackendFactory factory);
BackendFactory find_backend_factory(const std::string& name);
void register_device_executor(const std::string& backend, DeviceExecutorFactory factory);
DeviceExecutorFactory find_device_executor(const std::string& backend);

}  // namespace kiln::backends

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
};

using DeviceExecutorFactory = std::unique_ptr<DeviceExecutor> (*)(const plan::PlanModel& model, Logger& logger);

using BackendFactory = std::unique_ptr<Backend> (*)();

/// Optional backends (CUDA) register themselves here from runtime::register_builtin_backends(); make_backend()
/// consults this registry first.
void register_backend(const std::string& name, BackendFactory factory);
BackendFactory find_backend_factory(const std::string& name);
void register_device_executor(const std::string& backend, DeviceExecutorFactory factory);
DeviceExecutorFactory find_device_executor(const std::string& backend);

}  // namespace kiln::backends

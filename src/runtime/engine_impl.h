#pragma once
// Engine internals shared by engine.cc and execution_context.cc.
#include <memory>
#include <vector>

#include "kiln/engine.h"
#include "src/backends/backend.h"
#include "src/backends/device_executor.h"
#include "src/ops/op_schema.h"
#include "src/plan/plan_model.h"

namespace kiln {

struct Engine::Impl {
    plan::PlanModel model;
    Logger* logger = nullptr;
    std::vector<std::unique_ptr<backends::Backend>> backends;
    std::vector<std::unique_ptr<backends::Kernel>> kernels;  // one per plan node
    std::vector<const ops::OpSchema*> schemas;               // one per plan node
    std::vector<char> zero_outputs;                          // per plan node: zero its outputs before running it
    std::vector<int> last_use;                               // per value: index of the last node reading it
    std::vector<TensorDesc> inputs, outputs;
    std::vector<char> is_output;                             // per value
    std::unique_ptr<backends::DeviceExecutor> device;        // set when the plan targets a device backend
};

}  // namespace kiln

#pragma once
// Lowering: an optimised IR graph becomes a plan::PlanModel (values numbered, constants become weights, each node
// placed on a backend).
#include <functional>
#include <string>
#include <vector>

#include "src/common/layout.h"
#include "src/ir/graph.h"
#include "src/plan/plan_model.h"

namespace kiln::builder {

/// Fills m.memory (arena offsets) when every activation shape is static. `caps` (per node, optional) lets an output
/// share its buffer with the input named by LayoutCaps::overwrite_input.
void plan_activation_memory(plan::PlanModel& m, const std::vector<LayoutCaps>& caps = {});

/// Each node's compute precision ("fp32", "bf16") as the plan's metadata will give it; the layout caps depend on it.
using PrecisionOf = std::function<std::string(const plan::PlanNode&)>;

/// `precision_of` (optional: all fp32) is asked once per node placed on `backend`.
plan::PlanModel lower_to_plan(const ir::Graph& g, const std::string& backend, const PrecisionOf& precision_of = {});

}  // namespace kiln::builder

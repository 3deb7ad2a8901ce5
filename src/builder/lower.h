#pragma once
// Lowering: an optimised IR graph becomes a plan::PlanModel (values numbered, constants become weights, each node
// placed on a backend).
#include "src/ir/graph.h"
#include "src/plan/plan_model.h"

namespace kiln::builder {

/// Fills m.memory (arena offsets) when every activation shape is static.
void plan_activation_memory(plan::PlanModel& m);

plan::PlanModel lower_to_plan(const ir::Graph& g, const std::string& backend);

}  // namespace kiln::builder

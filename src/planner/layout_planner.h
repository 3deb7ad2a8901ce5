#pragma once
// Layout planner: picks a memory layout per activation from what each node's backend accepts (LayoutCaps). Pure
// function of the plan's graph and the per-node answers; used at build time, before the memory plan (a blocked value
// may need more bytes).
#include <vector>

#include "src/common/layout.h"
#include "src/plan/plan_model.h"

namespace kiln::planner {

/// Sets m.values[*].layout. A value becomes kNChw16c when
///   - it is an activation (produced by a node, not a graph output, not a weight) of static 4-D float32 shape with
///     H*W > 1 (a [N,C,1,1] value is tiny, and keeping it plain lets per-channel operands stay plain) and at
///     most 50% channel padding (C = 24 -> 32 yes, C = 8 -> 16 no);
///   - its producer's port and every consumer's port accept kNChw16c;
///   - it is not tied (through an elementwise node, LayoutCaps::tied) to a value that must stay plain;
///   - its tied group touches a node that prefers blocked values (a convolution).
/// Everything else stays kPlain, and everything stays plain when some activation has a symbolic shape (blocked
/// values need the static memory plan, which sizes them with their padding). `caps` has one entry per node (empty vectors for nodes that accept only plain).
/// A blocked value then becomes kNChw16cBf16 when its producer's port and every consumer's port allow bf16
/// (LayoutCaps::bf16_inputs / bf16_outputs) and so do all values tied to it.
/// Returns the number of blocked values (either element type).
int plan_layouts(plan::PlanModel& m, const std::vector<LayoutCaps>& caps);

}  // namespace kiln::planner

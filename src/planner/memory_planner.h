#pragma once
// Memory planner ("tensor sharing"): places every activation at an offset in one arena so that tensors whose
// lifetimes overlap never overlap in memory. Pure function of sizes and lifetimes; used at build time.
#include <cstdint>
#include <vector>

namespace kiln::planner {

struct BufferRequest {
    uint64_t bytes = 0;
    int first = 0;  ///< index of the node that produces it
    int last = 0;   ///< index of the last node that reads it (inclusive)
};

struct MemoryLayout {
    std::vector<uint64_t> offsets;  ///< per request
    uint64_t arena_bytes = 0;
    uint64_t naive_bytes = 0;        ///< sum of all sizes
    uint64_t lower_bound_bytes = 0;  ///< max over steps of the sum of live sizes
};

inline constexpr uint64_t kArenaAlignment = 64;

/// Greedy by size (largest first, each at the lowest offset that fits beside the already placed buffers whose
/// lifetimes overlap), the strategy TFLite's arena planner measured as best on CNNs and transformers.
MemoryLayout plan_memory(const std::vector<BufferRequest>& requests);

}  // namespace kiln::planner

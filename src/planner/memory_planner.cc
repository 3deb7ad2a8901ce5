#include "src/planner/memory_planner.h"

#include <algorithm>
#include <numeric>

namespace kiln::planner {

namespace {
uint64_t align_up(uint64_t v) { return (v + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }
}  // namespace

MemoryLayout plan_memory(const std::vector<BufferRequest>& requests) {
    MemoryLayout out;
    size_t n = requests.size();
    out.offsets.assign(n, 0);
    int steps = 0;
    for (const auto& r : requests) {
        out.naive_bytes += align_up(r.bytes);
        steps = std::max(steps, r.last + 1);
    }
    std::vector<uint64_t> live(steps + 1, 0);
    for (const auto& r : requests)
        for (int s = r.first; s <= r.last; ++s) live[s] += align_up(r.bytes);
    out.lower_bound_bytes = live.empty() ? 0 : *std::max_element(live.begin(), live.end());

    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        if (requests[a].bytes != requests[b].bytes) return requests[a].bytes > requests[b].bytes;
        return requests[a].first < requests[b].first;
    });
    std::vector<size_t> placed;
    std::vector<std::pair<uint64_t, uint64_t>> busy;  // [offset, end) of overlapping placed buffers
    for (size_t i : order) {
        const BufferRequest& r = requests[i];
        uint64_t size = align_up(r.bytes);
        busy.clear();
        for (size_t j : placed) {
            const BufferRequest& q = requests[j];
            if (q.last < r.first || r.last < q.first) continue;
            busy.emplace_back(out.offsets[j], out.offsets[j] + align_up(q.bytes));
        }
        std::sort(busy.begin(), busy.end());
        uint64_t offset = 0;
        for (auto [b, e] : busy) {
            if (offset + size <= b) break;  // fits in the gap before this one
            offset = std::max(offset, e);
        }
        out.offsets[i] = offset;
        out.arena_bytes = std::max(out.arena_bytes, offset + size);
        placed.push_back(i);
    }
    return out;
}

}  // namespace kiln::planner

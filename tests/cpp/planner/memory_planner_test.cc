#include "src/planner/memory_planner.h"

#include <gtest/gtest.h>

#include <random>

namespace kiln::planner {

namespace {
// No two buffers with overlapping lifetimes overlap in memory, and everything is aligned.
void expect_valid(const std::vector<BufferRequest>& r, const MemoryLayout& l) {
    for (size_t i = 0; i < r.size(); ++i) {
        EXPECT_EQ(l.offsets[i] % kArenaAlignment, 0u);
        EXPECT_LE(l.offsets[i] + r[i].bytes, l.arena_bytes);
        for (size_t j = i + 1; j < r.size(); ++j) {
            bool time = !(r[i].last < r[j].first || r[j].last < r[i].first);
            bool space = l.offsets[i] < l.offsets[j] + r[j].bytes && l.offsets[j] < l.offsets[i] + r[i].bytes;
            EXPECT_FALSE(time && space && r[i].bytes && r[j].bytes) << i << " and " << j;
        }
    }
    EXPECT_GE(l.arena_bytes, l.lower_bound_bytes);
    EXPECT_LE(l.arena_bytes, l.naive_bytes);
}
}  // namespace

TEST(MemoryPlanner, ChainReusesMemory) {
    // a -> b -> c -> d: only two neighbours are live at once
    std::vector<BufferRequest> r = {{1024, 0, 1}, {1024, 1, 2}, {1024, 2, 3}, {1024, 3, 4}};
    MemoryLayout l = plan_memory(r);
    expect_valid(r, l);
    EXPECT_EQ(l.arena_bytes, 2048u);
    EXPECT_EQ(l.lower_bound_bytes, 2048u);
    EXPECT_EQ(l.naive_bytes, 4096u);
}

TEST(MemoryPlanner, ResidualBranchStaysLive) {
    std::vector<BufferRequest> r = {{4096, 0, 3}, {1024, 1, 2}, {1024, 2, 3}, {4096, 3, 4}};
    MemoryLayout l = plan_memory(r);
    expect_valid(r, l);
    EXPECT_EQ(l.lower_bound_bytes, 4096u + 1024 + 4096);  // step 3: the residual, c and d
}

TEST(MemoryPlanner, RandomLifetimesAreValidAndNearTheBound) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        std::vector<BufferRequest> r;
        for (int i = 0; i < 60; ++i) {
            int first = rng() % 50;
            r.push_back({static_cast<uint64_t>(64 * (1 + rng() % 100)), first, first + static_cast<int>(rng() % 5)});
        }
        MemoryLayout l = plan_memory(r);
        expect_valid(r, l);
    }
}

TEST(MemoryPlanner, Empty) {
    MemoryLayout l = plan_memory({});
    EXPECT_EQ(l.arena_bytes, 0u);
}

}  // namespace kiln::planner

#pragma once
// parallel_for for kiln's own CPU kernels: splits [0, n) into `num_threads` contiguous ranges, the calling thread
// runs one of them. They run on the calling thread's OpenMP team, the threads oneDNN's primitives use (see
// dnnl_util.h), so a kernel between two convolutions wakes no second set of threads; KILN_CPU_POOL=kiln selects
// kiln's own pool instead (thread_pool.cc).
#include <cstdint>
#include <functional>

namespace kiln::backends::cpu {

using RangeFn = std::function<void(int64_t begin, int64_t end)>;

/// Runs fn(begin, end) over disjoint ranges covering [0, n), on up to `num_threads` threads (caller included).
/// Ranges hold at least `grain` items. Safe to call from several threads at once (each has its own OpenMP team;
/// with kiln's pool a call that finds the pool busy runs inline on its own thread); inside an OpenMP parallel
/// region it runs on the calling thread alone.
void parallel_for(int64_t n, int num_threads, const RangeFn& fn, int64_t grain = 1);

/// Rows of `row_floats` each that make a task worth a thread (waking a worker costs microseconds).
inline int64_t grain_rows(int64_t row_floats) {
    constexpr int64_t kMinTaskFloats = int64_t{1} << 15;
    return row_floats >= kMinTaskFloats ? 1 : kMinTaskFloats / (row_floats > 0 ? row_floats : 1);
}

/// Number of physical cores (logical CPUs / SMT width), at least 1: the default thread count.
int physical_cores();

}  // namespace kiln::backends::cpu

// Pulls constant device ranges (weights) into L2 ahead of the kernels that read them. Launched on a side stream of
// the context, so it runs beside the kernels before the readers (see CudaExecutor::plan_prefetch): at small batches
// a GEMM is bound by the latency of its weight reads from HBM, and L2 answers in about half the time. A hint only:
// nothing reaches the multiprocessors, and a range evicted before use is simply read again.
#include "src/backends/cuda/cuda_launch.h"

namespace kiln::cuda {

namespace {

constexpr int kPrefetchThreads = 128;
constexpr uint32_t kChunk = 32u << 10;  // bytes per bulk prefetch

struct RangeList {
    PrefetchRange r[kMaxPrefetchRanges];
    int n;
};

__global__ void __launch_bounds__(kPrefetchThreads) l2_prefetch(RangeList list) {
    const PrefetchRange range = list.r[blockIdx.x];
    const char* base = static_cast<const char*>(range.p);
    // 16-byte aligned start, whole 16-byte units (the ends are a few bytes at most)
    const uintptr_t start = (reinterpret_cast<uintptr_t>(base) + 15) & ~uintptr_t(15);
    const size_t skip = start - reinterpret_cast<uintptr_t>(base);
    if (range.bytes <= skip) return;
    const size_t bytes = (range.bytes - skip) & ~size_t(15);
    for (size_t off = size_t(threadIdx.x) * kChunk; off < bytes; off += size_t(kPrefetchThreads) * kChunk) {
        const size_t left = bytes - off;
        const uint32_t n = left < kChunk ? static_cast<uint32_t>(left) : kChunk;
        const char* p = reinterpret_cast<const char*>(start) + off;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(n) : "memory");
#elif defined(__CUDA_ARCH__)
        for (uint32_t b = 0; b < n; b += 128) asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + b));
#endif
    }
}

}  // namespace

void launch_l2_prefetch(const PrefetchRange* ranges, int n, cudaStream_t s) {
    for (int first = 0; first < n; first += kMaxPrefetchRanges) {
        RangeList list{};
        list.n = n - first < kMaxPrefetchRanges ? n - first : kMaxPrefetchRanges;
        for (int i = 0; i < list.n; ++i) list.r[i] = ranges[first + i];
        l2_prefetch<<<list.n, kPrefetchThreads, 0, s>>>(list);
    }
}

}  // namespace kiln::cuda

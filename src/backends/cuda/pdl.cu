// pdl_enabled() of pdl.cuh: per device (compute capability 9.0 or later), read once.
#include <atomic>
#include <cstdlib>
#include <string>

#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

bool pdl_enabled() {
    static const bool env_on = [] {
        const char* e = std::getenv("KILN_CUDA_PDL");
        return !(e && std::string(e) == "0");
    }();
    if (!env_on) return false;
    constexpr int kMaxDevices = 64;
    static std::atomic<int> state[kMaxDevices];  // 0 unknown, 1 no, 2 yes
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= kMaxDevices) return false;
    int s = state[dev].load(std::memory_order_relaxed);
    if (s == 0) {
        int major = 0;
        s = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 ? 2 : 1;
        state[dev].store(s, std::memory_order_relaxed);
    }
    return s == 2;
}

}  // namespace kiln::cuda

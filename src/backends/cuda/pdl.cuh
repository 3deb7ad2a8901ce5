#pragma once
// Programmatic dependent launch (Hopper and later): a kernel launched with launch_pdl() may be scheduled while the
// kernel before it in the stream is still finishing, and waits in pdl_wait() until that kernel's results are
// visible. What it saves is the launch latency and ramp-up between two dependent kernels (1-2 us each on an H100,
// where a batch-1 transformer layer runs 7-8 kernels of 3-8 us). Stream capture keeps the dependency as a
// programmatic edge of the CUDA graph.
//
// Rules for a kernel launched through launch_pdl(): call pdl_wait() before reading anything an earlier kernel wrote
// (or writing anything an earlier kernel reads); pdl_launch_dependents() lets the next kernel start early. Kernels
// launched otherwise are unaffected by both calls. KILN_CUDA_PDL=0 launches every kernel the plain way.
#include <cuda_runtime.h>

#include <utility>

namespace kiln::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/// Whether launch_pdl() asks for programmatic serialization: a device of compute capability 9.0 or later and
/// KILN_CUDA_PDL unset or not "0" (defined in cuda_context.cc).
bool pdl_enabled();

template <typename... KArgs, typename... Args>
cudaError_t launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                       Args&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace kiln::cuda

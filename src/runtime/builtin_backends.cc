#include "src/runtime/builtin_backends.h"

#include <mutex>

#ifdef KILN_WITH_CUDA
namespace kiln::cuda {
void register_cuda_backend();  // src/backends/cuda/cuda_backend.cc
}
#endif

namespace kiln::runtime {

void register_builtin_backends() {
    static std::once_flag once;
    std::call_once(once, [] {
#ifdef KILN_WITH_CUDA
        kiln::cuda::register_cuda_backend();
#endif
    });
}

bool built_with_cuda() {
#ifdef KILN_WITH_CUDA
    return true;
#else
    return false;
#endif
}

}  // namespace kiln::runtime

// Backends by name. The one place that knows every backend; the planner and the runtime ask it by name.
#include "src/backends/backend.h"
#include "src/backends/device_executor.h"
#include "src/common/check.h"
#ifndef KILN_NO_CPU_BACKEND
#include "src/backends/cpu/cpu_backend.h"
#endif

namespace kiln::backends {

std::unique_ptr<Backend> make_backend(const std::string& name) {
    if (BackendFactory f = find_backend_factory(name)) return f();  // optional backends (CUDA) registered at start
    if (name == "reference") return make_reference_backend();
#ifndef KILN_NO_CPU_BACKEND
    if (name == "cpu") return make_cpu_backend();
#else
    KILN_CHECK(name != "cpu", kUnsupported, "this kiln was built without the cpu backend (oneDNN was not found); ",
               "use --backend reference or cuda, or rebuild with oneDNN installed");
#endif
    KILN_CHECK(name != "cuda", kUnsupported, "this kiln was built without the CUDA backend; rebuild it with the CUDA ",
               "toolkit and cuDNN installed (KILN_WITH_CUDA=ON), or use --backend cpu");
    KILN_FAIL(kInvalidArgument, "unknown backend '", name, "'; available: cpu, reference");
}

}  // namespace kiln::backends

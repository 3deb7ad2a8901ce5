// Backends by name. The one place that knows every backend; the planner and the runtime ask it by name.
#include "src/backends/backend.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/common/check.h"

namespace kiln::backends {

std::unique_ptr<Backend> make_backend(const std::string& name) {
    if (name == "reference") return make_reference_backend();
    if (name == "cpu") return make_cpu_backend();
    KILN_FAIL(kInvalidArgument, "unknown backend '", name, "'; available: cpu, reference");
}

}  // namespace kiln::backends

#include "src/backends/device_executor.h"

#include <mutex>

namespace kiln::backends {

namespace {
std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
}
std::map<std::string, DeviceExecutorFactory>& registry() {
    static std::map<std::string, DeviceExecutorFactory> r;
    return r;
}
std::map<std::string, BackendFactory>& backends() {
    static std::map<std::string, BackendFactory> r;
    return r;
}
}  // namespace

void register_backend(const std::string& name, BackendFactory factory) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    backends()[name] = factory;
}

BackendFactory find_backend_factory(const std::string& name) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = backends().find(name);
    return it == backends().end() ? nullptr : it->second;
}

void register_device_executor(const std::string& backend, DeviceExecutorFactory factory) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    registry()[backend] = factory;
}

DeviceExecutorFactory find_device_executor(const std::string& backend) {
    std::lock_guard<std::mutex> lock(registry_mutex());
    auto it = registry().find(backend);
    return it == registry().end() ? nullptr : it->second;
}

}  // namespace kiln::backends

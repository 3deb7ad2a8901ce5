// The reference backend's kernel table, generated from op_list.def.
#include "src/backends/reference/reference_backend.h"

#include <map>

#include "src/backends/device_executor.h"

namespace kiln::backends {
namespace reference {
namespace {

using Factory = std::unique_ptr<Kernel> (*)(const KernelNode&);

const std::map<std::string, Factory>& factories() {
    static const std::map<std::string, Factory> kTable = {
#define KILN_OP(name, min_in, max_in, min_out, max_out, infer) {#name, &make_ref_##name},
#include "src/ops/op_list.def"
#undef KILN_OP
    };
    return kTable;
}

class ReferenceBackend : public Backend {
public:
    std::string name() const override { return "reference"; }
    bool supports(const KernelNode& node) const override { return factories().count(node.op_type) != 0; }
    std::unique_ptr<Kernel> create_kernel(const KernelNode& node) const override {
        auto it = factories().find(node.op_type);
        KILN_CHECK(it != factories().end(), kUnsupported, node.where(), ": no reference kernel");
        return it->second(node);
    }
};

}  // namespace
}  // namespace reference

std::unique_ptr<Backend> make_reference_backend() { return std::make_unique<reference::ReferenceBackend>(); }

// make_backend(name) lives in src/backends/backend_registry.cc.

}  // namespace kiln::backends

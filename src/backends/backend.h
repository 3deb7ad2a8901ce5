#pragma once
// The backend interface. A backend answers supports(node); the planner places each node on the first backend
// that supports it (so an unsupported op falls back instead of failing the build). A kernel is created once per
// engine (parse attributes, pack weights) and executed many times, possibly from several ExecutionContexts at once:
// execute() must not mutate the kernel.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/tensor.h"
#include "src/common/layout.h"
#include "src/ops/op_schema.h"

namespace kiln::backends {

/// What a backend sees of a node: build-time infos (dtypes, symbolic dims, constant values such as weights).
struct KernelNode {
    const std::string& name;
    const std::string& op_type;
    const AttributeMap& attrs;
    std::vector<ops::TensorInfo> inputs;
    std::vector<ops::TensorInfo> outputs;
    /// The planned layout of each input / output (empty: all plain). Only ports the backend's layout_caps allowed
    /// are ever blocked; the kernel reads and writes those bytes in that layout.
    std::vector<Layout> input_layouts = {};
    std::vector<Layout> output_layouts = {};
    /// The node's compute precision from the plan: "fp32", or "bf16" (matmuls and convolutions in bf16 with fp32
    /// accumulation; backends that cannot run a precision reject the plan in check_precision).
    std::string precision = "fp32";

    Layout input_layout(size_t i) const { return i < input_layouts.size() ? input_layouts[i] : Layout::kPlain; }
    Layout output_layout(size_t i) const { return i < output_layouts.size() ? output_layouts[i] : Layout::kPlain; }
    std::string where() const { return cat("node '", name, "' (", op_type, ")"); }
};

/// Tensors of one execution. inputs[i] is nullptr for an omitted optional input. Outputs are allocated by the
/// runtime with the shapes computed by the op's inference; the kernel fills them.
struct KernelArgs {
    std::vector<const Tensor*> inputs;
    std::vector<Tensor*> outputs;
    int num_threads = 1;
};

class Kernel {
public:
    virtual ~Kernel() = default;
    virtual void execute(const KernelArgs& args) const = 0;
    /// Short description for `kiln inspect` (e.g. "conv2d_f32_nchw_ref").
    virtual std::string describe() const { return ""; }
    /// True when execute() writes every byte of every output (channel padding included): the runtime then skips
    /// zeroing the outputs before the call (otherwise every activation is memset once per run).
    virtual bool writes_all_outputs() const { return false; }
};

/// A kernel made from a callable `void(const KernelArgs&)`.
class FnKernel : public Kernel {
public:
    using Fn = std::function<void(const KernelArgs&)>;
    explicit FnKernel(Fn fn, std::string name = "", bool writes_all = false)
        : fn_(std::move(fn)), name_(std::move(name)), writes_all_(writes_all) {}
    void execute(const KernelArgs& args) const override { fn_(args); }
    std::string describe() const override { return name_; }
    bool writes_all_outputs() const override { return writes_all_; }

private:
    Fn fn_;
    std::string name_;
    bool writes_all_;
};

/// `writes_all`: see Kernel::writes_all_outputs.
inline std::unique_ptr<Kernel> make_kernel(FnKernel::Fn fn, std::string name = "", bool writes_all = false) {
    return std::make_unique<FnKernel>(std::move(fn), std::move(name), writes_all);
}

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    virtual bool supports(const KernelNode& node) const = 0;
    /// Throws Error(kUnsupported) when this backend (on this machine) cannot run plans of `precision`
    /// (the plan's metadata["precision"]). Called once per engine, before any kernel is created.
    virtual void check_precision(const std::string& precision) const { (void)precision; }
    /// Only called when supports(node); throws Error(kUnsupported) naming the node for cases it cannot handle.
    virtual std::unique_ptr<Kernel> create_kernel(const KernelNode& node) const = 0;
    /// Optional: which ports of `node` may hold blocked activations (see src/common/layout.h). Only called when
    /// supports(node). The default keeps every value plain.
    virtual LayoutCaps layout_caps(const KernelNode& node) const {
        (void)node;
        return {};
    }
};

/// The reference backend: plain, single-threaded, readable C++ for every op in op_list.def. It is the test
/// oracle and is never optimised.
std::unique_ptr<Backend> make_reference_backend();

/// Backend by name ("reference", "cpu"); throws kInvalidArgument for unknown names.
std::unique_ptr<Backend> make_backend(const std::string& name);

}  // namespace kiln::backends

// The CPU backend's op table: which kernel family serves each op type, the float32-only rule (for tensors; --bf16
// changes only how matmuls and convolutions compute), and the precision check.
#include "src/backends/cpu/cpu_backend.h"

#include <map>

#include "src/backends/cpu/bf16.h"

namespace kiln::backends {
namespace cpu {
namespace {

struct Family {
    bool (*supports)(const KernelNode&);
    std::unique_ptr<Kernel> (*make)(const KernelNode&);
    LayoutCaps (*layout_caps)(const KernelNode&) = nullptr;  // nullptr: plain values only
};

const std::map<std::string, Family>& families() {
    static const std::map<std::string, Family> kTable = {
        {"Conv", {supports_conv, make_cpu_conv, layout_caps_conv}},
        {"FusedConv", {supports_conv, make_cpu_conv, layout_caps_conv}},
        {"FusedExpandDepthwise", {supports_expand_depthwise, make_cpu_expand_depthwise, layout_caps_expand_depthwise}},
        {"MatMul", {supports_matmul, make_cpu_matmul}},
        {"FusedMatMul", {supports_matmul, make_cpu_matmul, layout_caps_matmul}},
        {"Gemm", {supports_gemm, make_cpu_gemm}},
        {"MaxPool", {supports_pool, make_cpu_pool, layout_caps_pool}},
        {"GlobalAveragePool", {supports_pool, make_cpu_pool, layout_caps_pool}},
        {"Attention", {supports_attention, make_cpu_attention}},
        {"LayerNormalization", {supports_norm, make_cpu_norm}},
        {"RMSNormalization", {supports_norm, make_cpu_norm}},
        {"Softmax", {supports_softmax, make_cpu_softmax}},
        {"Add", {supports_binary, make_cpu_binary, layout_caps_binary}},
        {"Sub", {supports_binary, make_cpu_binary, layout_caps_binary}},
        {"Mul", {supports_binary, make_cpu_binary, layout_caps_binary}},
        {"Div", {supports_binary, make_cpu_binary, layout_caps_binary}},
        {"Transpose", {supports_transpose, make_cpu_transpose}},
        {"Gelu", {supports_unary, make_cpu_unary, layout_caps_unary}},
        {"Relu", {supports_unary, make_cpu_unary, layout_caps_unary}},
        {"Sigmoid", {supports_unary, make_cpu_unary, layout_caps_unary}},
        {"Tanh", {supports_unary, make_cpu_unary, layout_caps_unary}},
    };
    return kTable;
}

// Every present input and output is float32 (Attention's boolean mask excepted).
bool all_f32(const KernelNode& node) {
    for (size_t i = 0; i < node.inputs.size(); ++i) {
        const ops::TensorInfo& t = node.inputs[i];
        if (!t.present) continue;
        if (node.op_type == "Attention" && i == 3 && t.dtype == DataType::kBool) continue;
        if (t.dtype != DataType::kFloat32) return false;
    }
    for (const ops::TensorInfo& t : node.outputs)
        if (t.dtype != DataType::kFloat32) return false;
    return true;
}

class CpuBackend : public Backend {
public:
    std::string name() const override { return "cpu"; }

    bool supports(const KernelNode& node) const override {
        auto it = families().find(node.op_type);
        if (it == families().end() || !all_f32(node)) return false;
        try {
            return it->second.supports(node);
        } catch (const Error&) {
            return false;  // malformed attributes: let the reference backend report them
        }
    }

    void check_precision(const std::string& precision) const override { check_cpu_precision(precision); }

    std::unique_ptr<Kernel> create_kernel(const KernelNode& node) const override {
        auto it = families().find(node.op_type);
        KILN_CHECK(it != families().end(), kUnsupported, node.where(), ": no cpu kernel");
        return it->second.make(node);
    }

    LayoutCaps layout_caps(const KernelNode& node) const override {
        auto it = families().find(node.op_type);
        if (it == families().end() || !it->second.layout_caps) return {};
        return it->second.layout_caps(node);
    }
};

}  // namespace
}  // namespace cpu

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<cpu::CpuBackend>(); }

}  // namespace kiln::backends

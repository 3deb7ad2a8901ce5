// FusedElementwise (made by src/passes/fuse_elementwise.cc) on the GPU: the `program` attribute is compiled once
// into an EwProgram (the token language is documented in src/backends/reference/fused_elementwise.cc); each run
// fills in the broadcast strides and launches fused_elementwise_bcast.
#include <cstdlib>

#include "src/backends/cuda/cuda_common.h"
#include "src/ops/shape_utils.h"

namespace kiln::cuda {

namespace {

bool parse_float(const std::string& s, float* v) {
    char* end = nullptr;
    *v = std::strtof(s.c_str(), &end);
    return !s.empty() && end == s.c_str() + s.size();
}

// Compiles the program; false (with nothing thrown) when it is malformed or beyond the device kernel's limits.
bool compile(const std::vector<std::string>& tokens, size_t num_inputs, EwProgram* p) {
    static const std::pair<const char*, EwCode> kNamed[] = {
        {"add", EwCode::kAdd}, {"sub", EwCode::kSub}, {"mul", EwCode::kMul}, {"div", EwCode::kDiv},
        {"pow", EwCode::kPow}, {"min", EwCode::kMin}, {"max", EwCode::kMax}, {"neg", EwCode::kNeg},
        {"abs", EwCode::kAbs}, {"sqrt", EwCode::kSqrt}, {"exp", EwCode::kExp}, {"log", EwCode::kLog},
        {"reciprocal", EwCode::kReciprocal}, {"erf", EwCode::kErf}, {"tanh", EwCode::kTanh},
        {"sigmoid", EwCode::kSigmoid}, {"relu", EwCode::kRelu},
    };
    if (tokens.empty() || tokens.size() > static_cast<size_t>(kMaxEwProgram) || num_inputs > kMaxEwInputs)
        return false;
    int depth = 0;
    p->n = 0;
    for (const std::string& t : tokens) {
        EwInstr in;
        bool ok = false;
        if (t.rfind("in", 0) == 0 && t.size() > 2 && t.find(':') == std::string::npos) {
            int k = std::atoi(t.c_str() + 2);
            if (k < 0 || static_cast<size_t>(k) >= num_inputs) return false;
            in.code = static_cast<int>(EwCode::kInput), in.input = k, ++depth, ok = true;
        } else if (t.rfind("const:", 0) == 0) {
            if (!parse_float(t.substr(6), &in.a)) return false;
            in.code = static_cast<int>(EwCode::kConst), ++depth, ok = true;
        } else if (t.rfind("leaky_relu:", 0) == 0) {
            if (depth < 1 || !parse_float(t.substr(11), &in.a)) return false;
            in.code = static_cast<int>(EwCode::kLeakyRelu), ok = true;
        } else if (t.rfind("clip:", 0) == 0) {
            size_t colon = t.find(':', 5);
            if (depth < 1 || colon == std::string::npos || !parse_float(t.substr(5, colon - 5), &in.a) ||
                !parse_float(t.substr(colon + 1), &in.b))
                return false;
            in.code = static_cast<int>(EwCode::kClip), ok = true;
        } else {
            for (auto& [name, code] : kNamed)
                if (t == name) {
                    bool binary = code <= EwCode::kMax;
                    if (depth < (binary ? 2 : 1)) return false;
                    if (binary) --depth;
                    in.code = static_cast<int>(code), ok = true;
                }
        }
        if (!ok || depth > kMaxEwStack) return false;
        p->code[p->n++] = in;
    }
    return depth == 1;
}

}  // namespace

bool supports_fused_elementwise(const backends::KernelNode& n) {
    if (n.op_type != "FusedElementwise" || n.outputs[0].dtype != DataType::kFloat32) return false;
    if (n.outputs[0].rank() > kMaxDims) return false;
    for (const auto& t : n.inputs)
        if (!t.present || t.dtype != DataType::kFloat32 || t.rank() > kMaxDims) return false;
    EwProgram p;
    return compile(n.attrs.get_strings("program"), n.inputs.size(), &p);
}

std::unique_ptr<DeviceKernel> make_fused_elementwise(const backends::KernelNode& n) {
    auto prog = std::make_shared<EwProgram>();
    KILN_CHECK(compile(n.attrs.get_strings("program"), n.inputs.size(), prog.get()), kUnsupported, n.where(),
               ": program not supported by the CUDA kernel");
    prog->num_inputs = static_cast<int>(n.inputs.size());
    return std::make_unique<FnDeviceKernel>(
        [prog](const RunCtx& c, const std::vector<const DevTensor*>& in, const std::vector<DevTensor*>& out) {
            EwProgram p = *prog;
            const Shape& os = out[0]->shape;
            p.rank = static_cast<int>(os.size());
            for (int d = 0; d < p.rank; ++d) p.shape[d] = os[d];
            const void* ptrs[kMaxEwInputs] = {};
            for (int k = 0; k < p.num_inputs; ++k) {
                std::vector<int64_t> st = ops::broadcast_strides(in[k]->shape, os);
                for (int d = 0; d < p.rank; ++d) p.strides[k][d] = st[d];
                ptrs[k] = in[k]->data;
                // fp16/bf16 inputs and output (values the executor keeps reduced); the math stays fp32
                const LowType t = low_type_of(in[k]->dtype);
                if (t != LowType::kF32) p.low_inputs |= 1u << k, p.low = static_cast<int>(t);
            }
            const LowType yt = low_type_of(out[0]->dtype);
            if (yt != LowType::kF32) p.y_low = 1, p.low = static_cast<int>(yt);
            launch_fused_elementwise(p, ptrs, out[0]->data, out[0]->numel(), c.stream);
        },
        "fused_elementwise_bcast");
}

}  // namespace kiln::cuda

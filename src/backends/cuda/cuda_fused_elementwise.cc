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
        {"sigmoid", EwCode::kSigmoid}, {"relu", EwCode::kRelu}, {"and", EwCode::kAnd}, {"or", EwCode::kOr},
        {"xor", EwCode::kXor}, {"eq", EwCode::kEq}, {"lt", EwCode::kLt}, {"le", EwCode::kLe}, {"gt", EwCode::kGt},
        {"ge", EwCode::kGe}, {"not", EwCode::kNot}, {"to_bool", EwCode::kToBool}, {"where", EwCode::kWhere},
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
                    const int arity = code == EwCode::kWhere ? 3 : code <= EwCode::kGe ? 2 : 1;
                    if (depth < arity) return false;
                    depth -= arity - 1;
                    in.code = static_cast<int>(code), ok = true;
                }
        }
        if (!ok || depth > kMaxEwStack) return false;
        p->code[p->n++] = in;
    }
    return depth == 1;
}

// How a tensor of dtype t is stored for the kernel; false for dtypes it does not read or write.
bool io_of(DataType t, EwIo* io) {
    switch (t) {
        case DataType::kFloat32: *io = EwIo::kF32; return true;
        case DataType::kFloat16: *io = EwIo::kF16; return true;
        case DataType::kBFloat16: *io = EwIo::kBF16; return true;
        case DataType::kBool: *io = EwIo::kBool; return true;
        case DataType::kInt32: *io = EwIo::kI32; return true;
        case DataType::kInt64: *io = EwIo::kI64; return true;
        default: return false;
    }
}

}  // namespace

// At build time the graph's dtypes: float32, bool, int32 or int64 inputs, a float32 or bool output (the executor
// may later keep float32 values reduced to fp16/bf16, which the kernel reads and writes as such).
bool supports_fused_elementwise(const backends::KernelNode& n) {
    if (n.op_type != "FusedElementwise") return false;
    const DataType y = n.outputs[0].dtype;
    if ((y != DataType::kFloat32 && y != DataType::kBool) || n.outputs[0].rank() > kMaxDims) return false;
    for (const auto& t : n.inputs)
        if (!t.present || t.rank() > kMaxDims ||
            (t.dtype != DataType::kFloat32 && t.dtype != DataType::kBool && t.dtype != DataType::kInt32 &&
             t.dtype != DataType::kInt64))
            return false;
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
                // bool / int32 / int64 inputs, fp16/bf16 ones (values the executor keeps reduced); the math is fp32
                KILN_CHECK(io_of(in[k]->dtype, &p.in_io[k]), kUnsupported, "FusedElementwise: input ", k,
                           " has dtype ", dtype_name(in[k]->dtype));
            }
            KILN_CHECK(io_of(out[0]->dtype, &p.y_io) && p.y_io != EwIo::kI32 && p.y_io != EwIo::kI64, kUnsupported,
                       "FusedElementwise: output of dtype ", dtype_name(out[0]->dtype));
            launch_fused_elementwise(p, ptrs, out[0]->data, out[0]->numel(), c.stream);
        },
        "fused_elementwise_bcast");
}

}  // namespace kiln::cuda

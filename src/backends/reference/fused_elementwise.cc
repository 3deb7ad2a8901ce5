// Reference kernel of FusedElementwise (made by src/passes/fuse_elementwise.cc): a chain of elementwise ops on
// float32 / bool values run as one node.
//
// The `program` attribute is a list of strings in postfix order over a stack of float32 values (a bool is 0 or 1).
// Every input k is broadcast (numpy rules) to the output shape; for each output element i the program is evaluated
// with in<k> = the element of input k that broadcasts to i, converted to float32 (float32 as is, bool as 0 / 1,
// int32 and int64 as static_cast<float>, which is ONNX's Cast to float32):
//   "in<k>"               push input k                                   (k < number of inputs)
//   "const:<v>"           push the scalar v (printed with 9 significant digits, so float32 round-trips)
//   "add" "sub" "mul" "div" "pow" "min" "max"
//                         pop b, pop a, push a + b, a - b, a * b, a / b, a^b, min(a, b), max(a, b)
//                         (min/max propagate NaN from a, like the Min/Max kernels)
//   "and" "or" "xor"      pop b, pop a, push (a != 0) && (b != 0), ... || ..., ... != ... as 1 / 0
//   "eq" "lt" "le" "gt" "ge"
//                         pop b, pop a, push a == b, a < b, a <= b, a > b, a >= b as 1 / 0 (false on NaN)
//   "neg" "abs" "sqrt" "exp" "log" "reciprocal" "erf" "tanh" "sigmoid" "relu"
//                         replace the top t by -t, |t|, sqrt t, e^t, ln t, 1/t, erf t, tanh t, 1/(1+e^-t), max(t, 0)
//   "leaky_relu:<alpha>"  t >= 0 ? t : alpha * t
//   "clip:<lo>:<hi>"      min(max(t, lo), hi)
//   "not"                 t == 0 ? 1 : 0
//   "to_bool"             t != 0 ? 1 : 0 (Cast to bool; NaN gives 1)
//   "where"               pop b, pop a, pop c, push c != 0 ? a : b
// and must leave exactly one value, the output: stored as float32, or as bool (value != 0) when the node's output
// is bool (attribute `out_dtype`=9, see src/ops/fused.cc). Example: y = sigmoid(x * 0.5 + b) * x - c with x, b, c
// inputs is
//   ["in0", "const:0.5", "mul", "in1", "add", "sigmoid", "in0", "mul", "in2", "sub"].
// Every formula is the one of the single-op reference kernel, so a fused chain gives the same numbers as the
// unfused one.
//
// Execution: the output is walked in broadcast runs (broadcast.h); each run is evaluated kChunk elements at a time,
// one instruction at a time over a stack of kChunk-element buffers, so the interpreter's dispatch is paid once per
// instruction and chunk, not per element.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "src/backends/reference/broadcast.h"
#include "src/backends/reference/reference_backend.h"

namespace kiln::backends::reference {

namespace {

constexpr size_t kMaxInputs = 8;  // op_list.def: FusedElementwise takes at most 8 inputs
constexpr int64_t kChunk = 256;

// Binary codes from kAdd to kGe, unary from kNeg to kToBool, then the ternary kWhere.
enum class Code {
    kInput, kConst,
    kAdd, kSub, kMul, kDiv, kPow, kMin, kMax, kAnd, kOr, kXor, kEq, kLt, kLe, kGt, kGe,
    kNeg, kAbs, kSqrt, kExp, kLog, kReciprocal, kErf, kTanh, kSigmoid, kRelu, kLeakyRelu, kClip, kNot, kToBool,
    kWhere,
};

struct Instr {
    Code code;
    int input = 0;       // kInput
    float a = 0, b = 0;  // kConst value; LeakyRelu alpha; Clip lo, hi
};

struct Program {
    std::vector<Instr> code;
    int max_depth = 0;
};

float parse_float(const std::string& s, const std::string& token, const std::string& where) {
    char* end = nullptr;
    float v = std::strtof(s.c_str(), &end);
    KILN_CHECK(!s.empty() && end == s.c_str() + s.size(), kInvalidModel, where, ": bad number '", s,
               "' in program token '", token, "'");
    return v;
}

Program compile(const std::vector<std::string>& tokens, size_t num_inputs, const std::string& where) {
    static const std::pair<const char*, Code> kBinary[] = {
        {"add", Code::kAdd}, {"sub", Code::kSub}, {"mul", Code::kMul}, {"div", Code::kDiv},
        {"pow", Code::kPow}, {"min", Code::kMin}, {"max", Code::kMax}, {"and", Code::kAnd},
        {"or", Code::kOr},   {"xor", Code::kXor}, {"eq", Code::kEq},   {"lt", Code::kLt},
        {"le", Code::kLe},   {"gt", Code::kGt},   {"ge", Code::kGe},
    };
    static const std::pair<const char*, Code> kUnary[] = {
        {"neg", Code::kNeg},   {"abs", Code::kAbs},         {"sqrt", Code::kSqrt}, {"exp", Code::kExp},
        {"log", Code::kLog},   {"reciprocal", Code::kReciprocal}, {"erf", Code::kErf}, {"tanh", Code::kTanh},
        {"sigmoid", Code::kSigmoid}, {"relu", Code::kRelu}, {"not", Code::kNot}, {"to_bool", Code::kToBool},
    };
    Program p;
    int depth = 0;
    auto need = [&](int n, const std::string& t) {
        KILN_CHECK(depth >= n, kInvalidModel, where, ": program token '", t, "' needs ", n,
                   " operand(s) on the stack");
    };
    for (const std::string& t : tokens) {
        Instr in{Code::kConst};
        bool found = false;
        if (t.rfind("in", 0) == 0 && t.size() > 2 && t.find_first_not_of("0123456789", 2) == std::string::npos) {
            in.code = Code::kInput;
            in.input = std::atoi(t.c_str() + 2);
            KILN_CHECK(static_cast<size_t>(in.input) < num_inputs, kInvalidModel, where, ": program token '", t,
                       "' names a missing input (the node has ", num_inputs, ")");
            ++depth;
            found = true;
        } else if (t.rfind("const:", 0) == 0) {
            in.a = parse_float(t.substr(6), t, where);
            ++depth;
            found = true;
        } else if (t.rfind("leaky_relu:", 0) == 0) {
            need(1, t);
            in.code = Code::kLeakyRelu;
            in.a = parse_float(t.substr(11), t, where);
            found = true;
        } else if (t.rfind("clip:", 0) == 0) {
            need(1, t);
            size_t colon = t.find(':', 5);
            KILN_CHECK(colon != std::string::npos, kInvalidModel, where, ": program token '", t,
                       "' is not clip:<lo>:<hi>");
            in.code = Code::kClip;
            in.a = parse_float(t.substr(5, colon - 5), t, where);
            in.b = parse_float(t.substr(colon + 1), t, where);
            found = true;
        }
        for (auto& [name, code] : kBinary)
            if (!found && t == name) {
                need(2, t);
                in.code = code;
                --depth;
                found = true;
            }
        for (auto& [name, code] : kUnary)
            if (!found && t == name) {
                need(1, t);
                in.code = code;
                found = true;
            }
        if (!found && t == "where") {
            need(3, t);
            in.code = Code::kWhere;
            depth -= 2;
            found = true;
        }
        KILN_CHECK(found, kInvalidModel, where, ": unknown program token '", t, "'");
        p.code.push_back(in);
        p.max_depth = std::max(p.max_depth, depth);
    }
    KILN_CHECK(depth == 1, kInvalidModel, where, ": the program leaves ", depth, " values on the stack instead of 1");
    return p;
}

// Logistic function without overflow for large |x| (as the Sigmoid kernel).
inline float sigmoid(float x) {
    if (x >= 0) return 1.f / (1.f + std::exp(-x));
    float e = std::exp(x);
    return e / (1.f + e);
}

template <typename F>
inline void unary(float* t, int64_t n, F f) {
    for (int64_t i = 0; i < n; ++i) t[i] = f(t[i]);
}

template <typename F>
inline void binary(float* a, const float* b, int64_t n, F f) {
    for (int64_t i = 0; i < n; ++i) a[i] = f(a[i], b[i]);
}

// n elements of type T from src (stepping, or one element repeated) as float32 into d.
template <typename T>
inline void load(const void* src, bool stepping, int64_t n, float* d) {
    const T* s = static_cast<const T*>(src);
    if (stepping) {
        for (int64_t i = 0; i < n; ++i) d[i] = static_cast<float>(s[i]);
    } else {
        std::fill(d, d + n, static_cast<float>(*s));
    }
}

void load_input(DataType t, const void* src, bool stepping, int64_t n, float* d) {
    switch (t) {
        case DataType::kFloat32: load<float>(src, stepping, n, d); break;
        case DataType::kBool: load<uint8_t>(src, stepping, n, d); break;
        case DataType::kInt32: load<int32_t>(src, stepping, n, d); break;
        case DataType::kInt64: load<int64_t>(src, stepping, n, d); break;
        default: break;  // rejected by make_ref_FusedElementwise
    }
}

// Runs the program over n elements; in[k] points at input k's first element, of dtype types[k], step[k] is 0 or 1.
// The result is left in stack[0 .. n).
void run_chunk(const Program& p, const std::array<const void*, kMaxInputs>& in,
               const std::array<DataType, kMaxInputs>& types, const std::array<int64_t, kMaxInputs>& step, int64_t n,
               float* stack) {
    int sp = 0;
    auto buf = [&](int i) { return stack + static_cast<int64_t>(i) * kChunk; };
    for (const Instr& ins : p.code) {
        switch (ins.code) {
            case Code::kInput:
                load_input(types[ins.input], in[ins.input], step[ins.input] != 0, n, buf(sp++));
                continue;
            case Code::kConst: std::fill(buf(sp), buf(sp) + n, ins.a); ++sp; continue;
            case Code::kWhere: {
                float* c = buf(sp - 3);
                const float* a = buf(sp - 2);
                const float* b = buf(sp - 1);
                for (int64_t i = 0; i < n; ++i) c[i] = c[i] != 0.f ? a[i] : b[i];
                sp -= 2;
                continue;
            }
            default: break;
        }
        if (ins.code <= Code::kGe) {  // binary: a = buf(sp - 2), b = buf(sp - 1)
            float* a = buf(sp - 2);
            const float* b = buf(sp - 1);
            --sp;
            switch (ins.code) {
                case Code::kAdd: binary(a, b, n, [](float u, float v) { return u + v; }); break;
                case Code::kSub: binary(a, b, n, [](float u, float v) { return u - v; }); break;
                case Code::kMul: binary(a, b, n, [](float u, float v) { return u * v; }); break;
                case Code::kDiv: binary(a, b, n, [](float u, float v) { return u / v; }); break;
                case Code::kPow: binary(a, b, n, [](float u, float v) { return std::pow(u, v); }); break;
                case Code::kMin:
                    binary(a, b, n, [](float u, float v) { return (u < v || std::isnan(u)) ? u : v; });
                    break;
                case Code::kMax:
                    binary(a, b, n, [](float u, float v) { return (u > v || std::isnan(u)) ? u : v; });
                    break;
                case Code::kAnd: binary(a, b, n, [](float u, float v) { return float(u != 0.f && v != 0.f); }); break;
                case Code::kOr: binary(a, b, n, [](float u, float v) { return float(u != 0.f || v != 0.f); }); break;
                case Code::kXor:
                    binary(a, b, n, [](float u, float v) { return float((u != 0.f) != (v != 0.f)); });
                    break;
                case Code::kEq: binary(a, b, n, [](float u, float v) { return float(u == v); }); break;
                case Code::kLt: binary(a, b, n, [](float u, float v) { return float(u < v); }); break;
                case Code::kLe: binary(a, b, n, [](float u, float v) { return float(u <= v); }); break;
                case Code::kGt: binary(a, b, n, [](float u, float v) { return float(u > v); }); break;
                case Code::kGe: binary(a, b, n, [](float u, float v) { return float(u >= v); }); break;
                default: break;
            }
            continue;
        }
        float* t = buf(sp - 1);
        const float alpha = ins.a, lo = ins.a, hi = ins.b;
        switch (ins.code) {
            case Code::kNeg: unary(t, n, [](float x) { return -x; }); break;
            case Code::kAbs: unary(t, n, [](float x) { return x < 0 ? -x : x; }); break;
            case Code::kSqrt: unary(t, n, [](float x) { return std::sqrt(x); }); break;
            case Code::kExp: unary(t, n, [](float x) { return std::exp(x); }); break;
            case Code::kLog: unary(t, n, [](float x) { return std::log(x); }); break;
            case Code::kReciprocal: unary(t, n, [](float x) { return 1.f / x; }); break;
            case Code::kErf: unary(t, n, [](float x) { return std::erf(x); }); break;
            case Code::kTanh: unary(t, n, [](float x) { return std::tanh(x); }); break;
            case Code::kSigmoid: unary(t, n, [](float x) { return sigmoid(x); }); break;
            case Code::kRelu: unary(t, n, [](float x) { return x < 0 ? 0.f : x; }); break;
            case Code::kLeakyRelu: unary(t, n, [alpha](float x) { return x >= 0 ? x : alpha * x; }); break;
            case Code::kClip:
                unary(t, n, [lo, hi](float x) {
                    float v = x < lo ? lo : x;
                    return v > hi ? hi : v;
                });
                break;
            case Code::kNot: unary(t, n, [](float x) { return float(x == 0.f); }); break;
            case Code::kToBool: unary(t, n, [](float x) { return float(x != 0.f); }); break;
            default: break;
        }
    }
}

}  // namespace

std::unique_ptr<Kernel> make_ref_FusedElementwise(const KernelNode& node) {
    const std::string where = node.where();
    KILN_CHECK(node.inputs.size() <= kMaxInputs, kUnsupported, where, ": ", node.inputs.size(),
               " inputs, the reference kernel takes at most ", kMaxInputs);
    std::array<DataType, kMaxInputs> types{};
    for (size_t i = 0; i < node.inputs.size(); ++i) {
        const DataType t = node.inputs[i].dtype;
        KILN_CHECK(node.inputs[i].present && (t == DataType::kFloat32 || t == DataType::kBool ||
                                              t == DataType::kInt32 || t == DataType::kInt64),
                   kUnsupported, where, ": input ", i, " must be a float32, bool, int32 or int64 tensor");
        types[i] = t;
    }
    const bool bool_out = node.outputs[0].dtype == DataType::kBool;
    KILN_CHECK(bool_out || node.outputs[0].dtype == DataType::kFloat32, kUnsupported, where,
               ": the output must be float32 or bool");
    const Program program = compile(node.attrs.get_strings("program"), node.inputs.size(), where);
    return make_kernel(
        [program, types, bool_out](const KernelArgs& a) {
            static const Shape kScalar{};
            Tensor& out = *a.outputs[0];
            std::array<const Shape*, kMaxInputs> shapes;
            std::array<const uint8_t*, kMaxInputs> base{};
            std::array<int64_t, kMaxInputs> size{};
            for (size_t k = 0; k < kMaxInputs; ++k) {
                bool real = k < a.inputs.size();
                shapes[k] = real ? &a.inputs[k]->shape() : &kScalar;  // padding: a scalar never splits a run
                if (real) base[k] = static_cast<const uint8_t*>(a.inputs[k]->raw());
                if (real) size[k] = static_cast<int64_t>(dtype_size(types[k]));
            }
            std::vector<float> stack(static_cast<size_t>(program.max_depth) * kChunk);
            for_each_broadcast_run<kMaxInputs>(out.shape(), shapes, [&](const BroadcastRun<kMaxInputs>& r) {
                for (int64_t start = 0; start < r.count; start += kChunk) {
                    const int64_t n = std::min(kChunk, r.count - start);
                    std::array<const void*, kMaxInputs> in{};
                    for (size_t k = 0; k < a.inputs.size(); ++k)
                        in[k] = base[k] + (r.offset[k] + start * r.step[k]) * size[k];
                    run_chunk(program, in, types, r.step, n, stack.data());
                    const int64_t o = r.out_offset + start;
                    if (bool_out) {
                        uint8_t* y = out.data<uint8_t>() + o;
                        for (int64_t i = 0; i < n; ++i) y[i] = stack[i] != 0.f;
                    } else {
                        std::copy(stack.data(), stack.data() + n, out.data<float>() + o);
                    }
                }
            });
        },
        "fused_elementwise_f32_ref");
}

}  // namespace kiln::backends::reference

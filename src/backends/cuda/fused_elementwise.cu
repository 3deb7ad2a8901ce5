// FusedElementwise on the GPU: one thread per output element evaluates the node's postfix program over a small
// register stack (same formulas as the reference kernel), with numpy broadcast of every input. Inputs may be fp32,
// fp16/bf16 (kept reduced by the executor), bool (uint8), int32 or int64, each loaded as a float; the output is fp32,
// fp16/bf16 or bool (uint8 0 / 1). Also Cast to fp32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

struct InputPtrs {
    const void* p[kMaxEwInputs];
};

__device__ __forceinline__ float load_in(const EwProgram& prog, const InputPtrs& in, int k, int64_t off) {
    switch (prog.in_io[k]) {
        case EwIo::kF16: return __half2float(static_cast<const __half*>(in.p[k])[off]);
        case EwIo::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(in.p[k])[off]);
        case EwIo::kBool: return static_cast<const uint8_t*>(in.p[k])[off] ? 1.f : 0.f;
        case EwIo::kI32: return static_cast<float>(static_cast<const int32_t*>(in.p[k])[off]);
        case EwIo::kI64: return static_cast<float>(static_cast<const int64_t*>(in.p[k])[off]);
        default: return static_cast<const float*>(in.p[k])[off];
    }
}

// I: the index type, uint32_t when the output has fewer than 2^31 elements (every input offset is then smaller
// too): a 64-bit division costs several times a 32-bit one, and the index decomposition is most of the work here.
template <typename I>
__global__ void fused_elementwise_bcast(EwProgram prog, InputPtrs in, void* __restrict__ y, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        I off[kMaxEwInputs] = {};
        I rem = static_cast<I>(i);
        for (int d = prog.rank - 1; d >= 0; --d) {
            const I dim = static_cast<I>(prog.shape[d]);
            const I c = rem % dim;
            rem /= dim;
            for (int k = 0; k < prog.num_inputs; ++k) off[k] += c * static_cast<I>(prog.strides[k][d]);
        }
        float st[kMaxEwStack];
        int sp = 0;
        for (int pc = 0; pc < prog.n; ++pc) {
            const EwInstr& ins = prog.code[pc];
            EwCode code = static_cast<EwCode>(ins.code);
            if (code == EwCode::kInput) {
                st[sp++] = load_in(prog, in, ins.input, off[ins.input]);
                continue;
            }
            if (code == EwCode::kConst) {
                st[sp++] = ins.a;
                continue;
            }
            if (code == EwCode::kWhere) {  // pop b, pop a, pop c, push c != 0 ? a : b
                sp -= 2;
                st[sp - 1] = st[sp - 1] != 0.f ? st[sp] : st[sp + 1];
                continue;
            }
            if (code <= EwCode::kGe) {
                float b = st[--sp], a = st[sp - 1], r = a;
                switch (code) {
                    case EwCode::kAdd: r = a + b; break;
                    case EwCode::kSub: r = a - b; break;
                    case EwCode::kMul: r = a * b; break;
                    case EwCode::kDiv: r = a / b; break;
                    case EwCode::kPow: r = powf(a, b); break;
                    case EwCode::kMin: r = (a < b || isnan(a)) ? a : b; break;
                    case EwCode::kMax: r = (a > b || isnan(a)) ? a : b; break;
                    case EwCode::kAnd: r = (a != 0.f && b != 0.f) ? 1.f : 0.f; break;
                    case EwCode::kOr: r = (a != 0.f || b != 0.f) ? 1.f : 0.f; break;
                    case EwCode::kXor: r = ((a != 0.f) != (b != 0.f)) ? 1.f : 0.f; break;
                    case EwCode::kEq: r = a == b ? 1.f : 0.f; break;
                    case EwCode::kLt: r = a < b ? 1.f : 0.f; break;
                    case EwCode::kLe: r = a <= b ? 1.f : 0.f; break;
                    case EwCode::kGt: r = a > b ? 1.f : 0.f; break;
                    case EwCode::kGe: r = a >= b ? 1.f : 0.f; break;
                    default: break;
                }
                st[sp - 1] = r;
                continue;
            }
            float t = st[sp - 1];
            switch (code) {
                case EwCode::kNeg: t = -t; break;
                case EwCode::kAbs: t = t < 0.f ? -t : t; break;
                case EwCode::kSqrt: t = sqrtf(t); break;
                case EwCode::kExp: t = expf(t); break;
                case EwCode::kLog: t = logf(t); break;
                case EwCode::kReciprocal: t = 1.f / t; break;
                case EwCode::kErf: t = erff(t); break;
                case EwCode::kTanh: t = tanhf(t); break;
                case EwCode::kSigmoid: t = 1.f / (1.f + expf(-t)); break;
                case EwCode::kRelu: t = t < 0.f ? 0.f : t; break;
                case EwCode::kLeakyRelu: t = t >= 0.f ? t : ins.a * t; break;
                case EwCode::kClip: t = t < ins.a ? ins.a : t; t = t > ins.b ? ins.b : t; break;
                case EwCode::kNot: t = t == 0.f ? 1.f : 0.f; break;
                case EwCode::kToBool: t = t != 0.f ? 1.f : 0.f; break;
                default: break;
            }
            st[sp - 1] = t;
        }
        switch (prog.y_io) {
            case EwIo::kF16: static_cast<__half*>(y)[i] = __float2half_rn(st[0]); break;
            case EwIo::kBF16: static_cast<__nv_bfloat16*>(y)[i] = __float2bfloat16_rn(st[0]); break;
            case EwIo::kBool: static_cast<uint8_t*>(y)[i] = st[0] != 0.f ? 1 : 0; break;
            default: static_cast<float*>(y)[i] = st[0]; break;
        }
    }
}

template <typename T>
__global__ void cast_to_f32(const T* __restrict__ x, float* __restrict__ y, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = static_cast<float>(x[i]);
}

__global__ void cast_f16_to_f32(const __half* __restrict__ x, float* __restrict__ y, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = __half2float(x[i]);
}

}  // namespace

void launch_fused_elementwise(const EwProgram& p, const void* const* inputs, void* y, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    InputPtrs in{};
    for (int k = 0; k < p.num_inputs; ++k) in.p[k] = inputs[k];
    if (n < (int64_t(1) << 31))
        launch_pdl(fused_elementwise_bcast<uint32_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, p, in, y, n);
    else
        launch_pdl(fused_elementwise_bcast<int64_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, p, in, y, n);
}

// src_dtype follows kiln::DataType: 0 f32, 1 f16, 2 bf16, 3 f64, 4 i8, 5 u8, 6 i32, 7 i64, 8 bool
void launch_cast_to_f32(const void* x, int src_dtype, float* y, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    unsigned b = ew_blocks(n);
    switch (src_dtype) {
        case 0:
            launch_pdl(cast_to_f32<float>, dim3(b), dim3(kEwThreads), 0, s, static_cast<const float*>(x), y, n);
            break;
        case 1:
            launch_pdl(cast_f16_to_f32, dim3(b), dim3(kEwThreads), 0, s, static_cast<const __half*>(x), y, n);
            break;
        case 2: launch_low_to_f32(x, LowType::kBF16, y, n, s); break;
        case 3:
            launch_pdl(cast_to_f32<double>, dim3(b), dim3(kEwThreads), 0, s, static_cast<const double*>(x), y, n);
            break;
        case 4:
            launch_pdl(cast_to_f32<int8_t>, dim3(b), dim3(kEwThreads), 0, s, static_cast<const int8_t*>(x), y, n);
            break;
        case 5:
        case 8:
            launch_pdl(cast_to_f32<uint8_t>, dim3(b), dim3(kEwThreads), 0, s, static_cast<const uint8_t*>(x), y, n);
            break;
        case 6:
            launch_pdl(cast_to_f32<int32_t>, dim3(b), dim3(kEwThreads), 0, s, static_cast<const int32_t*>(x), y, n);
            break;
        case 7:
            launch_pdl(cast_to_f32<int64_t>, dim3(b), dim3(kEwThreads), 0, s, static_cast<const int64_t*>(x), y, n);
            break;
        default: break;
    }
}

}  // namespace kiln::cuda

// kiln's elementwise CUDA kernels (float32, any layout): unary ops, binary ops and Where with numpy broadcast,
// the fused bias + residual + activation epilogue of FusedConv/FusedMatMul, dtype conversions and the generic
// strided copy behind Transpose, Slice, Concat, Split and Expand.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/device_math.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

__device__ __forceinline__ float apply_unary(int op, float x, float alpha, float beta) {
    switch (static_cast<UnaryOp>(op)) {
        case UnaryOp::kRelu: return x > 0.f ? x : 0.f;
        case UnaryOp::kSigmoid: return 1.f / (1.f + expf(-x));
        case UnaryOp::kTanh: return tanhf(x);
        case UnaryOp::kGelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
        case UnaryOp::kErf: return erff(x);
        case UnaryOp::kExp: return expf(x);
        case UnaryOp::kLog: return logf(x);
        case UnaryOp::kSqrt: return sqrtf(x);
        case UnaryOp::kNeg: return -x;
        case UnaryOp::kAbs: return fabsf(x);
        case UnaryOp::kReciprocal: return 1.f / x;
        case UnaryOp::kLeakyRelu: return x >= 0.f ? x : alpha * x;
        case UnaryOp::kElu: return x >= 0.f ? x : alpha * (expf(x) - 1.f);
        case UnaryOp::kHardSigmoid: return fmaxf(0.f, fminf(1.f, alpha * x + beta));
        case UnaryOp::kHardSwish: return x * fmaxf(0.f, fminf(1.f, x / 6.f + 0.5f));
        case UnaryOp::kSoftplus: return x > 20.f ? x : log1pf(expf(x));
        case UnaryOp::kClip: return fminf(fmaxf(x, alpha), beta);
        case UnaryOp::kSelu: return x > 0.f ? beta * x : beta * alpha * (expf(x) - 1.f);
        case UnaryOp::kGeluTanh: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    }
    return x;
}

__device__ __forceinline__ float apply_binary(int op, float a, float b) {
    switch (static_cast<BinaryOp>(op)) {
        case BinaryOp::kAdd: return a + b;
        case BinaryOp::kSub: return a - b;
        case BinaryOp::kMul: return a * b;
        case BinaryOp::kDiv: return a / b;
        case BinaryOp::kPow: return powf(a, b);
        case BinaryOp::kMin: return (a < b || isnan(a)) ? a : b;
        case BinaryOp::kMax: return (a > b || isnan(a)) ? a : b;
        case BinaryOp::kPRelu: return a >= 0.f ? a : a * b;
    }
    return a;
}

__global__ void unary_f32_contiguous(int op, const float* __restrict__ x, float* __restrict__ y, int64_t n,
                                     float alpha, float beta) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = apply_unary(op, x[i], alpha, beta);
}

// Broadcast strides: d.src_strides for a, b_strides for b (passed by value in a small struct).
struct Strides8 {
    int64_t s[kMaxDims];
};

__global__ void binary_f32_broadcast(int op, const float* __restrict__ a, const float* __restrict__ b,
                                     float* __restrict__ y, StridedDims d, Strides8 bs, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t rem = i, ao = 0, bo = 0;
        for (int k = d.rank - 1; k >= 0; --k) {
            int64_t c = rem % d.shape[k];
            rem /= d.shape[k];
            ao += c * d.src_strides[k];
            bo += c * bs.s[k];
        }
        y[i] = apply_binary(op, a[ao], b[bo]);
    }
}

__global__ void binary_f32_contiguous(int op, const float* __restrict__ a, const float* __restrict__ b,
                                      float* __restrict__ y, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = apply_binary(op, a[i], b[i]);
}

// I: uint32_t below 2^31 output elements (32-bit divisions; see fused_elementwise.cu)
template <typename I>
__global__ void where_f32_broadcast(const uint8_t* __restrict__ c, const float* __restrict__ a,
                                    const float* __restrict__ b, float* __restrict__ y, StridedDims d, Strides8 as,
                                    Strides8 bs, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        I rem = static_cast<I>(i), co = 0, ao = 0, bo = 0;
        for (int k = d.rank - 1; k >= 0; --k) {
            const I dim = static_cast<I>(d.shape[k]);
            const I idx = rem % dim;
            rem /= dim;
            co += idx * static_cast<I>(d.src_strides[k]);
            ao += idx * static_cast<I>(as.s[k]);
            bo += idx * static_cast<I>(bs.s[k]);
        }
        y[i] = c[co] ? a[ao] : b[bo];
    }
}

template <typename T>
__device__ __forceinline__ float load_f32(const T* p, int64_t i);
template <>
__device__ __forceinline__ float load_f32<float>(const float* p, int64_t i) { return p[i]; }
template <>
__device__ __forceinline__ float load_f32<__half>(const __half* p, int64_t i) { return __half2float(p[i]); }
template <>
__device__ __forceinline__ float load_f32<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
    return __bfloat162float(p[i]);
}

__device__ __forceinline__ void store_low(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_low(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void store_low(float* p, float v) { *p = v; }

template <typename T, typename Y>
__global__ void bias_act_epilogue(const T* x, Y* y, const float* __restrict__ bias,
                                  const float* __restrict__ z, int64_t n, int64_t channels, int64_t inner,
                                  DevAct act) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float v = load_f32(x, i);
        if (bias) v += bias[(i / inner) % channels];
        if (z) v += z[i];
        store_low(y + i, apply_act(v, act));
    }
}

template <typename T>
__global__ void f32_to_low(const float* __restrict__ x, T* __restrict__ y, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        store_low(y + i, x[i]);
}

template <typename T>
__global__ void low_to_f32(const T* __restrict__ x, float* __restrict__ y, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        y[i] = load_f32(x, i);
}

template <typename T>
__global__ void strided_copy(const T* __restrict__ src, T* __restrict__ dst, StridedDims d, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        int64_t rem = i, so = 0, dof = 0;
        for (int k = d.rank - 1; k >= 0; --k) {
            int64_t c = rem % d.shape[k];
            rem /= d.shape[k];
            so += c * d.src_strides[k];
            dof += c * d.dst_strides[k];
        }
        dst[dof] = src[so];
    }
}

Strides8 to_strides8(const int64_t* s, int rank) {
    Strides8 r{};
    for (int i = 0; i < rank; ++i) r.s[i] = s[i];
    return r;
}

}  // namespace

void launch_unary_f32(UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta, cudaStream_t s) {
    if (n == 0) return;
    launch_pdl(unary_f32_contiguous, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, static_cast<int>(op), x, y, n, alpha,
               beta);
}

void launch_binary_f32(BinaryOp op, const float* a, const float* b, float* y, const StridedDims& da,
                       const int64_t* b_strides, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    bool contiguous = true;
    int64_t expect = 1;
    for (int k = da.rank - 1; k >= 0; --k) {
        if (da.shape[k] != 1 && (da.src_strides[k] != expect || b_strides[k] != expect)) contiguous = false;
        expect *= da.shape[k];
    }
    if (contiguous)
        launch_pdl(binary_f32_contiguous, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, static_cast<int>(op), a, b, y, n);
    else
        launch_pdl(binary_f32_broadcast, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, static_cast<int>(op), a, b, y, da,
                   to_strides8(b_strides, da.rank), n);
}

void launch_where_f32(const uint8_t* c, const float* a, const float* b, float* y, const StridedDims& d,
                      const int64_t* a_strides, const int64_t* b_strides, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    auto kernel = n < (int64_t(1) << 31) ? where_f32_broadcast<uint32_t> : where_f32_broadcast<int64_t>;
    launch_pdl(kernel, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, c, a, b, y, d, to_strides8(a_strides, d.rank),
               to_strides8(b_strides, d.rank), n);
}

void launch_bias_act_epilogue(const void* x, LowType xt, void* y, LowType yt, const float* bias, const float* z,
                              int64_t n, int64_t channels, int64_t inner, DevAct act, cudaStream_t s) {
    if (n == 0) return;
    auto go = [&](auto* yp) {
        using Y = std::remove_pointer_t<decltype(yp)>;
        if (xt == LowType::kF16)
            launch_pdl(bias_act_epilogue<__half, Y>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const __half*>(x), yp, bias, z, n, channels, inner, act);
        else if (xt == LowType::kBF16)
            launch_pdl(bias_act_epilogue<__nv_bfloat16, Y>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const __nv_bfloat16*>(x), yp, bias, z, n, channels, inner, act);
        else
            launch_pdl(bias_act_epilogue<float, Y>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const float*>(x), yp, bias, z, n, channels, inner, act);
    };
    if (yt == LowType::kF16) go(static_cast<__half*>(y));
    else if (yt == LowType::kBF16) go(static_cast<__nv_bfloat16*>(y));
    else go(static_cast<float*>(y));
}

void launch_f32_to_low(const float* src, void* dst, LowType t, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    if (t == LowType::kBF16)
        launch_pdl(f32_to_low<__nv_bfloat16>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, src,
                   static_cast<__nv_bfloat16*>(dst), n);
    else
        launch_pdl(f32_to_low<__half>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, src, static_cast<__half*>(dst), n);
}

void launch_low_to_f32(const void* src, LowType t, float* dst, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    if (t == LowType::kBF16)
        launch_pdl(low_to_f32<__nv_bfloat16>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                   static_cast<const __nv_bfloat16*>(src), dst, n);
    else
        launch_pdl(low_to_f32<__half>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, static_cast<const __half*>(src), dst,
                   n);
}

void launch_strided_copy(const void* src, void* dst, const StridedDims& d, int elem_size, cudaStream_t s) {
    int64_t n = 1;
    for (int k = 0; k < d.rank; ++k) n *= d.shape[k];
    if (n == 0) return;
    switch (elem_size) {
        case 1:
            launch_pdl(strided_copy<uint8_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), d, n);
            break;
        case 2:
            launch_pdl(strided_copy<uint16_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), d, n);
            break;
        case 8:
            launch_pdl(strided_copy<uint64_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), d, n);
            break;
        default:
            launch_pdl(strided_copy<uint32_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s,
                       static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), d, n);
            break;
    }
}

}  // namespace kiln::cuda

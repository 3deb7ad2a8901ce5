// Integer and boolean kernels for the attention-mask arithmetic that exporters leave in transformer graphs
// (Hugging Face BERT: Cast(int64 -> bool), And, Not, Equal on the mask): Cast between f32/f64/int8/uint8/int32/
// int64/bool and logical/comparison ops with broadcast. Keeping them on the device keeps the whole inference
// capturable in one CUDA graph (a host node would force a copy and a synchronisation per run).
#include <cuda_runtime.h>

#include <cstdint>

#include "src/backends/cuda/cuda_launch.h"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

// dtype codes follow kiln::DataType: 0 f32, 3 f64, 4 i8, 5 u8, 6 i32, 7 i64, 8 bool
__device__ __forceinline__ bool is_float_code(int dt) { return dt == 0 || dt == 3; }

__device__ __forceinline__ double load_f(const void* p, int dt, int64_t i) {
    switch (dt) {
        case 0: return static_cast<const float*>(p)[i];
        case 3: return static_cast<const double*>(p)[i];
        case 4: return static_cast<const int8_t*>(p)[i];
        case 6: return static_cast<const int32_t*>(p)[i];
        case 7: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
        default: return static_cast<const uint8_t*>(p)[i];  // u8, bool
    }
}

__device__ __forceinline__ int64_t load_i(const void* p, int dt, int64_t i) {
    switch (dt) {
        case 4: return static_cast<const int8_t*>(p)[i];
        case 6: return static_cast<const int32_t*>(p)[i];
        case 7: return static_cast<const int64_t*>(p)[i];
        default: return static_cast<const uint8_t*>(p)[i];
    }
}

__device__ __forceinline__ void store(void* p, int dt, int64_t i, double f, int64_t v, bool from_float) {
    switch (dt) {
        case 0: static_cast<float*>(p)[i] = from_float ? static_cast<float>(f) : static_cast<float>(v); break;
        case 3: static_cast<double*>(p)[i] = from_float ? f : static_cast<double>(v); break;
        case 8: static_cast<uint8_t*>(p)[i] = from_float ? f != 0.0 : v != 0; break;
        case 4: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(from_float ? static_cast<int64_t>(f) : v); break;
        case 5: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(from_float ? static_cast<int64_t>(f) : v); break;
        case 6: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(from_float ? static_cast<int64_t>(f) : v); break;
        case 7: static_cast<int64_t*>(p)[i] = from_float ? static_cast<int64_t>(f) : v; break;
        default: break;
    }
}

__global__ void cast_any(const void* __restrict__ x, int src, void* __restrict__ y, int dst, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    const bool ff = is_float_code(src);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        store(y, dst, i, ff ? load_f(x, src, i) : 0.0, ff ? 0 : load_i(x, src, i), ff);
}

// I: uint32_t when the output has fewer than 2^31 elements (a broadcast input never has more): 64-bit divisions
// cost several times as much, and the index decomposition is most of these kernels' work.
template <typename I>
__device__ __forceinline__ I bcast_offset(I i, const StridedDims& d, const int64_t* strides) {
    I off = 0;
    for (int k = d.rank - 1; k >= 0; --k) {
        const I dim = static_cast<I>(d.shape[k]);
        const I c = i % dim;
        i /= dim;
        off += c * static_cast<I>(strides[k]);
    }
    return off;
}

struct Strides {
    int64_t s[kMaxDims];
};

template <typename I>
__global__ void logic_bcast(int op, const void* __restrict__ a, const void* __restrict__ b, int dt,
                            uint8_t* __restrict__ y, StridedDims d, Strides bs, int64_t n) {
    pdl_wait();  // launched with launch_pdl()
    pdl_launch_dependents();
    const bool ff = is_float_code(dt);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t ia = bcast_offset(static_cast<I>(i), d, d.src_strides),
                      ib = op == kLogicNot ? 0 : bcast_offset(static_cast<I>(i), d, bs.s);
        bool r = false;
        if (op == kLogicAnd || op == kLogicOr || op == kLogicNot) {
            bool u = load_i(a, 8, ia) != 0, v = op == kLogicNot ? false : load_i(b, 8, ib) != 0;
            r = op == kLogicAnd ? (u && v) : op == kLogicOr ? (u || v) : !u;
        } else if (ff) {
            double u = load_f(a, dt, ia), v = load_f(b, dt, ib);
            r = op == kLogicEqual ? u == v : op == kLogicLess ? u < v : op == kLogicGreater ? u > v
                : op == kLogicLessOrEqual ? u <= v : u >= v;
        } else {
            int64_t u = load_i(a, dt, ia), v = load_i(b, dt, ib);
            r = op == kLogicEqual ? u == v : op == kLogicLess ? u < v : op == kLogicGreater ? u > v
                : op == kLogicLessOrEqual ? u <= v : u >= v;
        }
        y[i] = r;
    }
}

}  // namespace

void launch_cast(const void* x, int src_dtype, void* y, int dst_dtype, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    launch_pdl(cast_any, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, x, src_dtype, y, dst_dtype, n);
}

void launch_logic(int op, const void* a, const void* b, int dtype, uint8_t* y, const StridedDims& da,
                  const int64_t* b_strides, int64_t n, cudaStream_t s) {
    if (n == 0) return;
    Strides bs{};
    for (int k = 0; k < da.rank; ++k) bs.s[k] = b_strides ? b_strides[k] : 0;
    if (n < (int64_t(1) << 31))
        launch_pdl(logic_bcast<uint32_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, op, a, b, dtype, y, da, bs, n);
    else
        launch_pdl(logic_bcast<int64_t>, dim3(ew_blocks(n)), dim3(kEwThreads), 0, s, op, a, b, dtype, y, da, bs, n);
}

}  // namespace kiln::cuda

// GEMMs of few rows (a batch-1 transformer's projections: 128-256 rows) on tensor cores, launched with programmatic
// dependent launch. At that size a GEMM is bound by latency, not by FLOPs or bandwidth: cuBLASLt's kernels take
// 4-7 us for what is a microsecond of weight traffic, and they cannot be launched as PDL secondaries, so each waits
// for the kernel before it to finish and flush before it even starts. This kernel copies its weight slab into
// shared memory *before* waiting for the earlier kernels (the weights are constants), then its rows of A, then
// multiplies with mma.sync and applies the epilogue in registers.
//
// Block: 4 warps, a 64 x 64 tile of Y (16 rows per warp), the whole K range of one split at once (K / splits <= 768:
// A's 64 x Kc and W's Kc x 64 slabs fit in shared memory together). A arrives in four commit groups so the products
// of the first quarter overlap the copies of the rest.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdlib>
#include <string>

#include "src/backends/cuda/device_math.cuh"
#include "src/backends/cuda/mma.cuh"
#include "src/backends/cuda/pdl.cuh"

namespace kiln::cuda {

namespace {

constexpr int kTile = 64;          // rows and columns of Y per block
constexpr int kWarps = 4;
constexpr int kAPad = 8, kWPad = 8;  // elements of padding per shared row (conflict-free ldmatrix)

__host__ __device__ constexpr size_t small_gemm_smem(int kc, int elem) {
    return (static_cast<size_t>(kTile) * (kc + kAPad) + static_cast<size_t>(kc) * (kTile + kWPad)) * elem;
}

// Waits until the first `done` of A's four commit groups (and the weight group before them) have landed.
__device__ __forceinline__ void wait_quarters(int done) {
    switch (done) {
        case 1: cp_async_wait<3>(); break;
        case 2: cp_async_wait<2>(); break;
        case 3: cp_async_wait<1>(); break;
        default: cp_async_wait<0>(); break;
    }
}

template <typename T, typename TY>
__global__ void __launch_bounds__(kWarps * 32) gemm_small_m(SmallGemmArgs p) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    if (p.early_trigger) pdl_launch_dependents();  // the next kernel waits for this grid in its pdl_wait()
    const int kc = p.kc, lda_s = kc + kAPad;
    constexpr int ldw_s = kTile + kWPad;
    T* as = reinterpret_cast<T*>(smem_raw);  // [64][kc + pad]
    T* ws = as + kTile * lda_s;              // [kc][64 + pad]
    const int n0 = blockIdx.x * kTile, m0 = blockIdx.y * kTile, split = blockIdx.z;
    const int64_t k0 = static_cast<int64_t>(split) * kc;
    const T* w = static_cast<const T*>(p.w);
    const T* a = static_cast<const T*>(p.a);
    const int tid = threadIdx.x;
    // the weight slab W[k0 .. k0 + kc, n0 .. n0 + 64]: constants, fetched before waiting for the kernels before
    for (int i = tid; i < kc * (kTile / 8); i += kWarps * 32) {
        const int r = i >> 3, c = (i & 7) * 8;
        cp_async16(ws + r * ldw_s + c, w + (k0 + r) * p.n + n0 + c, true);
    }
    cp_async_commit();
    pdl_wait();  // A and the residual come from earlier kernels
    // A's rows m0 .. m0 + 64 (zeros past m), columns k0 .. k0 + kc, in four quarters of kc / 4 columns
    const int qc = kc / 4, chunks = qc / 8;  // 16-byte chunks per row and quarter
    for (int q = 0; q < 4; ++q) {
        for (int i = tid; i < kTile * chunks; i += kWarps * 32) {
            const int r = i / chunks, c = q * qc + (i - r * chunks) * 8;
            const bool valid = m0 + r < p.m;
            cp_async16(as + r * lda_s + c, valid ? a + static_cast<int64_t>(m0 + r) * p.lda + k0 + c : a, valid);
        }
        cp_async_commit();
    }
    const int warp = tid >> 5, lane = tid & 31;
    float acc[kTile / 8][4] = {};
    const T* arow = as + (warp * 16 + (lane & 15)) * lda_s + (lane >> 4) * 8;
    const T* wrow = ws + (lane & 15) * ldw_s + (lane >> 4) * 8;
    for (int q = 0; q < 4; ++q) {
        wait_quarters(q + 1);
        __syncthreads();
        for (int kk = q * qc; kk < (q + 1) * qc; kk += 16) {
            uint32_t af[4];
            ldmatrix_x4(arow + kk, af);
#pragma unroll
            for (int j = 0; j < kTile / 8; j += 2) {
                uint32_t bf[4];
                ldmatrix_x4_trans(wrow + kk * ldw_s + j * 8, bf);
                mma16816<T>(acc[j], af, bf[0], bf[1]);
                mma16816<T>(acc[j + 1], af, bf[2], bf[3]);
            }
        }
    }
    if (!p.early_trigger) pdl_launch_dependents();
    // epilogue from the accumulators: lane holds rows (lane / 4) and (lane / 4 + 8) of its warp's 16, columns
    // 2 (lane % 4) + {0, 1} of each 8-column tile
    const int r0 = m0 + warp * 16 + (lane >> 2);
#pragma unroll
    for (int j = 0; j < kTile / 8; ++j) {
        const int col = n0 + j * 8 + 2 * (lane & 3);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int row = r0 + h * 8;
            if (row >= p.m) continue;
            float v0 = acc[j][2 * h], v1 = acc[j][2 * h + 1];
            const int64_t at = static_cast<int64_t>(row) * p.n + col;
            if (p.part) {  // split-K partial product: FusedMatMulNorm's row kernel adds the splits
                *reinterpret_cast<float2*>(p.part + split * p.part_stride + at) = make_float2(v0, v1);
                continue;
            }
            if (p.bias) v0 += p.bias[col], v1 += p.bias[col + 1];
            if (p.z) {
                if (p.z_low) {
                    const T* z = static_cast<const T*>(p.z) + at;
                    v0 += low_to_f32(z[0]), v1 += low_to_f32(z[1]);
                } else {
                    const float* z = static_cast<const float*>(p.z) + at;
                    v0 += z[0], v1 += z[1];
                }
            }
            v0 = apply_act(v0, p.act), v1 = apply_act(v1, p.act);
            TY* y = static_cast<TY*>(p.y) + at;
            if constexpr (std::is_same_v<TY, float>) *reinterpret_cast<float2*>(y) = make_float2(v0, v1);
            else *reinterpret_cast<uint32_t*>(y) = pack2<T>(v0, v1);
        }
    }
}

template <typename T, typename TY>
bool launch_typed(const SmallGemmArgs& p, dim3 grid, size_t smem, cudaStream_t s) {
    auto kernel = gemm_small_m<T, TY>;
    // dynamic shared memory above 48 KiB needs an opt-in (per kernel and device; a host-side attribute, allowed
    // while a stream is captured)
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) !=
        cudaSuccess)
        return false;
    return launch_pdl(kernel, grid, dim3(kWarps * 32), smem, s, p) == cudaSuccess;
}

bool device_info(int* major, int* sms, int* smem_optin) {
    int dev = 0;
    if (cudaGetDevice(&dev) == cudaSuccess &&
        cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(sms, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) == cudaSuccess)
        return true;
    cudaGetLastError();
    return false;
}

}  // namespace

bool small_gemm_fits(int64_t m, int64_t n, int64_t k, int splits) {
    if (m <= 0 || m > kSmallGemmMaxRows || n <= 0 || n % kTile != 0 || n > (int64_t(1) << 30) || splits < 1 ||
        k % splits != 0)
        return false;
    const int64_t kc = k / splits;
    if (kc % 64 != 0 || kc > kSmallGemmMaxK) return false;
    int major = 0, sms = 0, optin = 0;
    return device_info(&major, &sms, &optin) && major >= 8 &&
           small_gemm_smem(static_cast<int>(kc), 2) <= static_cast<size_t>(optin);
}

int small_gemm_splits(int64_t m, int64_t n, int64_t k) {
    int major = 0, sms = 0, optin = 0;
    if (!device_info(&major, &sms, &optin)) return 0;
    const int64_t tiles = (n / kTile) * ((m + kTile - 1) / kTile);
    int best = 0;
    for (int s : {1, 2, 3, 4, 6, 8, 12, 16}) {
        if (!small_gemm_fits(m, n, k, s)) continue;
        if (best == 0 || tiles * s <= sms) best = s;  // the most splits that still fit one wave
    }
    return best;
}

bool launch_small_gemm(const SmallGemmArgs& args, LowType t, int splits, cudaStream_t s) {
    SmallGemmArgs p = args;
    static const bool late = [] {
        const char* e = std::getenv("KILN_CUDA_SMALL_GEMM_TRIGGER");
        return e && std::string(e) == "late";
    }();
    p.early_trigger = !late;
    p.kc = static_cast<int>(args.k / splits);
    dim3 grid(static_cast<unsigned>(p.n / kTile), static_cast<unsigned>((p.m + kTile - 1) / kTile),
              static_cast<unsigned>(splits));
    const size_t smem = small_gemm_smem(p.kc, 2);
    const bool f32_out = p.part || !p.y_low;
    if (t == LowType::kBF16)
        return f32_out ? launch_typed<__nv_bfloat16, float>(p, grid, smem, s)
                       : launch_typed<__nv_bfloat16, __nv_bfloat16>(p, grid, smem, s);
    return f32_out ? launch_typed<__half, float>(p, grid, smem, s) : launch_typed<__half, __half>(p, grid, smem, s);
}

}  // namespace kiln::cuda

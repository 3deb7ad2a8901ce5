#pragma once
// Shared pieces of the CUDA backend: error checks, device tensors, the per-run context handed to kernels, the
// device kernel interface and the launchers of kiln's own CUDA kernels (*.cu). Included by host code (.cc, g++)
// and device code (.cu, nvcc): no CUDA-only syntax here.
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

#include "kiln/tensor.h"
#include "src/backends/backend.h"
#include "src/backends/cuda/cuda_launch.h"
#include "src/common/check.h"

struct cublasLtContext;
struct cudnnContext;

namespace kiln::cuda {

/// Throws kiln::Error(kInternal) naming `what` (the node) when a CUDA runtime call fails.
inline void check_cuda(cudaError_t err, const char* call, const std::string& what) {
    if (err == cudaSuccess) return;
    if (err == cudaErrorMemoryAllocation)
        KILN_FAIL(kOutOfMemory, what, ": out of GPU memory (", call, ")");
    KILN_FAIL(kInternal, what, ": CUDA error ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ") in ", call);
}
#define KILN_CUDA_CHECK(call, what) ::kiln::cuda::check_cuda((call), #call, (what))

/// A tensor in device memory (not owned).
struct DevTensor {
    void* data = nullptr;
    DataType dtype = DataType::kFloat32;
    Shape shape;
    const Tensor* host = nullptr;  ///< host copy when one exists (weights, values made by host nodes)
    int64_t numel() const { return shape_numel(shape); }
    size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
    template <typename T>
    T* as() const { return static_cast<T*>(data); }
};

/// Stream-ordered scratch memory of one run (freed on the stream after use).
class Scratch {
public:
    Scratch(cudaStream_t stream, std::string what) : stream_(stream), what_(std::move(what)) {}
    ~Scratch() {
        for (void* p : ptrs_) cudaFreeAsync(p, stream_);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    void* get(size_t bytes) {
        void* p = nullptr;
        KILN_CUDA_CHECK(cudaMallocAsync(&p, bytes ? bytes : 1, stream_), what_);
        ptrs_.push_back(p);
        return p;
    }

private:
    cudaStream_t stream_;
    std::string what_;
    std::vector<void*> ptrs_;
};

/// Auto-tuning: times candidates 0..n-1 on the stream (a warm-up launch, then `reps` timed launches each) and returns
/// the fastest; `launch(i)` returns false when candidate i cannot run (it is skipped). 0 when none could be timed.
/// `times`, when given, gets each candidate's time per launch in ms (-1: not timed).
template <typename Launch>
int fastest_candidate(cudaStream_t stream, int n, Launch&& launch, const std::string& what, int reps = 3,
                      std::vector<float>* times = nullptr) {
    cudaEvent_t ev0 = nullptr, ev1 = nullptr;
    KILN_CUDA_CHECK(cudaEventCreate(&ev0), what);
    KILN_CUDA_CHECK(cudaEventCreate(&ev1), what);
    int best = 0;
    float best_ms = 1e30f;
    if (times) times->assign(static_cast<size_t>(n), -1.f);
    for (int i = 0; i < n; ++i) {
        if (!launch(i)) continue;
        cudaEventRecord(ev0, stream);
        bool ok = true;
        for (int r = 0; r < reps && ok; ++r) ok = launch(i);
        cudaEventRecord(ev1, stream);
        float ms = 0.f;
        if (!ok || cudaEventSynchronize(ev1) != cudaSuccess || cudaEventElapsedTime(&ms, ev0, ev1) != cudaSuccess)
            continue;
        if (times) (*times)[static_cast<size_t>(i)] = ms / static_cast<float>(reps);
        if (ms < best_ms) best_ms = ms, best = i;
    }
    cudaEventDestroy(ev0);
    cudaEventDestroy(ev1);
    KILN_CUDA_CHECK(cudaGetLastError(), what);
    return best;
}

/// What a device kernel gets at run time: the context's stream and library handles.
struct RunCtx {
    cudaStream_t stream = nullptr;
    cublasLtContext* lt = nullptr;
    cudnnContext* dnn = nullptr;
    void* workspace = nullptr;  ///< per-context library workspace
    size_t workspace_bytes = 0;
    const std::string* node = nullptr;  ///< node name, for errors
};

/// A device kernel: created once per engine (weights converted/uploaded), run by every context.
class DeviceKernel {
public:
    virtual ~DeviceKernel() = default;
    /// inputs[i] is nullptr for an omitted optional input; outputs are allocated with the inferred shapes.
    virtual void run(const RunCtx& ctx, const std::vector<const DevTensor*>& in,
                     const std::vector<DevTensor*>& out) const = 0;
    virtual std::string describe() const = 0;
};

using RunFn = std::function<void(const RunCtx&, const std::vector<const DevTensor*>&, const std::vector<DevTensor*>&)>;
class FnDeviceKernel : public DeviceKernel {
public:
    FnDeviceKernel(RunFn fn, std::string name) : fn_(std::move(fn)), name_(std::move(name)) {}
    void run(const RunCtx& ctx, const std::vector<const DevTensor*>& in,
             const std::vector<DevTensor*>& out) const override {
        fn_(ctx, in, out);
    }
    std::string describe() const override { return name_; }

private:
    RunFn fn_;
    std::string name_;
};

/// Weights as the kernel factories see them: host value (from the plan) and its device copy (fp32).
struct WeightView {
    const Tensor* host = nullptr;
    const void* device = nullptr;
};

/// Auto-tuning results of one engine: problem key -> tactic (a kernel-specific string). Filled from the plan
/// (tactics chosen when it was built), from a timing cache file, or by measuring on the first run of each shape;
/// shared by every context of the engine. Keys describe the problem (shapes, types, epilogue, alignment), so equal
/// layers share one measurement.
class TacticTable {
public:
    bool find(const std::string& key, std::string* tactic) const {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = tactics_.find(key);
        if (it == tactics_.end()) return false;
        *tactic = it->second;
        return true;
    }
    void put(const std::string& key, const std::string& tactic, bool measured) {
        std::lock_guard<std::mutex> lock(mu_);
        tactics_[key] = tactic;
        measured_ += measured;
    }
    std::map<std::string, std::string> all() const {
        std::lock_guard<std::mutex> lock(mu_);
        return tactics_;
    }
    int measured() const {
        std::lock_guard<std::mutex> lock(mu_);
        return measured_;
    }

private:
    mutable std::mutex mu_;
    std::map<std::string, std::string> tactics_;
    int measured_ = 0;
};

/// Everything a kernel factory needs: the node (build-time infos incl. constant values), device copies of its
/// constant inputs, the layer's precision and the engine's tactic table.
struct KernelRequest {
    const backends::KernelNode& node;
    std::vector<WeightView> weights;  ///< per input
    LowType low = LowType::kF32;      ///< fp16/bf16 operands for matmuls and convolutions
    bool tf32 = false;                ///< fp32 operands on TF32 tensor cores
    cudnnContext* tuning_dnn = nullptr;  ///< for algorithm search at creation
    TacticTable* tactics = nullptr;
    /// Convolutions in the reduced-precision NHWC chain (uses_nhwc_chain): which of x (input 0), the residual z
    /// (input 3) and y are stored as fp16/bf16 NHWC instead of fp32 NCHW (the executor decides; see cuda_executor.cc).
    bool x_low_nhwc = false, z_low_nhwc = false, y_low_nhwc = false;
};

inline const char* low_name(LowType t) { return t == LowType::kF16 ? "f16" : t == LowType::kBF16 ? "bf16" : "f32"; }
inline size_t low_size(LowType t) { return t == LowType::kF32 ? 4 : 2; }
/// The storage type of a float tensor (kFloat32 -> kF32).
inline LowType low_type_of(DataType t) {
    return t == DataType::kFloat16 ? LowType::kF16 : t == DataType::kBFloat16 ? LowType::kBF16 : LowType::kF32;
}

// ---------------------------------------------------------------- support queries and factories (one per family)
bool supports_gemm(const backends::KernelNode& n);
std::unique_ptr<DeviceKernel> make_gemm(const KernelRequest& r);
bool supports_conv(const backends::KernelNode& n);
/// True for convolutions that run channels-last in reduced precision (2-D, constant weights, fp16/bf16).
bool uses_nhwc_chain(const backends::KernelNode& n, LowType low);
std::unique_ptr<DeviceKernel> make_conv(const KernelRequest& r);
bool supports_fused_elementwise(const backends::KernelNode& n);
std::unique_ptr<DeviceKernel> make_fused_elementwise(const backends::KernelNode& n);
bool supports_simple(const backends::KernelNode& n);  // elementwise, norms, softmax, attention, data movement, pools
std::unique_ptr<DeviceKernel> make_simple(const KernelRequest& r);

/// Which inputs and outputs of a GPU node may hold the reduced type of its layer (fp16/bf16 values in the fp32
/// layout) instead of fp32: bit i of `in` for input i, of `out` for output i. The executor stores a float value
/// reduced when its producer and every reader allow it (cuda_executor.cc); kernels read each tensor's dtype at run
/// time. Nothing is reduced at LowType::kF32.
struct LowIo {
    uint32_t in = 0, out = 0;
    bool same_type = false;  ///< input 0 and output 0 are both reduced or both fp32 (data movement)
};
LowIo low_io(const backends::KernelNode& n, LowType low);
/// The Attention kernel (cuda_attention.cc).
std::unique_ptr<DeviceKernel> make_attention(const KernelRequest& r);
bool supports_attention(const backends::KernelNode& n);
/// True when the Attention runs on tensor cores with reduced-precision inputs and output (launch_attention_mma).
bool attention_on_tensor_cores(const backends::KernelNode& n, LowType low);

/// cuBLASLt algorithms chosen per problem (cuda_gemm.cc), for kernels other than the GEMM family that call it.
struct LtAlgoCache;
std::shared_ptr<LtAlgoCache> make_lt_algo_cache();
std::string lt_algo_last(LtAlgoCache& cache);  ///< the last algorithm used, readable (for describe())
/// Row-major D[m,n] = relu?(A[m,k] B[n,k]^T + bias[n] + R[m,n]) with A, B, D, the bias and the residual R of the
/// reduced type `t` and fp32 accumulation (auto-tuned and recorded like every matmul). bias and residual may be null;
/// the bias, the residual (as C with beta = 1) and the ReLU run in cuBLASLt's epilogue.
void lt_gemm_nt_low(const RunCtx& ctx, int64_t m, int64_t n, int64_t k, const void* a, const void* b_nk, LowType t,
                    void* d, LtAlgoCache& cache, TacticTable* tactics, const void* bias = nullptr,
                    const void* residual = nullptr, bool relu = false);

/// Strided-batched row-major D_i[m,n] = alpha * A_i[m,k] B_i[k,n] (B_i given as [n,k] when trans_b), A and B of
/// the reduced type `t`, D fp32, fp32 accumulation (the reduced-precision attention's two products).
void lt_gemm_strided_low(const RunCtx& ctx, int64_t m, int64_t n, int64_t k, int64_t batch, const void* a,
                         int64_t stride_a, const void* b, int64_t stride_b, bool trans_b, LowType t, float* d,
                         int64_t stride_d, float alpha, LtAlgoCache& cache, TacticTable* tactics);
/// Split-K partial products: part[p] = A[:, p k/s : (p + 1) k/s] B[p k/s : (p + 1) k/s, :] for p < s = `splits`, fp32
/// [s, m, n], in one strided-batched call (A row-major [m, k]; B [k, n], or [n, k] when trans_b). A and B of type t
/// (fp32 on TF32 tensor cores when tf32); k % splits == 0.
void lt_gemm_splitk(const RunCtx& ctx, int64_t m, int64_t n, int64_t k, int splits, const void* a, const void* b,
                    bool trans_b, LowType t, bool tf32, float* part, LtAlgoCache& cache, TacticTable* tactics);
/// FusedMatMulNorm (cuda_gemm_norm.cc): split-K partial products, then one kernel for the reduction, bias, residual
/// and LayerNormalization.
bool supports_gemm_norm(const backends::KernelNode& n);
std::unique_ptr<DeviceKernel> make_gemm_norm(const KernelRequest& r);

/// The tensor's values as int64s (axes, starts, shapes): from the host copy, else copied from the device.
std::vector<int64_t> host_ints(const DevTensor& t, cudaStream_t stream, const std::string& what);
/// Strides of a contiguous row-major shape.
std::vector<int64_t> contiguous_strides(const Shape& s);

/// Uploads `bytes` from host to a new device allocation (cudaMalloc; caller frees).
void* upload(const void* host, size_t bytes, const std::string& what);
/// fp32 host -> fp16/bf16 device copy (cudaMalloc; caller frees).
void* upload_low(const Tensor& t, LowType type, const std::string& what);

}  // namespace kiln::cuda

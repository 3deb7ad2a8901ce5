// The "cuda" backend: its capability query (which drives placement at build time) and its registration. Nodes it
// does not support are placed on the reference backend and run on the host inside the CUDA device context.
#include "src/backends/cuda/cuda_common.h"
#include "src/backends/device_executor.h"

namespace kiln::cuda {

std::unique_ptr<backends::DeviceExecutor> make_cuda_executor(const plan::PlanModel& model, Logger& logger,
                                                             const backends::DeviceExecutorOptions& options);

namespace {

class CudaBackend : public backends::Backend {
public:
    std::string name() const override { return "cuda"; }
    // float32 nodes of the implemented families. With --fp16 the graph stays float32: the executor runs matmuls and
    // convolutions in fp16 (weights converted at upload) and keeps every other tensor in fp32.
    bool supports(const backends::KernelNode& node) const override {
        return supports_gemm(node) || supports_gemm_norm(node) || supports_conv(node) || supports_simple(node);
    }
    std::unique_ptr<backends::Kernel> create_kernel(const backends::KernelNode& node) const override {
        KILN_FAIL(kInternal, node.where(), ": CUDA kernels are created by the CUDA device executor, not one by one");
    }
};

std::unique_ptr<backends::Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

}  // namespace

void* upload(const void* host, size_t bytes, const std::string& what) {
    void* p = nullptr;
    KILN_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1), what);
    if (bytes) {
        cudaError_t err = cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice);
        if (err != cudaSuccess) cudaFree(p);
        KILN_CUDA_CHECK(err, what);
    }
    return p;
}

void* upload_low(const Tensor& t, LowType type, const std::string& what) {
    KILN_CHECK(t.dtype() == DataType::kFloat32 && type != LowType::kF32, kInternal, what, ": ", low_name(type),
               " conversion of a ", dtype_name(t.dtype()), " weight");
    std::vector<uint16_t> h(static_cast<size_t>(t.numel()));
    const float* src = t.data<float>();
    for (size_t i = 0; i < h.size(); ++i) h[i] = type == LowType::kF16 ? float_to_half(src[i]) : float_to_bf16(src[i]);
    return upload(h.data(), h.size() * 2, what);
}

void register_cuda_backend() {
    backends::register_backend("cuda", &make_cuda_backend);
    backends::register_device_executor("cuda", &make_cuda_executor);
}

}  // namespace kiln::cuda

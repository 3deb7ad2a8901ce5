// DeviceBuffer and cuda_device_count: thin wrappers over the CUDA runtime, or clear errors without it.
#include "kiln/device.h"

#include "src/common/check.h"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace kiln {

#ifdef KILN_WITH_CUDA

namespace {
void check(cudaError_t err, const char* what, size_t bytes) {
    if (err == cudaSuccess) return;
    cudaGetLastError();
    if (err == cudaErrorMemoryAllocation)
        KILN_FAIL(kOutOfMemory, "DeviceBuffer: out of GPU memory allocating ", bytes, " bytes");
    KILN_FAIL(kInternal, "DeviceBuffer: ", what, " failed: ", cudaGetErrorString(err));
}
}  // namespace

int cuda_device_count() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
    KILN_CHECK(cuda_device_count() > 0, kUnsupported, "DeviceBuffer: no CUDA device found");
    check(cudaMalloc(&ptr_, bytes ? bytes : 1), "cudaMalloc", bytes);
}

DeviceBuffer::~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
}

void DeviceBuffer::upload(const void* host, size_t bytes) {
    KILN_CHECK(bytes <= bytes_, kInvalidArgument, "DeviceBuffer::upload: ", bytes, " bytes into a buffer of ", bytes_);
    if (bytes) check(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "upload", bytes);
}

void DeviceBuffer::download(void* host, size_t bytes) const {
    KILN_CHECK(bytes <= bytes_, kInvalidArgument, "DeviceBuffer::download: ", bytes, " bytes from a buffer of ",
               bytes_);
    if (bytes) check(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "download", bytes);
}

#else

int cuda_device_count() { return 0; }

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
    KILN_FAIL(kUnsupported, "DeviceBuffer: this kiln was built without CUDA (rebuild with the CUDA toolkit)");
}
DeviceBuffer::~DeviceBuffer() = default;
void DeviceBuffer::upload(const void*, size_t) { KILN_FAIL(kUnsupported, "DeviceBuffer: built without CUDA"); }
void DeviceBuffer::download(void*, size_t) const { KILN_FAIL(kUnsupported, "DeviceBuffer: built without CUDA"); }

#endif

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
        DeviceBuffer old(std::move(*this));
        ptr_ = o.ptr_, bytes_ = o.bytes_;
        o.ptr_ = nullptr, o.bytes_ = 0;
    }
    return *this;
}

}  // namespace kiln

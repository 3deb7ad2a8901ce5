#pragma once
/// \file device.h
/// Device memory for the caller-owned-buffer API (ExecutionContext::set_tensor_address), for programs that do not
/// link the CUDA runtime themselves (the CLI's GPU benchmark, the Python package). Users with their own CUDA code
/// can pass any device pointer instead.
///
/// Example usage:
/// \code
///   kiln::DeviceBuffer in(x.bytes()), out(ctx->output_shape("y") elements * 4);
///   in.upload(x.raw(), x.bytes());
///   ctx->set_tensor_address("x", in.data());
///   ctx->set_tensor_address("y", out.data());
///   ctx->enqueue();
/// \endcode
#include <cstddef>

namespace kiln {

/// Number of CUDA devices kiln can use (0 when kiln is built without CUDA or no GPU/driver is present).
int cuda_device_count();

/// An owned block of GPU memory (cudaMalloc'd on the current device). Throws kiln::Error: kUnsupported without a
/// GPU, kOutOfMemory when the allocation fails.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* data() const { return ptr_; }
    size_t bytes() const { return bytes_; }
    /// Synchronous copies between host memory and this buffer (`bytes` <= bytes()).
    void upload(const void* host, size_t bytes);
    void download(void* host, size_t bytes) const;

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace kiln

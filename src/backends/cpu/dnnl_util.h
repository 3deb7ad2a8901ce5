#pragma once
// Shared oneDNN plumbing of the CPU backend: the CPU engine, a per-thread stream and scratchpad, the OpenMP thread
// count of the calling thread, and the mapping of kiln's fused activations onto oneDNN eltwise post-ops.
#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "src/backends/activation.h"

namespace kiln::backends::cpu {

dnnl::engine& dnnl_engine();

/// Executes `prim` on the calling thread with `threads` OpenMP threads. Adds a per-thread scratchpad (primitives
/// are created with scratchpad_mode::user so one primitive can run from several contexts at once).
void dnnl_execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad_md,
                  std::unordered_map<int, dnnl::memory>& args, int threads);

/// Sets the OpenMP thread count of the calling thread. oneDNN (OpenMP runtime) fixes a primitive's thread count
/// when the primitive is created, so kernels create primitives per (shape, threads) after calling this.
void set_dnnl_threads(int threads);

/// Appends the eltwise post-op for `act`; false when oneDNN has no equivalent (the kernel applies it itself).
bool append_activation(dnnl::post_ops& ops, const Activation& act);

/// A primitive attribute with user scratchpad and the given post-ops.
dnnl::primitive_attr make_attr(const dnnl::post_ops& ops);

/// Plain (row-major) memory descriptor of float32 dims.
dnnl::memory::desc plain_f32(const dnnl::memory::dims& dims);

/// A per-thread scratch buffer (64-byte aligned), one per `slot` (0-4); valid until the next call with the same slot.
void* thread_buffer(int slot, size_t bytes);

/// Prepared state per input shape (primitives, packed weights), made on first use and shared by all contexts.
/// execute() stays logically const: the cache only grows, under a mutex.
template <typename T>
class ShapeCache {
public:
    template <typename Make>
    std::shared_ptr<const T> get(const std::vector<int64_t>& key, Make&& make) const {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = map_.find(key);
        if (it != map_.end()) return it->second;
        std::shared_ptr<const T> made = make();
        map_.emplace(key, made);
        return made;
    }

private:
    mutable std::mutex mu_;
    mutable std::map<std::vector<int64_t>, std::shared_ptr<const T>> map_;
};

/// "jit:avx512_core" etc.: the implementation oneDNN picked for a primitive descriptor.
std::string impl_name(const dnnl::primitive_desc_base& pd);

}  // namespace kiln::backends::cpu

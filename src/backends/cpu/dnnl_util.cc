// oneDNN plumbing shared by the CPU backend's convolution, matmul and pooling kernels.
#include "src/backends/cpu/dnnl_util.h"

#include <cstdlib>
#include <memory>
#include <vector>

extern "C" void omp_set_num_threads(int);

namespace kiln::backends::cpu {

dnnl::engine& dnnl_engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

namespace {

struct ThreadState {
    dnnl::stream stream{dnnl_engine()};
    std::unique_ptr<uint8_t[], void (*)(void*)> scratch{nullptr, std::free};
    size_t scratch_bytes = 0;
    int omp_threads = -1;
    std::unique_ptr<uint8_t[], void (*)(void*)> buffers[5] = {
        {nullptr, std::free}, {nullptr, std::free}, {nullptr, std::free}, {nullptr, std::free}, {nullptr, std::free}};
    size_t buffer_bytes[5] = {0, 0, 0, 0, 0};

    void* scratchpad(size_t bytes) {
        if (bytes > scratch_bytes) {
            size_t rounded = (bytes + 4095) / 4096 * 4096;
            scratch.reset(static_cast<uint8_t*>(std::aligned_alloc(64, rounded)));
            scratch_bytes = rounded;
        }
        return scratch.get();
    }
};

ThreadState& thread_state() {
    thread_local ThreadState s;
    return s;
}

}  // namespace

void* thread_buffer(int slot, size_t bytes) {
    ThreadState& s = thread_state();
    if (bytes > s.buffer_bytes[slot]) {
        size_t rounded = (bytes + 4095) / 4096 * 4096;
        s.buffers[slot].reset(static_cast<uint8_t*>(std::aligned_alloc(64, rounded)));
        s.buffer_bytes[slot] = rounded;
    }
    return s.buffers[slot].get();
}

std::string impl_name(const dnnl::primitive_desc_base& pd) { return pd.impl_info_str(); }

void set_dnnl_threads(int threads) {
    ThreadState& s = thread_state();
    threads = threads < 1 ? 1 : threads;
    if (threads != s.omp_threads) {
        omp_set_num_threads(threads);
        s.omp_threads = threads;
    }
}

void dnnl_execute(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad_md,
                  std::unordered_map<int, dnnl::memory>& args, int threads) {
    ThreadState& s = thread_state();
    set_dnnl_threads(threads);
    size_t bytes = scratchpad_md.get_size();
    if (bytes > 0) args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(scratchpad_md, dnnl_engine(), s.scratchpad(bytes));
    prim.execute(s.stream, args);
    s.stream.wait();
}

bool append_activation(dnnl::post_ops& ops, const Activation& act) {
    using A = dnnl::algorithm;
    switch (act.kind) {
        case ActivationKind::kNone: return true;
        case ActivationKind::kRelu: ops.append_eltwise(1.f, A::eltwise_relu, 0.f, 0.f); return true;
        case ActivationKind::kLeakyRelu: ops.append_eltwise(1.f, A::eltwise_relu, act.alpha, 0.f); return true;
        case ActivationKind::kClip: ops.append_eltwise(1.f, A::eltwise_clip_v2, act.alpha, act.beta); return true;
        case ActivationKind::kSigmoid: ops.append_eltwise(1.f, A::eltwise_logistic, 0.f, 0.f); return true;
        case ActivationKind::kSilu: ops.append_eltwise(1.f, A::eltwise_swish, 1.f, 0.f); return true;
        case ActivationKind::kHardSigmoid:
            ops.append_eltwise(1.f, A::eltwise_linear, act.alpha, act.beta);  // clip(alpha x + beta, 0, 1)
            ops.append_eltwise(1.f, A::eltwise_clip_v2, 0.f, 1.f);
            return true;
        case ActivationKind::kHardSwish: ops.append_eltwise(1.f, A::eltwise_hardswish, 0.f, 0.f); return true;
        case ActivationKind::kTanh: ops.append_eltwise(1.f, A::eltwise_tanh, 0.f, 0.f); return true;
        case ActivationKind::kGelu: ops.append_eltwise(1.f, A::eltwise_gelu_erf, 0.f, 0.f); return true;
        case ActivationKind::kGeluTanh: ops.append_eltwise(1.f, A::eltwise_gelu_tanh, 0.f, 0.f); return true;
        case ActivationKind::kElu: ops.append_eltwise(1.f, A::eltwise_elu, act.alpha, 0.f); return true;
    }
    return false;
}

dnnl::primitive_attr make_attr(const dnnl::post_ops& ops) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(ops);
    return attr;
}

dnnl::memory::desc plain_f32(const dnnl::memory::dims& dims) {
    dnnl::memory::dims strides(dims.size(), 1);
    for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
    return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, strides);
}

}  // namespace kiln::backends::cpu

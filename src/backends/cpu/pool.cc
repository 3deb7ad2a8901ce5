// MaxPool (2-D, through oneDNN pooling, plain nchw, nChw16c or nChw16c_bf16 in and out alike) and GlobalAveragePool
// (kiln's own: one row of H*W per (n, c), threads over rows; from nChw16c or nChw16c_bf16, one row of H*W 16-channel
// vectors per (n, block), summed in fp32).
// The output of GlobalAveragePool is always plain: [N, C, 1, 1] is what the squeeze-excite convolutions and the
// classifier read.
#include <algorithm>
#include <cstring>

#include "src/backends/cpu/bf16.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/dnnl_util.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/backends/cpu/vec_math.h"
#include "src/ops/nn.h"

namespace kiln::backends::cpu {

namespace {

using dnnl::memory;

KILN_CPU_MULTIVERSION void mean_rows(const float* x, float* y, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r, x += n) y[r] = sum16(x, n) / static_cast<float>(n);
}

inline float to_f32(float x) { return x; }
inline float to_f32(uint16_t h) {
    const uint32_t u = static_cast<uint32_t>(h) << 16;  // bf16 is the upper half of a float32
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// x: `blocks` blocks of n pixels x 16 channels each (float or bf16); y: 16 means per block, `valid` of them kept in
// the last block of each image (the padding channels are dropped), so y is plain [blocks / blocks_per_image][C].
template <typename T>
__attribute__((always_inline)) inline void mean_blocks16_impl(const T* x, float* y, int64_t b0, int64_t b1,
                                                              int64_t blocks_per_image, int64_t channels, int64_t n) {
    for (int64_t b = b0; b < b1; ++b) {
        const T* xb = x + b * n * kChannelBlock;
        float acc[kChannelBlock] = {};
        for (int64_t i = 0; i < n; ++i)
            for (int l = 0; l < kChannelBlock; ++l) acc[l] += to_f32(xb[i * kChannelBlock + l]);
        const int64_t image = b / blocks_per_image, c0 = (b % blocks_per_image) * kChannelBlock;
        const int64_t valid = std::min<int64_t>(kChannelBlock, channels - c0);
        for (int64_t l = 0; l < valid; ++l) y[image * channels + c0 + l] = acc[l] / static_cast<float>(n);
    }
}

KILN_CPU_MULTIVERSION void mean_blocks16(const float* x, float* y, int64_t b0, int64_t b1, int64_t blocks_per_image,
                                         int64_t channels, int64_t n) {
    mean_blocks16_impl(x, y, b0, b1, blocks_per_image, channels, n);
}
KILN_CPU_MULTIVERSION void mean_blocks16(const uint16_t* x, float* y, int64_t b0, int64_t b1,
                                         int64_t blocks_per_image, int64_t channels, int64_t n) {
    mean_blocks16_impl(x, y, b0, b1, blocks_per_image, channels, n);
}

struct PoolPrepared {
    dnnl::pooling_forward prim;
    memory::desc src_md, dst_md, scratch_md;
};

class MaxPoolKernel : public Kernel {
public:
    explicit MaxPoolKernel(const KernelNode& node) : where_(node.where()) {
        win_ = ops::parse_window_attrs(node.attrs, 2, {}, true, where_);
        layout_ = node.input_layout(0);
        KILN_CHECK(node.output_layout(0) == layout_, kInvalidPlan, where_, ": input layout ", layout_name(layout_),
                   " differs from the output layout ", layout_name(node.output_layout(0)));
    }
    std::string describe() const override {
        return cat(layout_ == Layout::kNChw16cBf16 ? "max_pool2d_bf16_" : "max_pool2d_f32_", layout_name(layout_),
                   "_dnnl");
    }
    bool writes_all_outputs() const override { return true; }

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        std::vector<int64_t> key = x.shape();
        key.push_back(a.num_threads);
        std::shared_ptr<const PoolPrepared> p = cache_.get(key, [&] {
            set_dnnl_threads(a.num_threads);
            const Shape& xs = x.shape();
            const Shape& ys = y.shape();
            memory::dims strides(2), kernel(2), pl(2), pr(2);
            for (int i = 0; i < 2; ++i) {
                int64_t b = 0, e = 0;
                ops::window_output_dim(win_, i, xs[2 + i], &b, &e, where_);
                strides[i] = win_.strides[i];
                kernel[i] = win_.kernel[i];
                pl[i] = b;
                pr[i] = (ys[2 + i] - 1) * strides[i] + kernel[i] - xs[2 + i] - b;  // ceil_mode adds end padding
            }
            auto pp = std::make_shared<PoolPrepared>();
            const memory::format_tag tag = is_blocked(layout_) ? memory::format_tag::nChw16c : memory::format_tag::nchw;
            const memory::data_type dt =
                layout_ == Layout::kNChw16cBf16 ? memory::data_type::bf16 : memory::data_type::f32;
            pp->src_md = memory::desc(memory::dims(xs.begin(), xs.end()), dt, tag);
            pp->dst_md = memory::desc(memory::dims(ys.begin(), ys.end()), dt, tag);
            dnnl::pooling_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max,
                                             pp->src_md, pp->dst_md, strides, kernel, pl, pr);
            dnnl::pooling_forward::primitive_desc pd(desc, make_attr(dnnl::post_ops()), dnnl_engine());
            pp->prim = dnnl::pooling_forward(pd);
            pp->scratch_md = pd.scratchpad_desc();
            return pp;
        });
        std::unordered_map<int, memory> args;
        args[DNNL_ARG_SRC] = memory(p->src_md, dnnl_engine(), const_cast<void*>(x.raw()));
        args[DNNL_ARG_DST] = memory(p->dst_md, dnnl_engine(), y.raw());
        dnnl_execute(p->prim, p->scratch_md, args, a.num_threads);
    }

private:
    std::string where_;
    ops::WindowAttrs win_;
    Layout layout_ = Layout::kPlain;
    ShapeCache<PoolPrepared> cache_;
};

}  // namespace

bool supports_pool(const KernelNode& node) {
    if (node.op_type == "GlobalAveragePool") return node.inputs[0].rank() >= 3;
    if (node.inputs[0].rank() != 4 || node.outputs.size() != 1) return false;
    ops::WindowAttrs w = ops::parse_window_attrs(node.attrs, 2, {}, true, node.where());
    for (int64_t d : w.dilations)
        if (d != 1) return false;
    return true;
}

LayoutCaps layout_caps_pool(const KernelNode& node) {
    LayoutCaps c;
    if (node.inputs[0].rank() != 4) return c;
    c.inputs = {true};
    c.bf16_inputs = {bf16_activations()};  // max and mean of bf16 values (the mean summed in fp32)
    if (node.op_type == "MaxPool") {
        c.bf16_outputs = c.bf16_inputs;
        c.outputs = {true};
        c.tied = true;  // oneDNN pools a layout into the same layout
    } else {
        c.outputs = {false};
    }
    return c;
}

std::unique_ptr<Kernel> make_cpu_pool(const KernelNode& node) {
    if (node.op_type == "MaxPool") return std::make_unique<MaxPoolKernel>(node);
    if (is_blocked(node.input_layout(0))) {
        const bool bf16 = node.input_layout(0) == Layout::kNChw16cBf16;
        return make_kernel(
            [bf16](const KernelArgs& a) {
                const Tensor& x = *a.inputs[0];
                const int64_t per_image = padded_channels(x.dim(1)) / kChannelBlock;
                const int64_t blocks = x.dim(0) * per_image, n = x.dim(2) * x.dim(3);
                float* yp = a.outputs[0]->data<float>();
                parallel_for(blocks, a.num_threads, [&](int64_t b0, int64_t b1) {
                    if (bf16)
                        mean_blocks16(static_cast<const uint16_t*>(x.raw()), yp, b0, b1, per_image, x.dim(1), n);
                    else
                        mean_blocks16(x.data<float>(), yp, b0, b1, per_image, x.dim(1), n);
                }, grain_rows(n * kChannelBlock));
            },
            bf16 ? "global_avg_pool_bf16_nChw16c_bf16_avx512" : "global_avg_pool_f32_nChw16c_avx512", true);
    }
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const int64_t rows = x.dim(0) * x.dim(1), n = rows ? x.numel() / rows : 0;
            const float* xp = x.data<float>();
            float* yp = a.outputs[0]->data<float>();
            parallel_for(rows, a.num_threads, [&](int64_t r0, int64_t r1) {
                mean_rows(xp + r0 * n, yp + r0, r1 - r0, n);
            }, grain_rows(n));
        },
        "global_avg_pool_f32_avx512", true);
}

}  // namespace kiln::backends::cpu

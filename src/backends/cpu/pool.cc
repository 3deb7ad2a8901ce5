// MaxPool (2-D, through oneDNN pooling on plain nchw) and GlobalAveragePool (kiln's own: one row of H*W per
// (n, c), threads over rows).
#include <algorithm>

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

struct PoolPrepared {
    dnnl::pooling_forward prim;
    memory::desc src_md, dst_md, scratch_md;
};

class MaxPoolKernel : public Kernel {
public:
    explicit MaxPoolKernel(const KernelNode& node) : where_(node.where()) {
        win_ = ops::parse_window_attrs(node.attrs, 2, {}, true, where_);
    }
    std::string describe() const override { return "max_pool2d_f32_nchw_dnnl"; }

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
            pp->src_md = memory::desc(memory::dims(xs.begin(), xs.end()), memory::data_type::f32,
                                      memory::format_tag::nchw);
            pp->dst_md = memory::desc(memory::dims(ys.begin(), ys.end()), memory::data_type::f32,
                                      memory::format_tag::nchw);
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

std::unique_ptr<Kernel> make_cpu_pool(const KernelNode& node) {
    if (node.op_type == "MaxPool") return std::make_unique<MaxPoolKernel>(node);
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
        "global_avg_pool_f32_avx512");
}

}  // namespace kiln::backends::cpu

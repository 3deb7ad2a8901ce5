// FusedExpandDepthwise (op_list.def) where the fused AVX-512 kernel (conv_expand_depthwise.cc) does not apply:
// plain X or Y (channel counts the planner keeps plain), bf16 layers, CPUs without AVX-512: the expand, the
// depthwise convolution and the projection (when the node has one) as ordinary cpu convolution kernels, the
// intermediate values in nChw16c temporaries, and the squeeze-excite block (when it has one) in scalar code.
#include <cmath>
#include <string>
#include <vector>

#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/expand_depthwise.h"

namespace kiln::backends::cpu {

namespace {

constexpr int64_t V = kChannelBlock;

// Layouts or CPUs the fused kernel does not take (a plain X or Y: channel counts the planner keeps plain; bf16
// layers): the expand and the depthwise convolution as two ordinary cpu convolution kernels, M in an nChw16c
// temporary so that the depthwise convolution still runs on blocked values (kiln's kernel where it applies).
class TwoConvKernel : public Kernel {
public:
    explicit TwoConvKernel(const KernelNode& node) {
        const std::string conv_op = "FusedConv";
        const AttributeMap ea = expand_conv_attrs(node.attrs), da = depthwise_conv_attrs(node.attrs);
        ops::TensorInfo mid = node.inputs[0];
        mid.value = nullptr;
        mid.dims[1] = node.inputs[1].dims[0];
        channels_ = node.inputs[1].value->dim(0);
        KernelNode en{node.name, conv_op, ea, {node.inputs[0], node.inputs[1], node.inputs[2]}, {mid}};
        en.input_layouts = {node.input_layout(0)};
        en.output_layouts = {Layout::kNChw16c};
        en.precision = node.precision;
        proj_ = node.inputs.size() > 10 && node.inputs[9].present;
        ops::TensorInfo dinfo = node.outputs[0];  // the depthwise output (with a projection: an nChw16c temporary)
        dinfo.value = nullptr;
        dinfo.dims[1] = node.inputs[1].dims[0];
        KernelNode dn{
            node.name, conv_op, da, {mid, node.inputs[3], node.inputs[4]}, proj_ ? std::vector{dinfo} : node.outputs};
        dn.input_layouts = {Layout::kNChw16c};
        dn.output_layouts = {proj_ ? Layout::kNChw16c : node.output_layout(0)};
        dn.precision = node.precision;
        expand_ = make_cpu_conv(en);
        dw_ = make_cpu_conv(dn);
        if (proj_) {
            KernelNode pn{node.name, conv_op, AttributeMap{}, {dinfo, node.inputs[9], node.inputs[10]}, node.outputs};
            pn.input_layouts = {Layout::kNChw16c, Layout::kPlain, Layout::kPlain};
            if (node.inputs.size() > 11 && node.inputs[11].present) {
                pn.inputs.push_back(node.inputs[11]);
                pn.input_layouts.push_back(node.input_layout(11));
            }
            pn.output_layouts = {node.output_layout(0)};
            pn.precision = node.precision;
            project_ = make_cpu_conv(pn);
        }
        if (node.inputs.size() > 8 && node.inputs[5].present) {
            for (size_t i = 5; i < 9; ++i) se_.push_back(*node.inputs[i].value);
            se_act_ = Activation::from_attrs(se_reduce_attrs(node.attrs), node.where());
            blocked_out_ = node.output_layout(0) == Layout::kNChw16c;
        }
    }
    std::string describe() const override {
        return "expand_" + expand_->describe() + "+" + dw_->describe() + (project_ ? "+" + project_->describe() : "");
    }
    bool writes_all_outputs() const override { return (project_ ? project_ : dw_)->writes_all_outputs(); }
    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        // nChw16c bytes: the channels padded to a multiple of 16 (the expand zero-fills the padding)
        Tensor buf =
            Tensor::uninitialized(DataType::kFloat32, {x.dim(0), padded_channels(channels_), x.dim(2), x.dim(3)});
        Tensor m = Tensor::wrap(DataType::kFloat32, {x.dim(0), channels_, x.dim(2), x.dim(3)}, buf.raw());
        KernelArgs e{{a.inputs[0], a.inputs[1], a.inputs[2]}, {&m}, a.num_threads};
        expand_->execute(e);
        KernelArgs d{{&m, a.inputs[3], a.inputs[4]}, a.outputs, a.num_threads};
        if (!project_) {
            dw_->execute(d);
            if (!se_.empty()) squeeze_excite(*a.outputs[0]);
            return;
        }
        const Tensor& y = *a.outputs[0];
        Tensor dbuf =
            Tensor::uninitialized(DataType::kFloat32, {y.dim(0), padded_channels(channels_), y.dim(2), y.dim(3)});
        Tensor dt = Tensor::wrap(DataType::kFloat32, {y.dim(0), channels_, y.dim(2), y.dim(3)}, dbuf.raw());
        d.outputs = {&dt};
        dw_->execute(d);
        KernelArgs p{{&dt, a.inputs[9], a.inputs[10]}, a.outputs, a.num_threads};
        if (a.inputs.size() > 11 && a.inputs[11]) p.inputs.push_back(a.inputs[11]);
        project_->execute(p);
    }

private:
    // The squeeze-excite block on Y (plain or nChw16c), in scalar code: this path is the rare fallback.
    void squeeze_excite(Tensor& y) const {
        const int64_t c = channels_, hw = y.dim(2) * y.dim(3), cr = se_[0].dim(0), cb = padded_channels(c) / V;
        const float *wr = se_[0].data<float>(), *br = se_[1].data<float>();
        const float *we = se_[2].data<float>(), *be = se_[3].data<float>();
        std::vector<float> mean(c), h(cr);
        for (int64_t n = 0; n < y.dim(0); ++n) {
            // element (channel i, pixel p) of image n
            auto at = [&](int64_t i, int64_t p) -> float& {
                return blocked_out_ ? y.data<float>()[((n * cb + i / V) * hw + p) * V + i % V]
                                    : y.data<float>()[(n * c + i) * hw + p];
            };
            for (int64_t i = 0; i < c; ++i) {
                float s = 0.f;
                for (int64_t p = 0; p < hw; ++p) s += at(i, p);
                mean[i] = s / static_cast<float>(hw);
            }
            for (int64_t j = 0; j < cr; ++j) {
                float s = br[j];
                for (int64_t i = 0; i < c; ++i) s += wr[j * c + i] * mean[i];
                h[j] = se_act_.apply(s);
            }
            for (int64_t i = 0; i < c; ++i) {
                float s = be[i];
                for (int64_t j = 0; j < cr; ++j) s += we[i * cr + j] * h[j];
                const float gate = 1.f / (1.f + std::exp(-s));
                for (int64_t p = 0; p < hw; ++p) at(i, p) *= gate;
            }
        }
    }

    int64_t channels_ = 0;
    bool proj_ = false;
    std::unique_ptr<Kernel> expand_, dw_, project_;
    std::vector<Tensor> se_;  // Wr, Br, We, Be (empty: no squeeze-excite)
    Activation se_act_;
    bool blocked_out_ = false;
};

}  // namespace

std::unique_ptr<Kernel> make_expand_depthwise_fallback(const KernelNode& node) {
    return std::make_unique<TwoConvKernel>(node);
}

}  // namespace kiln::backends::cpu

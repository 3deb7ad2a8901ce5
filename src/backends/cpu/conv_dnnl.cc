// Conv / FusedConv (2-D, float32) through oneDNN convolution primitives: act(conv(X, W) + B + Z) with the bias in
// the primitive, Z as a sum post-op and the activation as an eltwise post-op. Weights are reordered once into the
// primitive's preferred blocked format. src, dst and Z each come in the layout the planner chose for them (plain
// nchw, or nChw16c inside a chain of layout-aware nodes) and are used in place when the primitive runs on that
// layout, else reordered to / from the layout the primitive wants (at the edges of such chains). With --bf16 (node
// precision "bf16") src and weights are bf16, accumulation and bias fp32; src, Z and dst are read and written as bf16
// where the planner made them nChw16c_bf16 (between bf16 layers), else converted by the reorders at the edges.
#include <cstring>

#include "src/backends/cpu/bf16.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/dnnl_util.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/ops/nn.h"

namespace kiln::backends::cpu {

namespace {

using dnnl::memory;
using Tag = memory::format_tag;

enum class LayoutMode { kAuto, kPlain, kBlocked };

LayoutMode layout_mode() {
    static const LayoutMode kMode = [] {
        const char* e = std::getenv("KILN_CPU_CONV_LAYOUT");
        std::string s = e ? e : "";
        return s == "plain" ? LayoutMode::kPlain : s == "blocked" ? LayoutMode::kBlocked : LayoutMode::kAuto;
    }();
    return kMode;
}

bool use_winograd() {
    static const bool kOn = [] {
        const char* e = std::getenv("KILN_CPU_CONV_WINOGRAD");
        return !(e && std::string(e) == "0");
    }();
    return kOn;
}

// Silu after the primitive, in kiln's AVX-512 loop (silu_inplace), instead of oneDNN's eltwise post-op, for outputs
// of up to this many floats. oneDNN 2.6's swish injector cost about 0.5 ns per element and thread on this machine,
// kiln's loop about 0.2 ns plus the second pass over the output (cheap while the output is still in L2 / L3).
// EfficientNet-B0, 1 thread, min of 4 alternating runs (load 3-4): 11.85 ms post-op, 11.60 ms with this pass up
// to 5e5 floats, 11.46 ms up to 2e6 (every layer of the model); KILN_CPU_SILU_PASS_MAX=0 turns it off.
bool silu_pass(const Activation& act, double dst_numel) {
    static const double kMaxFloats = [] {
        const char* e = std::getenv("KILN_CPU_SILU_PASS_MAX");
        return e ? std::atof(e) : 2e6;
    }();
    return act.kind == ActivationKind::kSilu && dst_numel <= kMaxFloats && __builtin_cpu_supports("avx512f");
}

struct ConvPrepared {
    dnnl::convolution_forward prim;
    memory::desc src_md, dst_md, scratch_md;           // the primitive's layouts
    memory::desc user_src_md, user_dst_md, user_z_md;  // the tensors' layouts (the plan's)
    memory weights, bias;
    dnnl::reorder src_to_prim, z_to_prim, prim_to_dst;  // where the layouts differ
    bool direct_src = true, direct_dst = true, direct_z = true;
    int threads = 1;  // tiny layers run on one thread: waking a second costs more than it saves
    bool bf16 = false;
    bool silu_after = false;  // Silu applied by kiln after the primitive (see silu_pass)
    std::string impl;
};

// Below this many multiply-adds a convolution runs single-threaded.
constexpr double kMinParallelMacs = 2e5;

class ConvKernel : public Kernel {
public:
    ConvKernel(const KernelNode& node) : where_(node.where()) {
        group_ = node.attrs.get_int("group", 1);
        std::vector<int64_t> hint;
        for (size_t i = 2; i < node.inputs[1].dims.size(); ++i) hint.push_back(node.inputs[1].dims[i].value);
        win_ = ops::parse_window_attrs(node.attrs, 2, hint, false, where_);
        act_ = Activation::from_attrs(node.attrs, where_);
        weights_ = *node.inputs[1].value;
        if (node.inputs.size() > 2 && node.inputs[2].present) bias_ = *node.inputs[2].value;
        has_residual_ = node.inputs.size() > 3 && node.inputs[3].present;
        src_layout_ = node.input_layout(0);
        z_layout_ = node.input_layout(3);
        dst_layout_ = node.output_layout(0);
        bf16_ = node.precision == "bf16";
        // pack the weights now when the input shape is known (batch 1 stands in for a symbolic batch)
        const SymShape& xd = node.inputs[0].dims;
        if (xd[1].is_static() && xd[2].is_static() && xd[3].is_static()) {
            std::vector<int64_t> key = {xd[0].is_static() ? xd[0].value : 1, xd[1].value, xd[2].value, xd[3].value};
            name_ = prepared(key, physical_cores())->impl;
        }
    }

    std::string describe() const override {
        return cat(bf16_ ? "conv2d_bf16f32acc_" : "conv2d_f32_", layout_name(src_layout_), "_",
                   layout_name(dst_layout_), "_dnnl",
                   name_.empty() ? "" : "(" + name_ + ")");
    }
    // oneDNN writes the whole dst, and zero-fills the channel padding of a blocked one
    bool writes_all_outputs() const override { return true; }

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        const Tensor* z = has_residual_ ? a.inputs[3] : nullptr;
        std::shared_ptr<const ConvPrepared> p = prepared(x.shape(), a.num_threads);
        const int threads = p->threads;
        dnnl::engine& eng = dnnl_engine();
        std::unordered_map<int, memory> args;
        memory user_src(p->user_src_md, eng, const_cast<void*>(x.raw()));
        memory user_dst(p->user_dst_md, eng, y.raw());
        if (p->direct_src) {
            args[DNNL_ARG_SRC] = user_src;
        } else {
            memory src(p->src_md, eng, thread_buffer(0, p->src_md.get_size()));
            dnnl_execute(p->src_to_prim, memory::desc(), *reorder_args(user_src, src), threads);
            args[DNNL_ARG_SRC] = src;
        }
        memory dst = p->direct_dst ? user_dst : memory(p->dst_md, eng, thread_buffer(1, p->dst_md.get_size()));
        if (z) {
            // the sum post-op accumulates onto dst: start dst as a copy of Z in the primitive's layout
            KILN_CHECK(z->shape() == y.shape(), kInvalidArgument, where_, ": residual of shape ", shape_str(z->shape()),
                       " differs from the output ", shape_str(y.shape()));
            if (p->direct_z) {
                // the plan usually puts Y over a Z that dies here (LayoutCaps::overwrite_input): nothing to copy
                if (dst.get_data_handle() != z->raw())
                    std::memcpy(dst.get_data_handle(), z->raw(), p->dst_md.get_size());
            } else {
                memory zm(p->user_z_md, eng, const_cast<void*>(z->raw()));
                dnnl_execute(p->z_to_prim, memory::desc(), *reorder_args(zm, dst), threads);
            }
        }
        args[DNNL_ARG_WEIGHTS] = p->weights;
        if (bias_.defined()) args[DNNL_ARG_BIAS] = p->bias;
        args[DNNL_ARG_DST] = dst;
        dnnl_execute(p->prim, p->scratch_md, args, threads);
        if (!p->direct_dst) dnnl_execute(p->prim_to_dst, memory::desc(), *reorder_args(dst, user_dst), threads);
        if (p->silu_after) silu_inplace(y.data<float>(), p->user_dst_md.get_size() / sizeof(float), threads);
    }

private:
    static std::unordered_map<int, memory>* reorder_args(const memory& from, const memory& to) {
        thread_local std::unordered_map<int, memory> args;
        args.clear();
        args[DNNL_ARG_FROM] = from;
        args[DNNL_ARG_TO] = to;
        return &args;
    }

    std::shared_ptr<const ConvPrepared> prepared(const Shape& xs, int threads) const {
        std::vector<int64_t> key = xs;
        key.push_back(threads);
        return cache_.get(key, [&] { return prepare(xs, threads); });
    }

    std::shared_ptr<const ConvPrepared> prepare(const Shape& xs, int threads) const {
        const Shape& ws = weights_.shape();
        memory::dims src_dims(xs.begin(), xs.end());
        memory::dims dst_dims = {xs[0], ws[0], 0, 0};
        memory::dims strides(2), dil(2), pl(2), pr(2);
        for (int i = 0; i < 2; ++i) {
            int64_t b = 0, e = 0;
            dst_dims[2 + i] = ops::window_output_dim(win_, i, xs[2 + i], &b, &e, where_);
            strides[i] = win_.strides[i];
            dil[i] = win_.dilations[i] - 1;
            pl[i] = b;
            pr[i] = e;
        }
        double macs = static_cast<double>(shape_numel(Shape(dst_dims.begin(), dst_dims.end()))) * ws[1] * ws[2] * ws[3];
        if (macs < kMinParallelMacs) threads = 1;
        set_dnnl_threads(threads);
        memory::dims w_dims = group_ > 1 ? memory::dims{group_, ws[0] / group_, ws[1], ws[2], ws[3]}
                                         : memory::dims{ws[0], ws[1], ws[2], ws[3]};
        memory::dims b_dims = {ws[0]};
        const auto f32 = memory::data_type::f32;
        auto any = [](const memory::dims& d, memory::data_type t) { return memory::desc(d, t, Tag::any); };
        memory::data_type st = f32;  // src and weights: bf16 with --bf16
        dnnl::post_ops ops;
        if (has_residual_) ops.append_sum(1.f);
        const double dst_numel = static_cast<double>(shape_numel(Shape(dst_dims.begin(), dst_dims.end())));
        const bool silu_after = dst_layout_ != Layout::kNChw16cBf16 && silu_pass(act_, dst_numel);
        if (!silu_after)
            KILN_CHECK(append_activation(ops, act_), kUnsupported, where_, ": activation not supported by oneDNN");
        dnnl::primitive_attr attr = make_attr(ops);
        auto make_pd_alg = [&](const memory::desc& s, const memory::desc& d, dnnl::algorithm alg) {
            auto desc = bias_.defined()
                            ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, s,
                                                              any(w_dims, st), any(b_dims, f32), d, strides, dil, pl, pr)
                            : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, alg, s,
                                                              any(w_dims, st), d, strides, dil, pl, pr);
            return dnnl::convolution_forward::primitive_desc(desc, attr, dnnl_engine());
        };
        // Winograd for fp32 3x3 stride-1 convolutions (oneDNN's jit_fp32_wino_2x3 / jit_wino_4x3 on nChw16c):
        // ResNet-50 batch 1 38.8 -> 33.0 ms, output error vs onnxruntime 1.4e-6 -> 1.6e-6 of the output scale.
        // oneDNN's convolution_auto keeps direct at batch 1, so kiln asks for it; KILN_CPU_CONV_WINOGRAD=0 turns it
        // off. Where oneDNN has no Winograd kernel (bf16, post-ops it cannot fuse, ...) the direct one is used.
        const bool wino = use_winograd() && group_ == 1 && ws[2] == 3 && ws[3] == 3 && strides[0] == 1 &&
                          strides[1] == 1 && dil[0] == 0 && dil[1] == 0;
        auto make_pd = [&](const memory::desc& s, const memory::desc& d) {
            if (wino && st == f32) {
                try {
                    return make_pd_alg(s, d, dnnl::algorithm::convolution_winograd);
                } catch (const dnnl::error&) {
                }
            }
            return make_pd_alg(s, d, dnnl::algorithm::convolution_direct);
        };
        // A plain [N, C, 1, 1] with C a multiple of 16 has the same bytes as nChw16c (the squeeze-excite
        // convolutions): describe it as nChw16c so that no reorder runs.
        auto tag_of = [](Layout l, const memory::dims& d) {
            bool same_bytes = d[2] * d[3] == 1 && d[1] % kChannelBlock == 0;
            return is_blocked(l) || same_bytes ? Tag::nChw16c : Tag::nchw;
        };
        auto dt_of = [](Layout l) {
            return l == Layout::kNChw16cBf16 ? memory::data_type::bf16 : memory::data_type::f32;
        };
        memory::desc user_src(src_dims, dt_of(src_layout_), tag_of(src_layout_, src_dims));
        memory::desc user_dst(dst_dims, dt_of(dst_layout_), tag_of(dst_layout_, dst_dims));
        memory::desc user_z(dst_dims, dt_of(z_layout_), tag_of(z_layout_, dst_dims));
        LayoutMode mode = layout_mode();
        auto choose = [&](memory::data_type t) {
            st = t;
            // dst in bf16 only where the plan keeps it bf16 (and the layer runs in bf16)
            const memory::data_type dt = t == f32 ? f32 : dt_of(dst_layout_);
            if (mode == LayoutMode::kPlain)
                return make_pd(memory::desc(src_dims, t, tag_of(src_layout_, src_dims)),
                               memory::desc(dst_dims, dt, tag_of(dst_layout_, dst_dims)));
            if (mode == LayoutMode::kBlocked) return make_pd(any(src_dims, t), any(dst_dims, dt));
            // nChw16c where the channels allow it, else oneDNN's choice. Measured per model (batch 1, 2 threads, same
            // minute): nChw16c 12.5 / 19.5 / 90 ms, `any` (oneDNN picks acdb for brgconv) 17 / 23 / 100 ms,
            // plain nchw (gemm:jit) 36 / 50 / 108 ms for MobileNetV2 / EfficientNet-B0 / ResNet-50: the
            // nchw <-> nChw16c reorders are cheaper than nchw <-> acdb, and both beat im2col + gemm. A tensor
            // the plan keeps blocked is used as is (padded channels included).
            auto b16 = [&](const memory::dims& d, Layout l, memory::data_type dt) {
                return d[1] % 16 == 0 || is_blocked(l) ? memory::desc(d, dt, Tag::nChw16c) : any(d, dt);
            };
            return make_pd(b16(src_dims, src_layout_, t), b16(dst_dims, dst_layout_, dt));
        };
        bool bf16 = bf16_;
        dnnl::convolution_forward::primitive_desc pd = choose(bf16 ? memory::data_type::bf16 : f32);
        // no bf16 kernel for this layer (oneDNN's reference one would be far slower): fp32
        if (bf16 && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
            bf16 = false;
            pd = choose(f32);
        }
        auto p = std::make_shared<ConvPrepared>();
        p->prim = dnnl::convolution_forward(pd);
        p->src_md = pd.src_desc();
        p->dst_md = pd.dst_desc();
        p->scratch_md = pd.scratchpad_desc();
        p->user_src_md = user_src;
        p->user_dst_md = user_dst;
        p->user_z_md = user_z;
        p->direct_src = p->src_md == user_src;
        p->direct_dst = p->dst_md == user_dst;
        p->direct_z = p->dst_md == user_z;
        p->threads = threads;
        p->bf16 = bf16;
        p->silu_after = silu_after;
        auto reorder = [](const memory::desc& from, const memory::desc& to) {
            return dnnl::reorder(dnnl::reorder::primitive_desc(dnnl_engine(), from, dnnl_engine(), to));
        };
        if (!p->direct_src) p->src_to_prim = reorder(user_src, p->src_md);
        if (has_residual_ && !p->direct_z) p->z_to_prim = reorder(user_z, p->dst_md);
        if (!p->direct_dst) p->prim_to_dst = reorder(p->dst_md, user_dst);
        p->impl = cat(pd.impl_info_str(), p->direct_src ? "" : ",reorder_src", p->direct_dst ? "" : ",reorder_dst",
                      silu_after ? ",silu_avx512" : "",
                      bf16_ && !bf16 ? ",fp32_fallback" : "");
        dnnl::engine& eng = dnnl_engine();
        memory user_w(memory::desc(w_dims, memory::data_type::f32, group_ > 1 ? Tag::goihw : Tag::oihw), eng,
                      const_cast<void*>(weights_.raw()));
        p->weights = memory(pd.weights_desc(), eng);
        std::unordered_map<int, memory> wargs = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, p->weights}};
        dnnl_execute(dnnl::reorder(user_w, p->weights), memory::desc(), wargs, threads);
        if (bias_.defined()) {
            p->bias = memory(pd.bias_desc(), eng);
            std::memcpy(p->bias.get_data_handle(), bias_.raw(), bias_.bytes());
        }
        return p;
    }

    std::string where_;
    int64_t group_ = 1;
    ops::WindowAttrs win_;
    Activation act_;
    Tensor weights_, bias_;
    bool has_residual_ = false, bf16_ = false;
    Layout src_layout_ = Layout::kPlain, z_layout_ = Layout::kPlain, dst_layout_ = Layout::kPlain;
    std::string name_;
    ShapeCache<ConvPrepared> cache_;
};

}  // namespace

bool supports_conv(const KernelNode& node) {
    if (node.inputs[0].rank() != 4 || node.inputs[1].rank() != 4 || !node.inputs[1].value) return false;
    if (node.inputs.size() > 2 && node.inputs[2].present && !node.inputs[2].value) return false;
    if (node.inputs.size() > 3 && node.inputs[3].present && !(node.inputs[3].dims == node.outputs[0].dims))
        return false;
    if (!node.inputs[0].dims[1].is_static()) return false;
    return true;
}

std::unique_ptr<Kernel> make_cpu_conv(const KernelNode& node) {
    // the squeeze-excite convolutions (1x1 on a 1x1 image): a matrix-vector product beats a oneDNN call + reorders
    if (conv_is_matvec(node)) return make_cpu_conv_matvec(node);
    if (conv_is_depthwise_blocked(node)) return make_cpu_conv_depthwise(node);
    if (conv_is_1x1_small(node)) return make_cpu_conv_1x1_small(node);
    return std::make_unique<ConvKernel>(node);
}

LayoutCaps layout_caps_conv(const KernelNode& node) {
    // X, Z and Y each in either layout (the kernel reorders whichever differs from the primitive's)
    LayoutCaps c;
    c.inputs.assign(node.inputs.size(), false);
    c.inputs[0] = true;
    if (node.inputs.size() > 3) c.inputs[3] = true;
    c.outputs = {true};
    c.prefers_blocked = true;
    if (node.inputs.size() > 3 && node.inputs[3].present) c.overwrite_input = 3;  // the sum post-op works in place
    if (node.precision == "bf16" && bf16_activations()) {
        // a bf16 layer reads X and Z and writes Y as bf16 as well as fp32 (oneDNN: bf16 src / dst, fp32 accumulation,
        // the sum post-op reading a bf16 dst)
        c.bf16_inputs = c.inputs;
        c.bf16_outputs = c.outputs;
    }
    return c;
}

}  // namespace kiln::backends::cpu

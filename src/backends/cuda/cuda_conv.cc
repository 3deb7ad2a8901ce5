// Conv and FusedConv on cuDNN (legacy API, NCHW): the algorithm is picked by cudnnFindConvolutionForwardAlgorithm
// when the kernel is created for static shapes (the first step of auto-tuning), else by the v7 heuristic on first
// use of a shape; then one fused epilogue kernel adds the bias and the residual and applies the activation.
// FP16/BF16: x and the weights in fp16/bf16, fp32 accumulation (compute type FLOAT, tensor-op math); the epilogue
// reads the reduced-precision result and writes fp32, so the graph's activations stay fp32. --tf32: fp32 tensors with
// tensor-op math (TF32). The algorithm found for each problem goes to the engine's TacticTable ("conv|..." -> the
// cudnnConvolutionFwdAlgo_t number), so plans and timing caches reload it without searching again.
#include <cudnn.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "src/backends/activation.h"
#include "src/backends/cuda/cuda_common.h"
#include "src/ops/shape_utils.h"

namespace kiln::cuda {

using backends::KernelNode;

namespace {

void check_dnn(cudnnStatus_t st, const char* call, const std::string& what) {
    if (st == CUDNN_STATUS_SUCCESS) return;
    KILN_FAIL(kInternal, what, ": cuDNN error ", cudnnGetErrorString(st), " in ", call);
}
#define KILN_DNN_CHECK(call, what) check_dnn((call), #call, (what))

struct Algo {
    cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    size_t workspace = 0;
};

// Spatial pads (begin) from the attributes; empty result when they are asymmetric (cuDNN cannot do those).
std::vector<int> symmetric_pads(const AttributeMap& attrs, const Shape& x, const Shape& w, const Shape* y) {
    size_t ns = x.size() - 2;
    std::string auto_pad = attrs.get_string("auto_pad", "NOTSET");
    std::vector<int64_t> strides = attrs.get_ints("strides", std::vector<int64_t>(ns, 1));
    std::vector<int64_t> dil = attrs.get_ints("dilations", std::vector<int64_t>(ns, 1));
    std::vector<int> out(ns, 0);
    if (auto_pad == "VALID") return out;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        for (size_t i = 0; i < ns; ++i) {
            int64_t o = (x[i + 2] + strides[i] - 1) / strides[i];
            int64_t total = std::max<int64_t>(0, (o - 1) * strides[i] + (w[i + 2] - 1) * dil[i] + 1 - x[i + 2]);
            if (total % 2) return {};
            out[i] = static_cast<int>(total / 2);
        }
        return out;
    }
    std::vector<int64_t> pads = attrs.get_ints("pads", std::vector<int64_t>(2 * ns, 0));
    for (size_t i = 0; i < ns; ++i) {
        if (pads[i] != pads[i + ns]) return {};
        out[i] = static_cast<int>(pads[i]);
    }
    (void)y;
    return out;
}

// RAII descriptors of one convolution at concrete shapes. 1-D convolutions are run as 2-D with H = 1.
struct ConvDescs {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    std::string what;

    ConvDescs(const AttributeMap& attrs, Shape xs, Shape ws, Shape ys, LowType low, bool tf32,
              const std::string& where)
        : what(where) {
        std::vector<int> pads = symmetric_pads(attrs, xs, ws, &ys);
        KILN_CHECK(!pads.empty(), kUnsupported, where, ": asymmetric padding is not supported by the cuDNN kernel");
        size_t ns = xs.size() - 2;
        std::vector<int64_t> strides = attrs.get_ints("strides", std::vector<int64_t>(ns, 1));
        std::vector<int64_t> dil = attrs.get_ints("dilations", std::vector<int64_t>(ns, 1));
        std::vector<int> st(strides.begin(), strides.end()), dl(dil.begin(), dil.end());
        if (ns == 1) {
            for (Shape* s : {&xs, &ws, &ys}) s->insert(s->begin() + 2, 1);
            pads.insert(pads.begin(), 0), st.insert(st.begin(), 1), dl.insert(dl.begin(), 1);
            ns = 2;
        }
        cudnnDataType_t dt = low == LowType::kF16    ? CUDNN_DATA_HALF
                             : low == LowType::kBF16 ? CUDNN_DATA_BFLOAT16
                                                     : CUDNN_DATA_FLOAT;
        auto dims_of = [](const Shape& s) { return std::vector<int>(s.begin(), s.end()); };
        auto tensor = [&](cudnnTensorDescriptor_t& d, const Shape& s) {
            KILN_DNN_CHECK(cudnnCreateTensorDescriptor(&d), what);
            std::vector<int> dims = dims_of(s), strd(s.size(), 1);
            for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) strd[i] = strd[i + 1] * dims[i + 1];
            KILN_DNN_CHECK(cudnnSetTensorNdDescriptor(d, dt, static_cast<int>(s.size()), dims.data(), strd.data()),
                           what);
        };
        tensor(x, xs);
        tensor(y, ys);
        KILN_DNN_CHECK(cudnnCreateFilterDescriptor(&w), what);
        std::vector<int> wd = dims_of(ws);
        KILN_DNN_CHECK(cudnnSetFilterNdDescriptor(w, dt, CUDNN_TENSOR_NCHW, static_cast<int>(wd.size()), wd.data()),
                       what);
        KILN_DNN_CHECK(cudnnCreateConvolutionDescriptor(&conv), what);
        KILN_DNN_CHECK(cudnnSetConvolutionNdDescriptor(conv, static_cast<int>(ns), pads.data(), st.data(), dl.data(),
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT), what);
        KILN_DNN_CHECK(cudnnSetConvolutionGroupCount(conv, static_cast<int>(attrs.get_int("group", 1))), what);
        // fp32: no TF32 unless asked (results within 1e-4 of onnxruntime); fp16/bf16/tf32: tensor cores
        bool tensor_ops = low != LowType::kF32 || tf32;
        KILN_DNN_CHECK(cudnnSetConvolutionMathType(conv, tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH), what);
    }
    ~ConvDescs() {
        if (conv) cudnnDestroyConvolutionDescriptor(conv);
        if (w) cudnnDestroyFilterDescriptor(w);
        if (y) cudnnDestroyTensorDescriptor(y);
        if (x) cudnnDestroyTensorDescriptor(x);
    }
    ConvDescs(const ConvDescs&) = delete;
    ConvDescs& operator=(const ConvDescs&) = delete;
};

class ConvKernel : public DeviceKernel {
public:
    explicit ConvKernel(const KernelRequest& r)
        : where_(r.node.where()), low_(r.low), tf32_(r.tf32), attrs_(r.node.attrs) {
        const KernelNode& n = r.node;
        if (n.op_type == "FusedConv") act_ = backends::Activation::from_attrs(n.attrs, where_);
        for (const char* k : {"activation", "activation_alpha", "activation_beta"}) attrs_.erase(k);
        if (low_ != LowType::kF32 && r.weights[1].host) w_low_ = upload_low(*r.weights[1].host, low_, where_);
        // auto-tune now when every shape is known: the tactic table (plan / timing cache) first, else a search
        const auto &x = n.inputs[0], &w = n.inputs[1], &y = n.outputs[0];
        if (!is_static(x.dims) || !is_static(w.dims) || !is_static(y.dims)) return;
        Shape xs = ops::to_concrete(x.dims), ws = ops::to_concrete(w.dims), ys = ops::to_concrete(y.dims);
        std::string key = cat("conv|", shape_str(xs), "|", shape_str(ws), "|", shape_str(ys), "|", low_name(low_),
                              tf32_ ? "|tf32" : "");
        for (const auto& [name, a] : attrs_.items()) key += cat("|", name, "=", attribute_str(a));
        std::string tactic;
        ConvDescs d(attrs_, xs, ws, ys, low_, tf32_, where_);
        if (r.tactics && r.tactics->find(key, &tactic)) {
            Algo a;
            a.algo = static_cast<cudnnConvolutionFwdAlgo_t>(std::atoi(tactic.c_str()));
            if (r.tuning_dnn && cudnnGetConvolutionForwardWorkspaceSize(r.tuning_dnn, d.x, d.w, d.conv, d.y, a.algo,
                                                                        &a.workspace) == CUDNN_STATUS_SUCCESS) {
                algos_[xs] = a;
                tuned_ = "plan";
                return;
            }
        }
        if (!r.tuning_dnn) return;
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        int found = 0;
        // a failed search is not fatal: the v7 heuristic picks the algorithm at the first run instead
        if (cudnnFindConvolutionForwardAlgorithm(r.tuning_dnn, d.x, d.w, d.conv, d.y, 8, &found, perf) !=
            CUDNN_STATUS_SUCCESS)
            found = 0;
        for (int i = 0; i < found; ++i)
            if (perf[i].status == CUDNN_STATUS_SUCCESS) {
                algos_[xs] = Algo{perf[i].algo, perf[i].memory};
                tuned_ = "found";
                if (r.tactics) r.tactics->put(key, std::to_string(static_cast<int>(perf[i].algo)), true);
                break;
            }
    }
    ~ConvKernel() override {
        if (w_low_) cudaFree(w_low_);
    }

    std::string describe() const override {
        std::string algo;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (!algos_.empty()) algo = cat(" [algo ", static_cast<int>(algos_.begin()->second.algo), "]");
        }
        return cat("conv_", low_ != LowType::kF32 ? cat(low_name(low_), "f32acc") : tf32_ ? "tf32" : "f32",
                   "_nchw_cudnn_", tuned_, act_.kind != backends::ActivationKind::kNone ? "+act" : "", "+epilogue",
                   algo);
    }

    void run(const RunCtx& ctx, const std::vector<const DevTensor*>& in,
             const std::vector<DevTensor*>& out) const override {
        const DevTensor &x = *in[0], &w = *in[1];
        DevTensor& y = *out[0];
        if (y.numel() == 0) return;
        const DevTensor* bias = in.size() > 2 ? in[2] : nullptr;
        const DevTensor* z = in.size() > 3 ? in[3] : nullptr;
        KILN_CHECK(!z || z->numel() == y.numel(), kUnsupported, where_, ": residual of shape ", shape_str(z->shape),
                   " differs from the output ", shape_str(y.shape));
        ConvDescs d(attrs_, x.shape, w.shape, y.shape, low_, tf32_, where_);
        Algo algo = algo_for(ctx, d, x.shape);
        Scratch scratch(ctx.stream, *ctx.node);
        void* ws = ctx.workspace;
        if (algo.workspace > ctx.workspace_bytes) ws = scratch.get(algo.workspace);
        const void* xp = x.data;
        const void* wp = w.data;
        void* yp = y.data;
        if (low_ != LowType::kF32) {
            void* xl = scratch.get(x.numel() * 2);
            launch_f32_to_low(x.as<float>(), xl, low_, x.numel(), ctx.stream);
            xp = xl;
            if (w_low_) {
                wp = w_low_;
            } else {
                void* wl = scratch.get(w.numel() * 2);
                launch_f32_to_low(w.as<float>(), wl, low_, w.numel(), ctx.stream);
                wp = wl;
            }
            yp = scratch.get(y.numel() * 2);
        }
        const float one = 1.f, zero = 0.f;
        KILN_DNN_CHECK(cudnnConvolutionForward(ctx.dnn, &one, d.x, xp, d.w, wp, d.conv, algo.algo, ws, algo.workspace,
                                               &zero, d.y, yp), where_);
        bool need_epilogue = low_ != LowType::kF32 || bias || z || act_.kind != backends::ActivationKind::kNone;
        if (need_epilogue) {
            int64_t channels = y.shape[1], inner = y.numel() / (y.shape[0] * channels);
            DevAct da{static_cast<int>(act_.kind), act_.alpha, act_.beta};
            launch_bias_act_epilogue(yp, low_, y.as<float>(), bias ? bias->as<float>() : nullptr,
                                     z ? z->as<float>() : nullptr, y.numel(), channels, inner, da, ctx.stream);
        }
    }

private:
    Algo algo_for(const RunCtx& ctx, const ConvDescs& d, const Shape& xs) const {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = algos_.find(xs);
        if (it != algos_.end()) return it->second;
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        int found = 0;
        KILN_DNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.dnn, d.x, d.w, d.conv, d.y, 8, &found, perf),
                       where_);
        Algo a;
        bool ok = false;
        for (int i = 0; i < found && !ok; ++i)
            if (perf[i].status == CUDNN_STATUS_SUCCESS) a = Algo{perf[i].algo, perf[i].memory}, ok = true;
        if (!ok)
            KILN_DNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(ctx.dnn, d.x, d.w, d.conv, d.y, a.algo,
                                                                   &a.workspace), where_);
        algos_[xs] = a;
        return a;
    }

    std::string where_;
    LowType low_ = LowType::kF32;
    bool tf32_ = false;
    AttributeMap attrs_;
    backends::Activation act_;
    void* w_low_ = nullptr;
    std::string tuned_ = "heuristic";
    mutable std::mutex mu_;
    mutable std::map<Shape, Algo> algos_;
};

}  // namespace

bool supports_conv(const KernelNode& n) {
    if (n.op_type != "Conv" && n.op_type != "FusedConv") return false;
    for (const auto& t : n.inputs)
        if (t.present && t.dtype != DataType::kFloat32) return false;
    const auto &x = n.inputs[0], &w = n.inputs[1];
    if (x.rank() < 3 || x.rank() > 5 || w.rank() != x.rank() || !is_static(w.dims)) return false;
    if (n.op_type == "FusedConv") {
        try {
            backends::Activation::from_attrs(n.attrs, n.where());
        } catch (const Error&) {
            return false;
        }
        if (n.inputs.size() > 3 && n.inputs[3].present && n.inputs[3].dims != n.outputs[0].dims) return false;
    }
    std::string auto_pad = n.attrs.get_string("auto_pad", "NOTSET");
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        if (!is_static(x.dims)) return false;
        return !symmetric_pads(n.attrs, ops::to_concrete(x.dims), ops::to_concrete(w.dims), nullptr).empty();
    }
    size_t ns = x.rank() - 2;
    std::vector<int64_t> pads = n.attrs.get_ints("pads", std::vector<int64_t>(2 * ns, 0));
    if (pads.size() != 2 * ns) return false;
    for (size_t i = 0; i < ns; ++i)
        if (pads[i] != pads[i + ns]) return false;
    return true;
}

std::unique_ptr<DeviceKernel> make_conv(const KernelRequest& r) { return std::make_unique<ConvKernel>(r); }

}  // namespace kiln::cuda

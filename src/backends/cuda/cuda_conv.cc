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

// RAII descriptors of one convolution at concrete shapes. 1-D convolutions are run as 2-D with H = 1. `nhwc`: x, y
// and the filter are stored channels-last (2-D reduced-precision convolutions; the dims stay NCHW / KCRS).
struct ConvDescs {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    std::string what;

    ConvDescs(const AttributeMap& attrs, Shape xs, Shape ws, Shape ys, LowType low, bool tf32, bool nhwc,
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
            if (nhwc) strd = {dims[1] * dims[2] * dims[3], 1, dims[3] * dims[1], dims[1]};
            KILN_DNN_CHECK(cudnnSetTensorNdDescriptor(d, dt, static_cast<int>(s.size()), dims.data(), strd.data()),
                           what);
        };
        tensor(x, xs);
        tensor(y, ys);
        KILN_DNN_CHECK(cudnnCreateFilterDescriptor(&w), what);
        std::vector<int> wd = dims_of(ws);
        KILN_DNN_CHECK(cudnnSetFilterNdDescriptor(w, dt, nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                                  static_cast<int>(wd.size()), wd.data()), what);
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

// The bias of cudnnConvolutionBiasActivationForward: [1, K, 1, 1] of the data type.
struct BiasDesc {
    cudnnTensorDescriptor_t desc = nullptr;
    BiasDesc(LowType low, int64_t k, const std::string& what) {
        KILN_DNN_CHECK(cudnnCreateTensorDescriptor(&desc), what);
        cudnnDataType_t dt = low == LowType::kBF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
        KILN_DNN_CHECK(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, dt, 1, static_cast<int>(k), 1, 1), what);
    }
    ~BiasDesc() { cudnnDestroyTensorDescriptor(desc); }
    BiasDesc(const BiasDesc&) = delete;
    BiasDesc& operator=(const BiasDesc&) = delete;
};

// KILN_CUDA_CONV_FUSED=0 runs a separate epilogue kernel after cuDNN's convolution instead of the fused call.
bool fused_conv_enabled() {
    const char* v = std::getenv("KILN_CUDA_CONV_FUSED");
    return !(v && std::string(v) == "0");
}

// Depthwise (group = channels, one filter each) 2-D convolutions with explicit pads run in the chain on kiln's own
// kernel (depthwise_nhwc.cu); other grouped convolutions stay NCHW: cuDNN's legacy NHWC fp16 path rejects them
// (BAD_PARAM on MobileNetV2 / EfficientNet-B0 layers, H100, cuDNN 9). KILN_CUDA_DEPTHWISE_NHWC=0 keeps depthwise
// layers NCHW on cuDNN too.
bool is_depthwise_2d(const KernelNode& n) {
    static const bool on = [] {
        const char* e = std::getenv("KILN_CUDA_DEPTHWISE_NHWC");
        return !(e && std::string(e) == "0");
    }();
    const int64_t group = n.attrs.get_int("group", 1);
    const std::string auto_pad = n.attrs.get_string("auto_pad", "NOTSET");
    if (!on || group <= 1 || n.inputs[1].rank() != 4 || (auto_pad != "NOTSET" && auto_pad != "VALID")) return false;
    const Shape ws = ops::to_concrete(n.inputs[1].dims);
    return ws[0] == group && ws[1] == 1;
}

}  // namespace

bool uses_nhwc_chain(const KernelNode& n, LowType low) {
    return low != LowType::kF32 && (n.op_type == "Conv" || n.op_type == "FusedConv") && n.inputs[0].rank() == 4 &&
           n.inputs[1].present && n.inputs[1].value != nullptr &&
           (n.attrs.get_int("group", 1) == 1 || is_depthwise_2d(n));
}

namespace {

class ConvKernel : public DeviceKernel {
public:
    explicit ConvKernel(const KernelRequest& r)
        : where_(r.node.where()), low_(r.low), tf32_(r.tf32), attrs_(r.node.attrs) {
        const KernelNode& n = r.node;
        if (n.op_type == "FusedConv") act_ = backends::Activation::from_attrs(n.attrs, where_);
        for (const char* k : {"activation", "activation_alpha", "activation_beta"}) attrs_.erase(k);
        nhwc_ = uses_nhwc_chain(n, low_);
        depthwise_ = nhwc_ && n.attrs.get_int("group", 1) > 1;
        if (n.inputs[1].present && is_static(n.inputs[1].dims)) ws_ = ops::to_concrete(n.inputs[1].dims);
        x_low_ = nhwc_ && r.x_low_nhwc, z_low_ = nhwc_ && r.z_low_nhwc, y_low_ = nhwc_ && r.y_low_nhwc;
        tactics_ = r.tactics;
        // A 1x1, unpadded, ungrouped convolution on NHWC data is the matrix product
        // Y[NHW, K] = X[NHW, C] W[K, C]^T: cuBLASLt runs it (cuDNN's legacy algorithms gave these a SIMT implicit
        // GEMM on Hopper, 5-10x slower than the tensor-core GEMM).
        if (nhwc_) {
            const Shape ws = ops::to_concrete(n.inputs[1].dims);
            std::string auto_pad = attrs_.get_string("auto_pad", "NOTSET");
            bool unit = ws[2] == 1 && ws[3] == 1 && attrs_.get_int("group", 1) == 1 &&
                        (auto_pad == "NOTSET" || auto_pad == "VALID");
            for (int64_t v : attrs_.get_ints("pads", {0, 0, 0, 0})) unit &= v == 0;
            for (int64_t v : attrs_.get_ints("dilations", {1, 1})) unit &= v == 1;
            // strided (ResNet's downsampling shortcuts): the pixels it reads are copied out first, then the same
            // GEMM with the fused epilogue (cuDNN's strided 1x1 took 3x as long with its separate epilogue pass)
            const std::vector<int64_t> st = attrs_.get_ints("strides", {1, 1});
            unit &= st.size() == 2 && st[0] >= 1 && st[1] >= 1;
            if (unit) {
                pointwise_ = make_lt_algo_cache();
                stride_h_ = static_cast<int>(st[0]), stride_w_ = static_cast<int>(st[1]);
            }
            // bias + residual + ReLU in cuBLASLt's epilogue when everything stays in the chain (no epilogue kernel)
            bool fusable_act = act_.kind == backends::ActivationKind::kNone || act_.kind == backends::ActivationKind::kRelu;
            bool has_z = n.inputs.size() > 3 && n.inputs[3].present;
            bool has_bias = n.inputs.size() > 2 && n.inputs[2].present;
            bool bias_ok = !has_bias || (r.weights.size() > 2 && r.weights[2].host);
            if (pointwise_ && y_low_ && (!has_z || z_low_) && fusable_act && bias_ok) {
                fused_epilogue_ = true;
            } else if (!pointwise_ && !depthwise_ && y_low_ && (!has_z || z_low_) && has_bias && bias_ok &&
                       act_.kind == backends::ActivationKind::kRelu && fused_conv_enabled()) {
                // cudnnConvolutionBiasActivationForward: conv + bias + z + ReLU (cuDNN allows only ReLU here
                // with any algorithm)
                dnn_fused_ = true;
            }
            if ((fused_epilogue_ || dnn_fused_) && has_bias) bias_low_ = upload_low(*r.weights[2].host, low_, where_);
        }
        if (depthwise_) {  // [c, 1, kh, kw] -> [kh * kw, c] fp32: a thread's channels are contiguous
            const Tensor& w = *r.weights[1].host;
            const int64_t c = w.dim(0), taps = w.dim(2) * w.dim(3);
            Tensor t(DataType::kFloat32, {taps, c});
            for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t k = 0; k < taps; ++k) t.data<float>()[k * c + ch] = w.data<float>()[ch * taps + k];
            w_dw_ = upload(t.raw(), t.bytes(), where_);
            return;  // nothing to tune
        }
        if (low_ != LowType::kF32 && r.weights[1].host) {
            if (nhwc_) {  // KCRS -> KRSC, as the NHWC filter descriptor reads it
                const Tensor& w = *r.weights[1].host;
                int64_t k = w.dim(0), c = w.dim(1), rs = w.dim(2) * w.dim(3);
                Tensor t(DataType::kFloat32, w.shape());
                for (int64_t a = 0; a < k; ++a)
                    for (int64_t b = 0; b < c; ++b)
                        for (int64_t p = 0; p < rs; ++p)
                            t.data<float>()[(a * rs + p) * c + b] = w.data<float>()[(a * c + b) * rs + p];
                w_low_ = upload_low(t, low_, where_);
            } else {
                w_low_ = upload_low(*r.weights[1].host, low_, where_);
            }
        }
        // auto-tune now when every shape is known: the tactic table (plan / timing cache) first, else a search
        const auto &x = n.inputs[0], &w = n.inputs[1], &y = n.outputs[0];
        if (pointwise_ || !is_static(x.dims) || !is_static(w.dims) || !is_static(y.dims)) return;
        Shape xs = ops::to_concrete(x.dims), ws = ops::to_concrete(w.dims), ys = ops::to_concrete(y.dims);
        std::string key = cat("conv|", shape_str(xs), "|", shape_str(ws), "|", shape_str(ys), "|", low_name(low_),
                              tf32_ ? "|tf32" : "", nhwc_ ? "|nhwc" : "");
        for (const auto& [name, a] : attrs_.items()) key += cat("|", name, "=", attribute_str(a));
        std::string tactic;
        ConvDescs d(attrs_, xs, ws, ys, low_, tf32_, nhwc_, where_);
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
        // Searched twice: CUDA loads kernels lazily, so the first search times every candidate's module load too
        // and would favour whichever algorithm happened to be loaded already (measured on an H100: ResNet-50 fp16
        // got a SIMT implicit GEMM for half its convolutions). A failed search is not fatal: the v7 heuristic
        // picks the algorithm at the first run instead.
        for (int pass = 0; pass < 2; ++pass)
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
        if (w_dw_) cudaFree(w_dw_);
        if (w_low_) cudaFree(w_low_);
        if (bias_low_) cudaFree(bias_low_);
    }

    std::string describe() const override {
        if (depthwise_)
            return cat("conv_", low_name(low_), "f32acc_nhwc", x_low_ ? "_in" : "", y_low_ ? "_out" : "",
                       "_depthwise_kiln", act_.kind != backends::ActivationKind::kNone ? "+act" : "");
        std::string algo;
        if (pointwise_) {
            std::string last = lt_algo_last(*pointwise_);
            algo = cat("_1x1_as_cublaslt_gemm", fused_epilogue_ ? "_epilogue_fused" : "",
                       last.empty() ? "" : " [" + last + "]");
        } else {
            std::lock_guard<std::mutex> lock(mu_);
            if (!algos_.empty()) algo = cat(" [algo ", static_cast<int>(algos_.begin()->second.algo), "]");
        }
        return cat("conv_", low_ != LowType::kF32 ? cat(low_name(low_), "f32acc") : tf32_ ? "tf32" : "f32",
                   nhwc_ ? cat("_nhwc", x_low_ ? "_in" : "", y_low_ ? "_out" : "", "_cudnn_") : "_nchw_cudnn_", tuned_,
                   act_.kind != backends::ActivationKind::kNone ? "+act" : "",
                   fused_epilogue_ ? "" : dnn_fused_ ? "_bias_act_fused" : "+epilogue", algo);
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
        Scratch scratch(ctx.stream, *ctx.node);
        if (pointwise_) {  // NHWC 1x1: a GEMM (see the constructor)
            const int64_t n = x.shape[0], c = x.shape[1], xhw = x.numel() / (n * c), k = y.shape[1];
            const int64_t hw = y.numel() / (n * k);  // output pixels: the GEMM's rows per image
            const void* xp = x.data;
            if (!x_low_) {
                void* xl = scratch.get(x.numel() * 2);
                launch_nchw_f32_to_nhwc_low(x.as<float>(), xl, low_, n, c, xhw, ctx.stream);
                xp = xl;
            }
            if (stride_h_ > 1 || stride_w_ > 1) {  // the pixels the strided 1x1 reads, packed: [n, oh, ow, c]
                void* xs = scratch.get(static_cast<size_t>(n * hw * c) * 2);
                launch_subsample_nhwc_16bit(xp, xs, n, x.shape[2], x.shape[3], c, stride_h_, stride_w_, y.shape[2],
                                            y.shape[3], ctx.stream);
                xp = xs;
            }
            if (fused_epilogue_) {  // y = relu?(x W^T + bias + z), all fp16/bf16 NHWC, in one cuBLASLt call
                lt_gemm_nt_low(ctx, n * hw, k, c, xp, w_low_, low_, y.data, *pointwise_, tactics_, bias_low_,
                               z ? z->data : nullptr, act_.kind == backends::ActivationKind::kRelu);
                return;
            }
            void* conv_out = y_low_ ? y.data : scratch.get(y.numel() * 2);
            lt_gemm_nt_low(ctx, n * hw, k, c, xp, w_low_, low_, conv_out, *pointwise_, tactics_);
            DevAct da{static_cast<int>(act_.kind), act_.alpha, act_.beta};
            if (!y_low_ || bias || z || act_.kind != backends::ActivationKind::kNone)
                launch_conv_epilogue_nhwc(conv_out, low_, bias ? bias->as<float>() : nullptr, z ? z->data : nullptr,
                                          z_low_, y.data, y_low_, n, k, hw, da, ctx.stream);
            return;
        }
        if (depthwise_) {
            run_depthwise(ctx, x, bias, z, y, scratch);
            return;
        }
        ConvDescs d(attrs_, x.shape, w.shape, y.shape, low_, tf32_, nhwc_, where_);
        Algo algo = algo_for(ctx, d, x.shape);
        void* ws = ctx.workspace;
        if (algo.workspace > ctx.workspace_bytes) ws = scratch.get(algo.workspace);
        const void* xp = x.data;
        const void* wp = w.data;
        void* yp = y.data;
        const float one = 1.f, zero = 0.f;
        DevAct da{static_cast<int>(act_.kind), act_.alpha, act_.beta};
        if (nhwc_) {  // reduced precision, channels-last: chained inputs/outputs are already NHWC fp16/bf16
            const int64_t n = x.shape[0], c = x.shape[1], hw = x.numel() / (n * c);
            if (!x_low_) {
                void* xl = scratch.get(x.numel() * 2);
                launch_nchw_f32_to_nhwc_low(x.as<float>(), xl, low_, n, c, hw, ctx.stream);
                xp = xl;
            }
            wp = w_low_;
            // the convolution writes the low-precision NHWC result in place when y stays in the chain
            if (dnn_fused_) {  // y = relu(conv(x) + z + bias) in one cuDNN call, fp16/bf16 NHWC
                BiasDesc b(low_, y.shape[1], where_);
                cudnnActivationDescriptor_t relu = nullptr;
                KILN_DNN_CHECK(cudnnCreateActivationDescriptor(&relu), where_);
                cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0);
                const float alpha2 = z ? 1.f : 0.f;
                cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
                    ctx.dnn, &one, d.x, xp, d.w, wp, d.conv, algo.algo, ws, algo.workspace, &alpha2, d.y,
                    z ? z->data : y.data, b.desc, bias_low_, relu, d.y, y.data);
                cudnnDestroyActivationDescriptor(relu);
                KILN_DNN_CHECK(st, where_);
                return;
            }
            void* conv_out = y_low_ ? y.data : scratch.get(y.numel() * 2);
            KILN_DNN_CHECK(cudnnConvolutionForward(ctx.dnn, &one, d.x, xp, d.w, wp, d.conv, algo.algo, ws,
                                                   algo.workspace, &zero, d.y, conv_out), where_);
            const int64_t yc = y.shape[1], yhw = y.numel() / (y.shape[0] * yc);
            if (!y_low_ || bias || z || act_.kind != backends::ActivationKind::kNone)
                launch_conv_epilogue_nhwc(conv_out, low_, bias ? bias->as<float>() : nullptr, z ? z->data : nullptr,
                                          z_low_, y.data, y_low_, y.shape[0], yc, yhw, da, ctx.stream);
            return;
        }
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
        KILN_DNN_CHECK(cudnnConvolutionForward(ctx.dnn, &one, d.x, xp, d.w, wp, d.conv, algo.algo, ws, algo.workspace,
                                               &zero, d.y, yp), where_);
        bool need_epilogue = low_ != LowType::kF32 || bias || z || act_.kind != backends::ActivationKind::kNone;
        if (need_epilogue) {
            int64_t channels = y.shape[1], inner = y.numel() / (y.shape[0] * channels);
            launch_bias_act_epilogue(yp, low_, y.data, LowType::kF32, bias ? bias->as<float>() : nullptr,
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

    // depthwise_: kiln's NHWC kernel; bias, residual and activation fused when y (and z) stay in the chain, else
    // the chain's epilogue kernel converts
    void run_depthwise(const RunCtx& ctx, const DevTensor& x, const DevTensor* bias, const DevTensor* z,
                       DevTensor& y, Scratch& scratch) const {
        DepthwiseArgs a;
        PoolDims& p = a.p;
        p.n = x.shape[0], p.c = x.shape[1], p.h = x.shape[2], p.w = x.shape[3], p.oh = y.shape[2], p.ow = y.shape[3];
        p.kh = static_cast<int>(ws_[2]), p.kw = static_cast<int>(ws_[3]);
        const std::vector<int64_t> st = attrs_.get_ints("strides", {1, 1}), dl = attrs_.get_ints("dilations", {1, 1}),
                                   pd = attrs_.get_ints("pads", {0, 0, 0, 0});
        p.sh = static_cast<int>(st[0]), p.sw = static_cast<int>(st[1]);
        p.dh = static_cast<int>(dl[0]), p.dw = static_cast<int>(dl[1]);
        p.ph = static_cast<int>(pd[0]), p.pw = static_cast<int>(pd[1]);
        KILN_CHECK(y.numel() < (int64_t(1) << 31) && x.numel() < (int64_t(1) << 31), kUnsupported, where_,
                   ": the depthwise NHWC kernel indexes with 32 bits; ", shape_str(y.shape),
                   " is too large (KILN_CUDA_DEPTHWISE_NHWC=0 runs it on cuDNN)");
        a.x = x.data;
        if (!x_low_) {
            void* xl = scratch.get(x.numel() * 2);
            launch_nchw_f32_to_nhwc_low(x.as<float>(), xl, low_, p.n, p.c, p.h * p.w, ctx.stream);
            a.x = xl;
        }
        a.w = static_cast<const float*>(w_dw_);
        const DevAct da{static_cast<int>(act_.kind), act_.alpha, act_.beta};
        if (y_low_ && (!z || z_low_)) {
            a.bias = bias ? bias->as<float>() : nullptr;
            a.z = z ? z->data : nullptr;
            a.act = da;
            a.y = y.data;
            launch_depthwise_nhwc(a, low_, ctx.stream);
            return;
        }
        void* conv_out = scratch.get(y.numel() * 2);
        a.y = conv_out;
        launch_depthwise_nhwc(a, low_, ctx.stream);
        launch_conv_epilogue_nhwc(conv_out, low_, bias ? bias->as<float>() : nullptr, z ? z->data : nullptr, z_low_,
                                  y.data, y_low_, p.n, p.c, p.oh * p.ow, da, ctx.stream);
    }

    std::string where_;
    LowType low_ = LowType::kF32;
    bool tf32_ = false;
    bool nhwc_ = false;                          // reduced-precision 2-D convolution, channels-last
    bool depthwise_ = false;                     // nhwc_ depthwise: depthwise_nhwc.cu
    void* w_dw_ = nullptr;                       // its weights, [kh * kw, c] fp32
    Shape ws_;                                   // the weights' shape
    std::shared_ptr<LtAlgoCache> pointwise_;     // set: a 1x1 NHWC convolution run as a cuBLASLt GEMM
    int stride_h_ = 1, stride_w_ = 1;             // pointwise_ with strides: the input is subsampled first
    bool fused_epilogue_ = false;                // pointwise_ with bias/residual/ReLU in cuBLASLt's epilogue
    bool dnn_fused_ = false;                     // cudnnConvolutionBiasActivationForward (bias, z, ReLU)
    void* bias_low_ = nullptr;                   // the bias in fp16/bf16 for that epilogue
    TacticTable* tactics_ = nullptr;
    bool x_low_ = false, z_low_ = false, y_low_ = false;  // chained tensors (NHWC fp16/bf16) instead of fp32 NCHW
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

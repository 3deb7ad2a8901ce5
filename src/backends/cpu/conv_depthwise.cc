// Depthwise convolution (group = input channels = output channels) on nChw16c activations, 3x3 or 5x5, stride 1
// or 2, with bias and the fused activation (none, Relu, Clip, Silu), in AVX-512 intrinsics:
//   y[n, c, oh, ow] = act(B[c] + sum_{kh, kw} W[c, kh, kw] * x[n, c, oh * s - pt + kh, ow * s - pl + kw])
// One 16-channel vector per pixel; 8 output pixels of a row share each weight vector. The rows (image, channel
// block, output row) are split over the OpenMP threads oneDNN's convolutions use, so no second pool wakes up.
//
// Why not oneDNN's jit_dw: with a Silu post-op (EfficientNet) its eltwise injector doubled the layer's time
// (oneDNN 2.6, 96 channels 112x112 stride 2: 159 us without, 328 us with, same run); here Silu is
// x / (1 + exp(-x)) with exp from vscalefps and a degree-6 polynomial. Padding channels: their weights and bias
// are zero, so they compute act(0) = 0 for every activation taken here (Clip only with min <= 0 <= max).
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "src/backends/cpu/avx512_act.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/ops/nn.h"

namespace kiln::backends::cpu {

namespace {

struct DwGeom {
    int64_t blocks;      // channel blocks per image
    int64_t ih, iw, oh, ow;
    int64_t pt, pl;      // padding at the top / left
};

// One output pixel near the left or right edge (the window checked column by column).
template <int K, int S, DwAct A>
KILN_AVX512 inline void dw_pixel(const float* xb, const float* wb, __m512 bias, float* yr, const DwGeom& g, int64_t ow,
                                 int64_t ih0, int kh_lo, int kh_hi, __m512 lo, __m512 hi) {
    constexpr int64_t V = kChannelBlock;
    __m512 acc = bias;
    for (int kh = kh_lo; kh < kh_hi; ++kh) {
        const float* xr = xb + (ih0 + kh) * g.iw * V;
        for (int kw = 0; kw < K; ++kw) {
            const int64_t iw = ow * S - g.pl + kw;
            if (iw < 0 || iw >= g.iw) continue;
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(xr + iw * V), _mm512_loadu_ps(wb + (kh * K + kw) * V), acc);
        }
    }
    _mm512_storeu_ps(yr + ow * V, activate<A>(acc, lo, hi));
}

// Rows [r0, r1) of (image, channel block, output row). x, y nChw16c; w [blocks][K][K][16]; b [blocks][16].
template <int K, int S, DwAct A>
KILN_AVX512 void dw_rows(const float* x, const float* w, const float* b, float* y, const DwGeom& g, int64_t r0,
                         int64_t r1, float lo_f, float hi_f) {
    constexpr int64_t V = kChannelBlock;
    constexpr int kBlock = 8;  // output pixels per weight load
    const __m512 lo = _mm512_set1_ps(lo_f), hi = _mm512_set1_ps(hi_f);
    // output columns whose whole window lies inside the row: [ow_lo, ow_hi)
    const int64_t ow_lo = std::min(g.ow, (g.pl + S - 1) / S);
    const int64_t last = g.iw - K + g.pl;  // the largest ow * S with the window inside
    const int64_t ow_hi = std::max(ow_lo, std::min(g.ow, last >= 0 ? last / S + 1 : 0));
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t nb = r / g.oh, oh = r % g.oh, cb = nb % g.blocks;
        const float* xb = x + nb * g.ih * g.iw * V;
        float* yr = y + (nb * g.oh + oh) * g.ow * V;
        const float* wb = w + cb * K * K * V;
        const __m512 bias = _mm512_loadu_ps(b + cb * V);
        const int64_t ih0 = oh * S - g.pt;
        const int kh_lo = static_cast<int>(std::max<int64_t>(0, -ih0));
        const int kh_hi = static_cast<int>(std::min<int64_t>(K, g.ih - ih0));
        for (int64_t ow = 0; ow < ow_lo; ++ow) dw_pixel<K, S, A>(xb, wb, bias, yr, g, ow, ih0, kh_lo, kh_hi, lo, hi);
        int64_t ow = ow_lo;
        for (; ow + kBlock <= ow_hi; ow += kBlock) {
            __m512 acc[kBlock];  // fully unrolled, so that the accumulators stay in registers
#pragma GCC unroll 8
            for (int j = 0; j < kBlock; ++j) acc[j] = bias;
            for (int kh = kh_lo; kh < kh_hi; ++kh) {
                const float* xr = xb + ((ih0 + kh) * g.iw + ow * S - g.pl) * V;
#pragma GCC unroll 5
                for (int kw = 0; kw < K; ++kw) {
                    const __m512 wv = _mm512_loadu_ps(wb + (kh * K + kw) * V);
#pragma GCC unroll 8
                    for (int j = 0; j < kBlock; ++j)
                        acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + (j * S + kw) * V), wv, acc[j]);
                }
            }
#pragma GCC unroll 8
            for (int j = 0; j < kBlock; ++j) _mm512_storeu_ps(yr + (ow + j) * V, activate<A>(acc[j], lo, hi));
        }
        for (; ow < g.ow; ++ow) dw_pixel<K, S, A>(xb, wb, bias, yr, g, ow, ih0, kh_lo, kh_hi, lo, hi);
    }
}

using RowsFn = void (*)(const float*, const float*, const float*, float*, const DwGeom&, int64_t, int64_t, float,
                        float);

template <int K, int S>
RowsFn pick_act(DwAct a) {
    switch (a) {
        case DwAct::kNone: return dw_rows<K, S, DwAct::kNone>;
        case DwAct::kRelu: return dw_rows<K, S, DwAct::kRelu>;
        case DwAct::kClip: return dw_rows<K, S, DwAct::kClip>;
        case DwAct::kSilu: return dw_rows<K, S, DwAct::kSilu>;
    }
    return nullptr;
}

RowsFn pick(int k, int s, DwAct a) {
    if (k == 3) return s == 1 ? pick_act<3, 1>(a) : pick_act<3, 2>(a);
    return s == 1 ? pick_act<5, 1>(a) : pick_act<5, 2>(a);
}

// Below this many multiply-adds the layer runs on the calling thread (as the oneDNN convolutions do).
constexpr double kMinParallelMacs = 2e5;

class DepthwiseKernel : public Kernel {
public:
    explicit DepthwiseKernel(const KernelNode& node) : where_(node.where()) {
        const Tensor& wt = *node.inputs[1].value;
        channels_ = wt.dim(0);
        k_ = static_cast<int>(wt.dim(2));
        win_ = ops::parse_window_attrs(node.attrs, 2, {wt.dim(2), wt.dim(3)}, false, where_);
        stride_ = static_cast<int>(win_.strides[0]);
        Activation act = Activation::from_attrs(node.attrs, where_);
        act_of(act, &act_);
        lo_ = act.alpha;
        hi_ = act.beta;
        const int64_t blocks = padded_channels(channels_) / kChannelBlock;
        // 64-byte aligned: every 16-float vector one cache line (unaligned, the layer ran 1.5x slower)
        w_ = aligned_floats(blocks * k_ * k_ * kChannelBlock);
        b_ = aligned_floats(blocks * kChannelBlock);
        for (int64_t c = 0; c < channels_; ++c)
            for (int i = 0; i < k_ * k_; ++i)
                w_.get()[((c / kChannelBlock) * k_ * k_ + i) * kChannelBlock + c % kChannelBlock] =
                    wt.data<float>()[c * k_ * k_ + i];
        if (node.inputs.size() > 2 && node.inputs[2].present)
            std::memcpy(b_.get(), node.inputs[2].value->data<float>(), channels_ * sizeof(float));
        rows_ = pick(k_, stride_, act_);
    }

    std::string describe() const override {
        return cat("dwconv", k_, "x", k_, "s", stride_, "_f32_nChw16c_avx512");
    }
    bool writes_all_outputs() const override { return true; }  // padding channels included (act(0) = 0)

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        DwGeom g;
        g.blocks = padded_channels(channels_) / kChannelBlock;
        g.ih = x.dim(2);
        g.iw = x.dim(3);
        g.oh = y.dim(2);
        g.ow = y.dim(3);
        int64_t unused = 0;
        ops::window_output_dim(win_, 0, g.ih, &g.pt, &unused, where_);
        ops::window_output_dim(win_, 1, g.iw, &g.pl, &unused, where_);
        const int64_t rows = x.dim(0) * g.blocks * g.oh;
        const double macs = static_cast<double>(y.numel()) * k_ * k_;
        const int threads = macs < kMinParallelMacs ? 1 : std::max(1, a.num_threads);
        const float* xp = x.data<float>();
        float* yp = y.data<float>();
        if (threads == 1) {
            rows_(xp, w_.get(), b_.get(), yp, g, 0, rows, lo_, hi_);
            return;
        }
#pragma omp parallel num_threads(threads)
        {
            const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
            rows_(xp, w_.get(), b_.get(), yp, g, rows * t / nt, rows * (t + 1) / nt, lo_, hi_);
        }
    }

private:
    std::string where_;
    ops::WindowAttrs win_;
    int64_t channels_ = 0;
    int k_ = 3, stride_ = 1;
    DwAct act_ = DwAct::kNone;
    float lo_ = 0.f, hi_ = 0.f;
    std::unique_ptr<float[], void (*)(void*)> w_{nullptr, std::free}, b_{nullptr, std::free};
    RowsFn rows_ = nullptr;
};

KILN_AVX512 void silu_rows(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + kChannelBlock <= n; i += kChannelBlock)
        _mm512_storeu_ps(x + i, activate<DwAct::kSilu>(_mm512_loadu_ps(x + i), __m512(), __m512()));
    for (; i < n; ++i) x[i] = x[i] / (1.f + std::exp(-x[i]));
}

bool enabled() {
    static const bool kOn = [] {
        const char* e = std::getenv("KILN_CPU_DEPTHWISE");
        return !(e && std::string(e) == "0") && __builtin_cpu_supports("avx512f");
    }();
    return kOn;
}
}  // namespace

void silu_inplace(float* x, int64_t n, int threads) {
    if (threads <= 1) {
        silu_rows(x, n);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        // split on 16-float boundaries
        const int64_t vecs = (n + kChannelBlock - 1) / kChannelBlock;
        const int64_t b = std::min(n, vecs * t / nt * kChannelBlock), e = std::min(n, vecs * (t + 1) / nt * kChannelBlock);
        silu_rows(x + b, e - b);
    }
}

bool conv_is_depthwise_blocked(const KernelNode& node) {
    if (!enabled() || node.precision != "fp32") return false;
    if (node.input_layout(0) != Layout::kNChw16c || node.output_layout(0) != Layout::kNChw16c) return false;
    if (node.inputs.size() > 3 && node.inputs[3].present) return false;  // no residual
    const SymShape& x = node.inputs[0].dims;
    const SymShape& w = node.inputs[1].dims;
    if (!x[1].is_static() || !w[0].is_static() || !w[2].is_static() || !w[3].is_static()) return false;
    const int64_t c = x[1].value, k = w[2].value;
    if (node.attrs.get_int("group", 1) != c || w[0].value != c || w[1] != Dim(1)) return false;
    if (k != w[3].value || (k != 3 && k != 5)) return false;
    ops::WindowAttrs win = ops::parse_window_attrs(node.attrs, 2, {k, k}, false, node.where());
    if (win.strides[0] != win.strides[1] || (win.strides[0] != 1 && win.strides[0] != 2)) return false;
    if (win.dilations[0] != 1 || win.dilations[1] != 1) return false;
    DwAct act;
    return act_of(Activation::from_attrs(node.attrs, node.where()), &act);
}

std::unique_ptr<Kernel> make_cpu_conv_depthwise(const KernelNode& node) {
    return std::make_unique<DepthwiseKernel>(node);
}

}  // namespace kiln::backends::cpu

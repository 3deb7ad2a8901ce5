// Conv / FusedConv 1x1 (stride 1, no padding, group 1) on small nChw16c images, AVX-512: MobileNetV2's and
// EfficientNet's head convolutions (320 -> 1280 channels on 7 x 7) and EfficientNet's 7 x 7 projections,
//   y[n, o, p] = act(B[o] + sum_i W[o, i] x[n, i, p] (+ z[n, o, p]))
// through the projection tiles of FusedExpandDepthwise (conv1x1_tile.h): the whole image is one "row" of H*W pixels
// (tiles of equal width, at most 8 pixels x 3 output blocks, broadcasts folded into the FMAs), and the threads split
// the output blocks, so each reads only its share of W (these layers are bound by streaming W: 1.6 MB for the head,
// used 49 times per weight). On such images oneDNN's jit_1x1 kernel reached 47 GMAC/s per core here, these tiles
// about 55 (conv1x1_tile.h). Each group of output blocks prefetches the next group's weights into L1 as its tiles
// run (KILN_CPU_CONV1X1_PREFETCH=0: not): they come from L3 or memory, a weight is used by 7 tiles only.
//
// Images of at most KILN_CPU_CONV1X1_SMALL pixels (default 64; 0: never, oneDNN for all) take this kernel; the
// residual Z must be nChw16c too (it is read in place when Y overwrites it).
#include <omp.h>

#include <cstdlib>
#include <string>

#include "src/backends/cpu/avx512_act.h"
#include "src/backends/cpu/conv1x1_tile.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/ops/nn.h"

namespace kiln::backends::cpu {

namespace {

constexpr int64_t V = kChannelBlock;
constexpr int64_t kDefaultMaxPixels = 64;
// Below this many multiply-adds the layer runs on the calling thread.
constexpr double kMinParallelMacs = 2e5;

int64_t max_pixels() {
    const char* e = std::getenv("KILN_CPU_CONV1X1_SMALL");
    return e ? std::atoll(e) : kDefaultMaxPixels;
}

class Conv1x1SmallKernel : public Kernel {
public:
    explicit Conv1x1SmallKernel(const KernelNode& node) {
        const Tensor& w = *node.inputs[1].value;
        cout_ = w.dim(0);
        cin_ = w.dim(1);
        const Activation act = Activation::from_attrs(node.attrs, node.where());
        act_of(act, &act_);
        lo_ = act.alpha, hi_ = act.beta;
        oblocks_ = padded_channels(cout_) / V;
        const int64_t cp = padded_channels(cin_);
        // W packed [out block][in padded][16], B [out padded]; the padding stays zero
        w_ = aligned_floats(oblocks_ * cp * V);
        b_ = aligned_floats(oblocks_ * V);
        const float* wp = w.data<float>();
        for (int64_t o = 0; o < cout_; ++o)
            for (int64_t i = 0; i < cin_; ++i) w_.get()[((o / V) * cp + i) * V + o % V] = wp[o * cin_ + i];
        if (node.inputs.size() > 2 && node.inputs[2].present)
            std::copy_n(node.inputs[2].value->data<float>(), cout_, b_.get());
        residual_ = node.inputs.size() > 3 && node.inputs[3].present;
        half_ = cout_ % V != 0 && cout_ % V <= V / 2;
        const char* e = std::getenv("KILN_CPU_CONV1X1_PREFETCH");
        prefetch_ = !(e && std::string(e) == "0");
    }

    std::string describe() const override {
        return cat("conv1x1_small", residual_ ? "_residual" : "", "_f32_nChw16c_avx512");
    }
    bool writes_all_outputs() const override { return true; }  // padding channels: act(0 + 0) = 0

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        const int64_t images = x.dim(0), px = x.dim(2) * x.dim(3);
        const double macs = static_cast<double>(images) * px * cin_ * cout_;
        const int threads =
            static_cast<int>(std::min<int64_t>(oblocks_, macs < kMinParallelMacs ? 1 : std::max(1, a.num_threads)));
        const float* xp = x.data<float>();
        const float* zp = residual_ ? a.inputs[3]->data<float>() : nullptr;
        float* yp = y.data<float>();
        if (threads <= 1) {
            run(xp, zp, yp, images, px, 0, 1);
            return;
        }
#pragma omp parallel num_threads(threads)
        run(xp, zp, yp, images, px, omp_get_thread_num(), omp_get_num_threads());
    }

private:
    // Thread t of nt: output blocks [oblocks * t / nt, oblocks * (t + 1) / nt) of every image.
    void run(const float* x, const float* z, float* y, int64_t images, int64_t px, int64_t t, int64_t nt) const {
        const int64_t b0 = oblocks_ * t / nt, b1 = oblocks_ * (t + 1) / nt;
        if (b0 == b1) return;
        const int64_t cp = padded_channels(cin_), ws = cp * V;
        for (int64_t n = 0; n < images; ++n) {
            const int64_t off = (n * oblocks_ + b0) * px * V;
            conv1x1::project_row(x + n * cp * px, px, cin_, w_.get() + b0 * ws, b_.get() + b0 * V,
                                 z ? z + off : nullptr, y + off, b1 - b0, px * V, half_ && b1 == oblocks_, act_, lo_,
                                 hi_, prefetch_);
        }
    }

    int64_t cin_ = 0, cout_ = 0, oblocks_ = 0;
    DwAct act_ = DwAct::kNone;
    float lo_ = 0.f, hi_ = 0.f;
    bool residual_ = false, half_ = false;  // half_: the last output block has at most 8 real channels
    bool prefetch_ = true;  // KILN_CPU_CONV1X1_PREFETCH=0: no software prefetch of the next weights
    std::unique_ptr<float[], void (*)(void*)> w_{nullptr, std::free}, b_{nullptr, std::free};
};

}  // namespace

bool conv_is_1x1_small(const KernelNode& node) {
    // (avx512vl: the 256-bit FMAs of a half last block are EVEX-encoded)
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl") || node.precision != "fp32")
        return false;
    if (node.input_layout(0) != Layout::kNChw16c || node.output_layout(0) != Layout::kNChw16c) return false;
    const bool residual = node.inputs.size() > 3 && node.inputs[3].present;
    if (residual && node.input_layout(3) != Layout::kNChw16c) return false;
    if (!node.inputs[1].value || (node.inputs.size() > 2 && node.inputs[2].present && !node.inputs[2].value))
        return false;
    const SymShape& x = node.inputs[0].dims;
    if (x.size() != 4 || !x[1].is_static() || !x[2].is_static() || !x[3].is_static()) return false;
    const Tensor& w = *node.inputs[1].value;
    if (w.rank() != 4 || w.dim(2) != 1 || w.dim(3) != 1 || w.dim(1) != x[1].value) return false;
    if (node.attrs.get_int("group", 1) != 1) return false;
    const int64_t px = x[2].value * x[3].value;
    if (px < 1 || px > max_pixels()) return false;
    ops::WindowAttrs win = ops::parse_window_attrs(node.attrs, 2, {1, 1}, false, node.where());
    for (int i = 0; i < 2; ++i) {
        if (win.strides[i] != 1 || win.dilations[i] != 1) return false;
        int64_t pad_lo = 0, pad_hi = 0;
        const int64_t out = ops::window_output_dim(win, i, x[2 + i].value, &pad_lo, &pad_hi, node.where());
        if (pad_lo != 0 || pad_hi != 0 || out != x[2 + i].value) return false;
    }
    DwAct a;
    return act_of(Activation::from_attrs(node.attrs, node.where()), &a);
}

std::unique_ptr<Kernel> make_cpu_conv_1x1_small(const KernelNode& node) {
    return std::make_unique<Conv1x1SmallKernel>(node);
}

}  // namespace kiln::backends::cpu

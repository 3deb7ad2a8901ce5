// MatMul / FusedMatMul (float32) with a constant 2-D B and only a few rows of A (the classifier of a CNN at batch 1:
// [1, 1280] x [1280, 1000]): y[m, n] = act(bias[n] + sum_k A[m, k] B[k, n] + Z[m, n]). Such a product is bound by
// reading B once (5 MB for MobileNetV2's classifier); oneDNN's brgemm matmul read it at 16-36 GB/s. Here B is
// packed once into panels of 16 columns, [N / 16][K][16] (PackedGemv, gemv.h), so each thread streams a contiguous
// range of panels, each read once for all the rows of A (up to kMaxRows at a time). Four panels run side by side
// (four independent accumulator chains per row, one broadcast of A[m, k] feeding four FMAs).
//
// Taken only when A's shape is static with at most kMaxRows rows and the CPU has AVX-512; KILN_CPU_GEMV=0 keeps
// every matmul on oneDNN.
#include <omp.h>

#include <algorithm>
#include <string>

#include "src/backends/cpu/avx512_act.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/dnnl_util.h"
#include "src/backends/cpu/gemv.h"

namespace kiln::backends::cpu {

namespace {

constexpr int64_t V = 16;        // columns per panel
constexpr int64_t kMaxRows = 4;  // rows of A per pass over the panels
constexpr double kMinParallelMacs = 2e5;

// Panels [p0, p0 + G) for rows [0, m <= kMaxRows): out[r][g][16] = bias + sum_i a[r, i] w[p0 + g][i][:]. Each
// panel sums k in kChains interleaved chains (i mod kChains), added at the end: shorter dependency chains, and the
// rounding of a 1152-term sum stays close to that of the reference's.
constexpr int kChains = 4;
template <int G>
KILN_AVX512 void panels(const float* a, int64_t m, int64_t k, const float* w, const float* bias, float* out,
                        int64_t p0) {
    const float* wp = w + p0 * k * V;
    for (int64_t r = 0; r < m; ++r) {
        const float* ar = a + r * k;
        __m512 acc[G][kChains];
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
            for (int u = 0; u < kChains; ++u) acc[g][u] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + kChains <= k; i += kChains) {
#pragma GCC unroll 4
            for (int u = 0; u < kChains; ++u) {
                const __m512 av = _mm512_set1_ps(ar[i + u]);
#pragma GCC unroll 4
                for (int g = 0; g < G; ++g)
                    acc[g][u] = _mm512_fmadd_ps(av, _mm512_load_ps(wp + (g * k + i + u) * V), acc[g][u]);
            }
        }
        for (; i < k; ++i) {
            const __m512 av = _mm512_set1_ps(ar[i]);
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g)
                acc[g][0] = _mm512_fmadd_ps(av, _mm512_load_ps(wp + (g * k + i) * V), acc[g][0]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) {
            const __m512 s = _mm512_add_ps(_mm512_add_ps(acc[g][0], acc[g][1]), _mm512_add_ps(acc[g][2], acc[g][3]));
            _mm512_store_ps(out + (r * G + g) * V, _mm512_add_ps(s, _mm512_load_ps(bias + (p0 + g) * V)));
        }
    }
}

}  // namespace

PackedGemv::PackedGemv(const float* b, int64_t k, int64_t n, bool b_is_nk, const float* bias)
    : k_(k), n_(n), panels_((n + V - 1) / V) {
    // W packed [panel][k][16] (columns past n zero), bias padded to whole panels
    w_ = aligned_floats(panels_ * k_ * V);
    bias_ = aligned_floats(panels_ * V);
    for (int64_t c = 0; c < n_; ++c)
        for (int64_t i = 0; i < k_; ++i)
            w_.get()[((c / V) * k_ + i) * V + c % V] = b_is_nk ? b[c * k_ + i] : b[i * n_ + c];
    if (bias) std::copy_n(bias, n_, bias_.get());
}

void PackedGemv::run(const float* x, int64_t m, float* y, int64_t g0, int64_t g1) const {
    alignas(64) float tile[kMaxRows * kGroup * V];
    for (int64_t r0 = 0; r0 < m; r0 += kMaxRows) {
        const int64_t rows = std::min(kMaxRows, m - r0);
        for (int64_t gi = g0; gi < g1; ++gi) {
            const int64_t p0 = gi * kGroup, np = std::min(kGroup, panels_ - p0);
            const float* xr = x + r0 * k_;
            switch (np) {
                case 4:
                    panels<4>(xr, rows, k_, w_.get(), bias_.get(), tile, p0);
                    break;
                case 3:
                    panels<3>(xr, rows, k_, w_.get(), bias_.get(), tile, p0);
                    break;
                case 2:
                    panels<2>(xr, rows, k_, w_.get(), bias_.get(), tile, p0);
                    break;
                default:
                    panels<1>(xr, rows, k_, w_.get(), bias_.get(), tile, p0);
            }
            const int64_t c0 = p0 * V, c1 = std::min(n_, (p0 + np) * V);
            for (int64_t r = 0; r < rows; ++r)
                std::copy(tile + r * np * V, tile + r * np * V + (c1 - c0), y + (r0 + r) * n_ + c0);
        }
    }
}

namespace {

class GemvKernel : public Kernel {
public:
    explicit GemvKernel(const KernelNode& node) : act_(Activation::from_attrs(node.attrs, node.where())) {
        const Tensor& b = *node.inputs[1].value;
        const bool trans_b = node.op_type == "FusedMatMul" && node.attrs.get_int("trans_b", 0) != 0;
        const float* bias =
            node.inputs.size() > 2 && node.inputs[2].present ? node.inputs[2].value->data<float>() : nullptr;
        gemv_ = std::make_unique<PackedGemv>(b.data<float>(), trans_b ? b.dim(1) : b.dim(0),
                                             trans_b ? b.dim(0) : b.dim(1), trans_b, bias);
        has_residual_ = node.inputs.size() > 3 && node.inputs[3].present;
    }

    std::string describe() const override { return "gemv_f32_packed16_avx512"; }
    bool writes_all_outputs() const override { return true; }

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        const int64_t m = x.numel() / gemv_->k();
        const float* z = has_residual_ ? a.inputs[3]->data<float>() : nullptr;
        const int64_t groups = gemv_->groups();
        const double macs = static_cast<double>(m) * gemv_->k() * gemv_->n();
        const int threads =
            static_cast<int>(std::min<int64_t>(groups, macs < kMinParallelMacs ? 1 : std::max(1, a.num_threads)));
        const float* xp = x.data<float>();
        float* yp = y.data<float>();
        if (threads <= 1) {
            run(xp, m, z, yp, 0, groups);
            return;
        }
#pragma omp parallel num_threads(threads)
        {
            const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
            run(xp, m, z, yp, groups * t / nt, groups * (t + 1) / nt);
        }
    }

private:
    // Column groups [g0, g1) for all rows, then Z and the activation over those columns. Z may be Y itself
    // (LayoutCaps::overwrite_input): the product goes to a scratch row first.
    void run(const float* x, int64_t m, const float* z, float* y, int64_t g0, int64_t g1) const {
        const int64_t n = gemv_->n(), c0 = gemv_->first_column(g0), c1 = gemv_->first_column(g1);
        if (z == y) {
            // y holds Z: add the product column-range by column-range through a scratch copy of the rows
            float* tmp = static_cast<float*>(thread_buffer(kScratchSlot, sizeof(float) * m * n));
            gemv_->run(x, m, tmp, g0, g1);
            for (int64_t r = 0; r < m; ++r)
                for (int64_t c = c0; c < c1; ++c) y[r * n + c] = finish(tmp[r * n + c] + z[r * n + c]);
            return;
        }
        gemv_->run(x, m, y, g0, g1);
        for (int64_t r = 0; r < m; ++r)
            for (int64_t c = c0; c < c1; ++c) y[r * n + c] = finish(y[r * n + c] + (z ? z[r * n + c] : 0.f));
    }
    float finish(float v) const { return act_.kind == ActivationKind::kNone ? v : act_.apply(v); }

    static constexpr int kScratchSlot = 2;  // matmul_dnnl.cc's bf16 A buffer: never used by the same node
    Activation act_;
    std::unique_ptr<PackedGemv> gemv_;
    bool has_residual_ = false;
};

// Read at each kernel choice (build time only), so a test can flip it.
bool enabled() {
    const char* e = std::getenv("KILN_CPU_GEMV");
    return !(e && std::string(e) == "0") && __builtin_cpu_supports("avx512f");
}

}  // namespace

bool matmul_is_gemv(const KernelNode& node) {
    if (!enabled() || node.precision != "fp32" || node.op_type == "Gemm") return false;
    const ops::TensorInfo &a = node.inputs[0], &b = node.inputs[1];
    if (!b.value || b.rank() != 2 || a.rank() < 1 || !is_static(a.dims)) return false;
    const bool trans_b = node.op_type == "FusedMatMul" && node.attrs.get_int("trans_b", 0) != 0;
    const int64_t k = trans_b ? b.dims[1].value : b.dims[0].value;
    if (a.dims.back().value != k) return false;
    int64_t m = 1;
    for (int i = 0; i + 1 < a.rank(); ++i) m *= a.dims[i].value;
    if (m < 1 || m > kMaxRows) return false;
    if (node.inputs.size() > 2 && node.inputs[2].present && !node.inputs[2].value) return false;
    return !(node.inputs.size() > 3 && node.inputs[3].present && !(node.inputs[3].dims == node.outputs[0].dims));
}

std::unique_ptr<Kernel> make_cpu_matmul_gemv(const KernelNode& node) { return std::make_unique<GemvKernel>(node); }

}  // namespace kiln::backends::cpu

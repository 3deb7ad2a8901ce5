// MatMul / FusedMatMul (float32) with a constant 2-D B and only a few rows of A
// (the classifier of a CNN at batch 1: [1, 1280] x [1280, 1000]): y[m, n] =
// act(bias[n] + sum_k A[m, k] B[k, n] + Z[m, n]). Such a product is bound by
// reading B once (5 MB for MobileNetV2's classifier); oneDNN's brgemm matmul
// read it at 16-36 GB/s. Here B is packed once into panels of 16 columns, [N /
// 16][K][16], so each thread streams a contiguous range of panels, and each
// panel is read once for all the rows of A (up to kMaxRows). Four panels run
// side by side (four independent accumulator chains per row, one broadcast of
// A[m, k] feeding four FMAs).
//
// Taken only when A's shape is static with at most kMaxRows rows and the CPU
// has AVX-512; KILN_CPU_GEMV=0 keeps every matmul on oneDNN.
#include <omp.h>

#include <algorithm>
#include <string>

#include "src/backends/cpu/avx512_act.h"
#include "src/backends/cpu/cpu_backend.h"

namespace kiln::backends::cpu {

namespace {

constexpr int64_t V = 16;        // columns per panel
constexpr int64_t kGroup = 4;    // panels computed together
constexpr int64_t kMaxRows = 4;  // rows of A per call
constexpr double kMinParallelMacs = 2e5;

// Panels [p0, p1) for rows [0, m): y[r, p * 16 + j] = bias + sum_k a[r, k]
// w[p][k][j] (before Z and act).
template <int G>
KILN_AVX512 void panels(const float *a, int64_t m, int64_t k, const float *w, const float *bias, float *out,
                        int64_t p0) {
    // out: [m][G][16] scratch for this group
    for (int64_t r = 0; r < m; ++r) {
        const float *ar = a + r * k;
        __m512 acc[G];
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) acc[g] = _mm512_loadu_ps(bias + (p0 + g) * V);
        const float *wp = w + p0 * k * V;
        int64_t i = 0;
        for (; i < k; ++i) {
            const __m512 av = _mm512_set1_ps(ar[i]);
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g) acc[g] = _mm512_fmadd_ps(av, _mm512_load_ps(wp + (g * k + i) * V), acc[g]);
        }
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) _mm512_storeu_ps(out + (r * G + g) * V, acc[g]);
    }
}

class GemvKernel : public Kernel {
public:
    explicit GemvKernel(const KernelNode &node) : act_(Activation::from_attrs(node.attrs, node.where())) {
        const Tensor &b = *node.inputs[1].value;
        const bool trans_b = node.op_type == "FusedMatMul" && node.attrs.get_int("trans_b", 0) != 0;
        k_ = trans_b ? b.dim(1) : b.dim(0);
        n_ = trans_b ? b.dim(0) : b.dim(1);
        panels_ = (n_ + V - 1) / V;
        has_residual_ = node.inputs.size() > 3 && node.inputs[3].present;
        // W packed [panel][k][16] (columns past n zero), bias padded to whole
        // panels
        w_ = aligned_floats(panels_ * k_ * V);
        bias_ = aligned_floats(panels_ * V);
        const float *bp = b.data<float>();
        for (int64_t n = 0; n < n_; ++n)
            for (int64_t i = 0; i < k_; ++i)
                w_.get()[((n / V) * k_ + i) * V + n % V] = trans_b ? bp[n * k_ + i] : bp[i * n_ + n];
        if (node.inputs.size() > 2 && node.inputs[2].present)
            std::copy_n(node.inputs[2].value->data<float>(), n_, bias_.get());
    }

    std::string describe() const override { return "gemv_f32_packed16_avx512"; }
    bool writes_all_outputs() const override { return true; }

    void execute(const KernelArgs &a) const override {
        const Tensor &x = *a.inputs[0];
        Tensor &y = *a.outputs[0];
        const int64_t m = x.numel() / k_;
        const float *z = has_residual_ ? a.inputs[3]->data<float>() : nullptr;
        const int64_t groups = (panels_ + kGroup - 1) / kGroup;
        const double macs = static_cast<double>(m) * k_ * n_;
        const int threads =
            static_cast<int>(std::min<int64_t>(groups, macs < kMinParallelMacs ? 1 : std::max(1, a.num_threads)));
        const float *xp = x.data<float>();
        float *yp = y.data<float>();
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
    // Panel groups [g0, g1) for all rows.
    void run(const float *x, int64_t m, const float *z, float *y, int64_t g0, int64_t g1) const {
        alignas(64) float tile[kMaxRows * kGroup * V];
        for (int64_t gi = g0; gi < g1; ++gi) {
            const int64_t p0 = gi * kGroup, np = std::min(kGroup, panels_ - p0);
            switch (np) {
                case 4:
                    panels<4>(x, m, k_, w_.get(), bias_.get(), tile, p0);
                    break;
                case 3:
                    panels<3>(x, m, k_, w_.get(), bias_.get(), tile, p0);
                    break;
                case 2:
                    panels<2>(x, m, k_, w_.get(), bias_.get(), tile, p0);
                    break;
                default:
                    panels<1>(x, m, k_, w_.get(), bias_.get(), tile, p0);
            }
            const int64_t c0 = p0 * V, c1 = std::min(n_, (p0 + np) * V);
            for (int64_t r = 0; r < m; ++r) {
                const float *t = tile + r * np * V;
                float *yr = y + r * n_;
                const float *zr = z ? z + r * n_ : nullptr;
                for (int64_t c = c0; c < c1; ++c) {
                    float v = t[c - c0];
                    if (zr) v += zr[c];
                    yr[c] = act_.kind == ActivationKind::kNone ? v : act_.apply(v);
                }
            }
        }
    }

    Activation act_;
    int64_t k_ = 0, n_ = 0, panels_ = 0;
    bool has_residual_ = false;
    std::unique_ptr<float[], void (*)(void *)> w_{nullptr, std::free}, bias_{nullptr, std::free};
};

// Read at each kernel choice (build time only), so a test can flip it.
bool enabled() {
    const char *e = std::getenv("KILN_CPU_GEMV");
    return !(e && std::string(e) == "0") && __builtin_cpu_supports("avx512f");
}

}  // namespace

bool matmul_is_gemv(const KernelNode &node) {
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

std::unique_ptr<Kernel> make_cpu_matmul_gemv(const KernelNode &node) { return std::make_unique<GemvKernel>(node); }

}  // namespace kiln::backends::cpu

// FusedExpandDepthwise (op_list.def) on nChw16c values, AVX-512: the 1x1 expand convolution and the depthwise
// convolution of an inverted-residual block in one pass,
//   m[c, h, w] = act1(B1[c] + sum_i W1[c, i] x[i, h, w]);  y = act2(B2 + depthwise_k(m, W2))
// m never goes to memory as a whole: each thread owns a rectangle of (16-channel blocks x output rows) and, for
// each output row, expands only the input rows the depthwise window newly needs into a ring of k rows of its blocks
// (k x width x 16 floats per block, in L1 / L2), then runs the depthwise row from the ring. Images of 28 rows or
// more are split by rows (each thread reads only its band of x, which mostly sits in its own L2 after the previous
// layer; k - stride halo rows expanded twice); smaller ones by channel blocks (no halo, but every thread reads all
// of x). The expand tile is 8 pixels x up to 3 channel blocks (24 accumulators), broadcasting one input channel at
// a time (as oneDNN's jit_1x1 does).
//
// With a squeeze-excite block (inputs 5-8) the rows are also summed as they are stored; after a barrier the team
// computes h, after a second one each thread scales the rows it stored by their channel gates.
//
// With a projection (inputs 9-11: the 1x1 convolution after the block, + residual) the threads always split rows:
// each output row's depthwise rows of all blocks go to a small per-thread buffer (L1) and are projected from there
// right away, so the depthwise output never reaches memory either, and each thread writes (and the next block
// reads) the same band of rows, which stays in that core's L2.
//
// Other layouts or CPUs without AVX-512 run the two layers through the ordinary convolution kernels.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "src/backends/cpu/avx512_act.h"
#include "src/backends/cpu/conv1x1_tile.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/dnnl_util.h"
#include "src/backends/expand_depthwise.h"
#include "src/ops/nn.h"

namespace kiln::backends::cpu {

namespace {

constexpr int64_t V = kChannelBlock;
using conv1x1::fmadd_bcast;
using conv1x1::project_row;

struct Geom {
    int64_t cin, cin_blocks;  // input channels (real) and their blocks
    int64_t h, w, oh, ow, pt, pl;
    int64_t wp;  // ring row width: pl zero columns, the w expanded ones, then zeros up to the last window's end
    int64_t images;
};

// Expand pixels [w0, w0 + P) of input row `ih` into OB channel blocks. x: the image's nChw16c base; we: the first
// block's packed weights [cin][16] (blocks `wstride` floats apart); dst: [OB][width][16] with `dstride` between blocks.
template <int OB, int P, DwAct A>
KILN_AVX512 inline void expand_tile(const float* x, const float* we, int64_t wstride, const float* be, float* dst,
                                    int64_t dstride, const Geom& g, int64_t ih, int64_t w0, __m512 lo, __m512 hi) {
    __m512 acc[OB][P];
#pragma GCC unroll 3
    for (int o = 0; o < OB; ++o) {
        const __m512 b = _mm512_load_ps(be + o * V);
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) acc[o][p] = b;
    }
    for (int64_t ib = 0; ib < g.cin_blocks; ++ib) {
        const float* xr = x + ((ib * g.h + ih) * g.w + w0) * V;
        const int64_t n = std::min<int64_t>(V, g.cin - ib * V);
        const float* wi = we + ib * V * V;
        for (int64_t i = 0; i < n; ++i) {
            __m512 wv[OB];
#pragma GCC unroll 3
            for (int o = 0; o < OB; ++o) wv[o] = _mm512_load_ps(wi + o * wstride + i * V);
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p)
#pragma GCC unroll 3
                for (int o = 0; o < OB; ++o) acc[o][p] = fmadd_bcast(xr + p * V + i, wv[o], acc[o][p]);
        }
    }
#pragma GCC unroll 3
    for (int o = 0; o < OB; ++o)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) _mm512_store_ps(dst + o * dstride + (w0 + p) * V, activate<A>(acc[o][p], lo, hi));
}

using TileFn = void (*)(const float*, const float*, int64_t, const float*, float*, int64_t, const Geom&, int64_t,
                        int64_t, __m512, __m512);

// The last 1..7 pixels of a row as one tile of that width: the 7 x 7 and 14 x 14 layers keep most accumulators busy.
template <DwAct A>
struct Tails {
    template <int P>
    static constexpr std::array<TileFn, 3> row() {
        return {expand_tile<1, P, A>, expand_tile<2, P, A>, expand_tile<3, P, A>};
    }
    static constexpr std::array<std::array<TileFn, 3>, 7> kTable = {row<1>(), row<2>(), row<3>(), row<4>(),
                                                                    row<5>(), row<6>(), row<7>()};
};

// Input row ih expanded into blocks [0, nb) of a ring slot ([nb][wp][16]); dst is the slot's column pl (the first
// expanded pixel of block 0); we / be start at block 0.
template <DwAct A>
KILN_AVX512 void expand_row(const float* x, const float* we, const float* be, float* dst, int64_t nb, const Geom& g,
                            int64_t ih, float lo_f, float hi_f) {
    const __m512 lo = _mm512_set1_ps(lo_f), hi = _mm512_set1_ps(hi_f);
    const int64_t ws = g.cin_blocks * V * V, ds = g.wp * V;
    constexpr const auto& tail_ = Tails<A>::kTable;
    for (int64_t b = 0; b < nb; b += 3) {
        const int64_t ob = std::min<int64_t>(3, nb - b);
        const float* wb = we + b * ws;
        const float* bb = be + b * V;
        float* db = dst + b * ds;
        int64_t w0 = 0;
        for (; w0 + 8 <= g.w; w0 += 8) {
            if (ob == 3)
                expand_tile<3, 8, A>(x, wb, ws, bb, db, ds, g, ih, w0, lo, hi);
            else if (ob == 2)
                expand_tile<2, 8, A>(x, wb, ws, bb, db, ds, g, ih, w0, lo, hi);
            else
                expand_tile<1, 8, A>(x, wb, ws, bb, db, ds, g, ih, w0, lo, hi);
        }
        if (w0 < g.w) tail_[g.w - w0 - 1][ob - 1](x, wb, ws, bb, db, ds, g, ih, w0, lo, hi);
    }
}

// Output pixels [ow, ow + P) of one block's depthwise row from the ring rows rows[kh] ([wp][16], column 0 is input
// column -pl, the padding columns zero; nullptr outside the image): P independent accumulators, no edge checks.
template <int K, int S, DwAct A, int P>
KILN_AVX512 inline void dw_tile(const float* const* rows, const float* wb, __m512 bias, float* yr, int64_t ow,
                                __m512 lo, __m512 hi) {
    __m512 acc[P];
#pragma GCC unroll 8
    for (int j = 0; j < P; ++j) acc[j] = bias;
    for (int kh = 0; kh < K; ++kh) {
        if (!rows[kh]) continue;
        const float* xr = rows[kh] + ow * S * V;
#pragma GCC unroll 5
        for (int kw = 0; kw < K; ++kw) {
            const __m512 wv = _mm512_load_ps(wb + (kh * K + kw) * V);
#pragma GCC unroll 8
            for (int j = 0; j < P; ++j) acc[j] = _mm512_fmadd_ps(_mm512_load_ps(xr + (j * S + kw) * V), wv, acc[j]);
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < P; ++j) _mm512_storeu_ps(yr + (ow + j) * V, activate<A>(acc[j], lo, hi));
}

// One depthwise output row of one block: tiles of 8 pixels, the last 1..7 as one narrower tile (7x7 and 14x14
// layers keep several accumulator chains busy instead of one per pixel).
template <int K, int S, DwAct A>
KILN_AVX512 void dw_row(const float* const* rows, const float* wb, const float* bb, float* yr, const Geom& g,
                        float lo_f, float hi_f) {
    const __m512 lo = _mm512_set1_ps(lo_f), hi = _mm512_set1_ps(hi_f), bias = _mm512_load_ps(bb);
    int64_t ow = 0;
    for (; ow + 8 <= g.ow; ow += 8) dw_tile<K, S, A, 8>(rows, wb, bias, yr, ow, lo, hi);
    switch (g.ow - ow) {
        case 7:
            return dw_tile<K, S, A, 7>(rows, wb, bias, yr, ow, lo, hi);
        case 6:
            return dw_tile<K, S, A, 6>(rows, wb, bias, yr, ow, lo, hi);
        case 5:
            return dw_tile<K, S, A, 5>(rows, wb, bias, yr, ow, lo, hi);
        case 4:
            return dw_tile<K, S, A, 4>(rows, wb, bias, yr, ow, lo, hi);
        case 3:
            return dw_tile<K, S, A, 3>(rows, wb, bias, yr, ow, lo, hi);
        case 2:
            return dw_tile<K, S, A, 2>(rows, wb, bias, yr, ow, lo, hi);
        case 1:
            return dw_tile<K, S, A, 1>(rows, wb, bias, yr, ow, lo, hi);
        default:
            return;
    }
}

using ExpandFn = void (*)(const float*, const float*, const float*, float*, int64_t, const Geom&, int64_t, float,
                          float);
using DwFn = void (*)(const float* const*, const float*, const float*, float*, const Geom&, float, float);

ExpandFn pick_expand(DwAct a) {
    switch (a) {
        case DwAct::kNone:
            return expand_row<DwAct::kNone>;
        case DwAct::kRelu:
            return expand_row<DwAct::kRelu>;
        case DwAct::kClip:
            return expand_row<DwAct::kClip>;
        case DwAct::kSilu:
            return expand_row<DwAct::kSilu>;
    }
    return nullptr;
}

template <int K, int S>
DwFn pick_dw_act(DwAct a) {
    switch (a) {
        case DwAct::kNone:
            return dw_row<K, S, DwAct::kNone>;
        case DwAct::kRelu:
            return dw_row<K, S, DwAct::kRelu>;
        case DwAct::kClip:
            return dw_row<K, S, DwAct::kClip>;
        case DwAct::kSilu:
            return dw_row<K, S, DwAct::kSilu>;
    }
    return nullptr;
}

DwFn pick_dw(int k, int s, DwAct a) {
    if (k == 3) return s == 1 ? pick_dw_act<3, 1>(a) : pick_dw_act<3, 2>(a);
    return s == 1 ? pick_dw_act<5, 1>(a) : pick_dw_act<5, 2>(a);
}

// --- squeeze-excite (op_list.def): the pooled sums gathered as rows are stored, then h, the gates and the scaling

// sum[0:16] += the n pixels of an nChw16c row.
KILN_AVX512 void add_row(const float* row, int64_t n, float* sum) {
    __m512 a = _mm512_load_ps(sum), b = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        a = _mm512_add_ps(a, _mm512_loadu_ps(row + i * V));
        b = _mm512_add_ps(b, _mm512_loadu_ps(row + (i + 1) * V));
    }
    if (i < n) a = _mm512_add_ps(a, _mm512_loadu_ps(row + i * V));
    _mm512_store_ps(sum, _mm512_add_ps(a, b));
}

// dot(w, x) over n floats (a multiple of 16, both 64-byte aligned).
KILN_AVX512 float dot16(const float* w, const float* x, int64_t n) {
    __m512 a = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += V) a = _mm512_fmadd_ps(_mm512_load_ps(w + i), _mm512_load_ps(x + i), a);
    return _mm512_reduce_add_ps(a);
}

// rows [0, count) of 16 channels (nChw16c, `ow` pixels each, contiguous) times the block's gate,
// gate = sigmoid(be + sum_j h[j] we[j][:]) with we the block's [cr][16] excitation weights.
KILN_AVX512 void excite_rows(float* y, int64_t pixels, const float* h, int64_t cr, const float* we, const float* be) {
    __m512 s = _mm512_load_ps(be);
    for (int64_t j = 0; j < cr; ++j) s = _mm512_fmadd_ps(_mm512_set1_ps(h[j]), _mm512_load_ps(we + j * V), s);
    const __m512 gate = sigmoid512(s);
    for (int64_t i = 0; i < pixels; ++i) _mm512_storeu_ps(y + i * V, _mm512_mul_ps(_mm512_loadu_ps(y + i * V), gate));
}

// Below this many multiply-adds the block runs on the calling thread.
constexpr double kMinParallelMacs = 2e5;

// Threads split images of at least this many output rows by rows (KILN_CPU_EXPAND_DW_ROW_SPLIT, 0: never; read when
// the kernel is made).
constexpr int64_t kDefaultRowSplitRows = 28;
int64_t row_split_rows() {
    const char* e = std::getenv("KILN_CPU_EXPAND_DW_ROW_SPLIT");
    const int64_t v = e ? std::atoll(e) : kDefaultRowSplitRows;
    return v <= 0 ? std::numeric_limits<int64_t>::max() : v;
}
// With a projection, images of at least this many output rows split rows over the threads, smaller ones run in two
// phases (KILN_CPU_EXPAND_DW_PROJECT_ROWS, read when the kernel is made).
constexpr int64_t kDefaultProjectRows = 14;
int64_t project_rows() {
    const char* e = std::getenv("KILN_CPU_EXPAND_DW_PROJECT_ROWS");
    return e ? std::atoll(e) : kDefaultProjectRows;
}
constexpr int kRingSlot = 3;  // thread_buffer slot (conv_dnnl.cc uses 0 and 1, matmul_dnnl.cc 2)
constexpr int kSeSlot = 4;    // the calling thread's: squeeze-excite partial sums and h, shared by the team; with a
                              // projection on small images, all of D
constexpr int kMeanSlot =
    2;  // each thread's pooled means (matmul_dnnl.cc / matmul_gemv.cc use it inside their kernels)

class ExpandDepthwiseKernel : public Kernel {
public:
    explicit ExpandDepthwiseKernel(const KernelNode& node) : where_(node.where()) {
        const Tensor& w1 = *node.inputs[1].value;
        const Tensor& w2 = *node.inputs[3].value;
        cin_ = w1.dim(1);
        channels_ = w1.dim(0);
        k_ = static_cast<int>(w2.dim(2));
        const AttributeMap da = depthwise_conv_attrs(node.attrs);
        win_ = ops::parse_window_attrs(da, 2, {w2.dim(2), w2.dim(3)}, false, where_);
        stride_ = static_cast<int>(win_.strides[0]);
        const Activation a1 = Activation::from_attrs(expand_conv_attrs(node.attrs), where_);
        const Activation a2 = Activation::from_attrs(da, where_);
        act_of(a1, &act1_);
        act_of(a2, &act2_);
        lo1_ = a1.alpha, hi1_ = a1.beta, lo2_ = a2.alpha, hi2_ = a2.beta;
        blocks_ = padded_channels(channels_) / V;
        const int64_t cinp = padded_channels(cin_);
        // W1 packed [block][cin padded][16], W2 [block][k*k][16], biases [block][16]; padding stays zero
        we_ = aligned_floats(blocks_ * cinp * V);
        be_ = aligned_floats(blocks_ * V);
        wd_ = aligned_floats(blocks_ * k_ * k_ * V);
        bd_ = aligned_floats(blocks_ * V);
        const float* w1p = w1.data<float>();
        const float* w2p = w2.data<float>();
        for (int64_t c = 0; c < channels_; ++c) {
            const int64_t b = c / V, l = c % V;
            for (int64_t i = 0; i < cin_; ++i) we_.get()[(b * cinp + i) * V + l] = w1p[c * cin_ + i];
            for (int i = 0; i < k_ * k_; ++i) wd_.get()[(b * k_ * k_ + i) * V + l] = w2p[c * k_ * k_ + i];
            be_.get()[c] = node.inputs[2].value->data<float>()[c];
            bd_.get()[c] = node.inputs[4].value->data<float>()[c];
        }
        expand_ = pick_expand(act1_);
        dw_ = pick_dw(k_, stride_, act2_);
        if (node.inputs.size() > 8 && node.inputs[5].present) pack_squeeze_excite(node);
        if (node.inputs.size() > 10 && node.inputs[9].present) pack_projection(node);
        row_split_rows_ = row_split_rows();
        proj_rows_ = project_rows();
        const char* he = std::getenv("KILN_CPU_EXPAND_DW_HALO");
        halo_ = !(he && std::string(he) == "0");
        const char* pe = std::getenv("KILN_CPU_CONV1X1_PREFETCH");
        prefetch_ = !(pe && std::string(pe) == "0");
    }

    std::string describe() const override {
        return cat("expand1x1_dwconv", k_, "x", k_, "s", stride_, se_cr_ ? "_se" : "", pblocks_ ? "_project" : "",
                   residual_ ? "_residual" : "", "_f32_nChw16c_avx512");
    }
    bool writes_all_outputs() const override { return true; }  // padding channels: act2(0) = 0

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        Geom g;
        g.cin = cin_;
        g.cin_blocks = padded_channels(cin_) / V;
        g.h = x.dim(2);
        g.w = x.dim(3);
        g.oh = y.dim(2);
        g.ow = y.dim(3);
        int64_t unused = 0;
        ops::window_output_dim(win_, 0, g.h, &g.pt, &unused, where_);
        ops::window_output_dim(win_, 1, g.w, &g.pl, &unused, where_);
        g.wp = std::max(g.pl + g.w, (g.ow - 1) * stride_ + k_);
        g.images = x.dim(0);
        const int64_t items = x.dim(0) * blocks_ * g.oh;
        const double dw_out = static_cast<double>(x.dim(0)) * channels_ * g.oh * g.ow;
        const double macs = static_cast<double>(x.dim(0)) * channels_ * g.h * g.w * cin_ + dw_out * k_ * k_ +
                            dw_out * pblocks_ * V;
        const int threads =
            static_cast<int>(std::min<int64_t>(items, macs < kMinParallelMacs ? 1 : std::max(1, a.num_threads)));
        const float* xp = x.data<float>();
        float* yp = y.data<float>();
        // images of at least row_split_rows() output rows (with a projection: all): each thread takes a band of rows
        // of every block
        const bool rows = threads > 1 && g.oh >= row_split_rows_;
        if (pblocks_) {
            const float* zp = residual_ ? a.inputs[11]->data<float>() : nullptr;
            if (threads <= 1) {
                run_projected(xp, zp, yp, g, {0, 1, items, true});
                return;
            }
            if (g.oh >= proj_rows_) {
                // (every band non-empty: each overlap is then seen alike by the two threads that share it)
                float* halo = halo_ && g.oh >= threads ? static_cast<float*>(thread_buffer(
                                          kSeSlot, sizeof(float) * (threads - 1) * kHaloRows * g.images * blocks_ *
                                                       g.wp * V))
                                    : nullptr;
#pragma omp parallel num_threads(threads)
                run_projected(xp, zp, yp, g, {omp_get_thread_num(), omp_get_num_threads(), items, true}, halo);
                return;
            }
            float* d =
                static_cast<float*>(thread_buffer(kSeSlot, sizeof(float) * g.images * blocks_ * g.oh * g.ow * V));
#pragma omp parallel num_threads(threads)
            run_phases(xp, zp, d, yp, g, {omp_get_thread_num(), omp_get_num_threads(), items, false}, true);
            return;
        }
        if (!se_cr_) {
            if (threads <= 1) {
                run(xp, yp, g, {0, 1, items, false}, nullptr);
                return;
            }
#pragma omp parallel num_threads(threads)
            run(xp, yp, g, {omp_get_thread_num(), omp_get_num_threads(), items, rows}, nullptr);
            return;
        }
        // squeeze-excite: per thread partial sums [N][C padded], then h [N][cr], in the calling thread's buffer
        const int64_t n_img = x.dim(0), cp = blocks_ * V, part = n_img * cp;
        float* se = static_cast<float*>(thread_buffer(kSeSlot, sizeof(float) * (threads * part + n_img * se_crp_)));
        float* h = se + threads * part;
        if (threads <= 1) {
            excite(xp, yp, g, {0, 1, items, false}, se, h, false);
            return;
        }
#pragma omp parallel num_threads(threads)
        excite(xp, yp, g, {omp_get_thread_num(), omp_get_num_threads(), items, rows}, se, h, true);
    }

private:
    // Thread t's share of the output: with `rows`, a band [oh * t / nt, oh * (t + 1) / nt) of every block of every
    // image (the k - stride halo rows at the band's top expanded by both threads; the thread reads only its band
    // of X, which the previous layer mostly wrote from the same core); otherwise the t-th equal range of the
    // flattened (image, block, output row), so whole blocks per thread and no halo, but every thread reads all of X.
    struct Share {
        int64_t t, nt, items;
        bool rows;
    };

    // f(n, b0, nb, oh0, oh1) for the rectangles (blocks [b0, b0 + nb) of image n, output rows [oh0, oh1)) of share s:
    // by rows, one per image; by blocks, a partial block at each end of the range, whole blocks in between.
    template <class F>
    void for_each_segment(const Geom& g, const Share& s, F f) const {
        if (s.rows) {
            const int64_t oh0 = g.oh * s.t / s.nt, oh1 = g.oh * (s.t + 1) / s.nt;
            if (oh0 < oh1)
                for (int64_t n = 0; n < g.images; ++n) f(n, 0, blocks_, oh0, oh1);
            return;
        }
        int64_t r0 = s.items * s.t / s.nt;
        const int64_t r1 = s.items * (s.t + 1) / s.nt;
        while (r0 < r1) {
            const int64_t n = r0 / (blocks_ * g.oh), b = r0 / g.oh % blocks_, oh = r0 % g.oh;
            if (oh != 0 || r1 - r0 < g.oh) {
                const int64_t e = std::min(r1, r0 - oh + g.oh);
                f(n, b, 1, oh, oh + (e - r0));
                r0 = e;
            } else {
                const int64_t nb = std::min((r1 - r0) / g.oh, blocks_ - b);
                f(n, b, nb, 0, g.oh);
                r0 += nb * g.oh;
            }
        }
    }

    // Share s on the calling thread. `sums` (nullptr: no squeeze-excite): [N][blocks][16] sums of the output rows
    // this thread stores.
    void run(const float* x, float* y, const Geom& g, const Share& s, float* sums) const {
        for_each_segment(g, s, [&](int64_t n, int64_t b0, int64_t nb, int64_t oh0, int64_t oh1) {
            segment(x, y, g, n, b0, nb, oh0, oh1, sums);
        });
    }

    // Thread s.t of s.nt (inside the parallel region when `team`): its share with their sums into se[t], a
    // barrier, h for its share of (image, j) from all the sums, a barrier, then the gates of the blocks it stored
    // and its rows scaled by them (still in its cache).
    void excite(const float* x, float* y, const Geom& g, const Share& s, float* se, float* h, bool team) const {
        const int64_t cp = blocks_ * V, images = g.images, part = images * cp, t = s.t, nt = s.nt;
        float* mine = se + t * part;
        std::fill(mine, mine + part, 0.f);
        run(x, y, g, s, mine);
        if (team) {
#pragma omp barrier
        }
        // h[n][j] = act(Br[j] + Wr[j] . mean_n), (n, j) split over the team
        const int64_t hs = images * se_cr_;
        float* mean = static_cast<float*>(thread_buffer(kMeanSlot, sizeof(float) * cp));
        int64_t cur = -1;
        for (int64_t q = hs * t / nt; q < hs * (t + 1) / nt; ++q) {
            const int64_t n = q / se_cr_, j = q % se_cr_;
            if (n != cur) {
                const float inv = 1.f / static_cast<float>(g.oh * g.ow);
                for (int64_t c = 0; c < cp; ++c) {
                    float s = 0.f;
                    for (int u = 0; u < nt; ++u) s += se[u * part + n * cp + c];
                    mean[c] = s * inv;
                }
                cur = n;
            }
            h[n * se_crp_ + j] = se_act_.apply(se_br_.get()[j] + dot16(se_wr_.get() + j * cp, mean, cp));
        }
        if (team) {
#pragma omp barrier
        }
        for_each_segment(g, s, [&](int64_t n, int64_t b0, int64_t nb, int64_t oh0, int64_t oh1) {
            for (int64_t b = b0; b < b0 + nb; ++b)
                excite_rows(y + ((n * blocks_ + b) * g.oh + oh0) * g.ow * V, (oh1 - oh0) * g.ow, h + n * se_crp_,
                            se_cr_, se_we_.get() + b * se_cr_ * V, se_be_.get() + b * V);
        });
    }

    // The input rows [lo, hi) thread t of nt needs for its band of output rows.
    void band_rows(const Geom& g, int64_t t, int64_t nt, int64_t* lo, int64_t* hi) const {
        const int64_t oh0 = g.oh * t / nt, oh1 = g.oh * (t + 1) / nt;
        *lo = std::max<int64_t>(0, oh0 * stride_ - g.pt);
        *hi = oh0 < oh1 ? std::min(g.h, (oh1 - 1) * stride_ - g.pt + k_) : *lo;
    }

    // Rows shared by neighbouring bands (run_projected): [prev_lo, prev_hi) with the previous band (boundary
    // prev_b), [next_lo, next_hi) with the next one (boundary next_b); row(n, b, i): the i-th row of boundary b.
    struct Halo {
        float* buf = nullptr;
        int64_t slot = 0, images = 1;
        int64_t prev_lo = 0, prev_hi = 0, prev_b = 0, next_lo = 0, next_hi = 0, next_b = 0;
        float* row(int64_t n, int64_t b, int64_t i) const { return buf + ((b * images + n) * kHaloRows + i) * slot; }
        // the buffered row r of image n (at column 0 of the ring row layout), or nullptr
        const float* find(int64_t n, int64_t r) const {
            if (r >= prev_lo && r < prev_hi) return row(n, prev_b, r - prev_lo);
            if (r >= next_lo && r < next_hi) return row(n, next_b, r - next_lo);
            return nullptr;
        }
    };
    static constexpr int64_t kHaloRows = 4;  // k - stride <= 4

    // Share s (a band of rows, or everything) with the projection: y (and z) have pblocks_ blocks. With `halo`
    // (inside the parallel region, nt > 1: a buffer of (nt - 1) x 4 x images ring rows) the input rows two
    // neighbouring bands both need are expanded once: each thread expands its half of each overlap into the
    // buffer, a barrier, then both copy those rows into their rings instead of expanding them again.
    void run_projected(const float* x, const float* z, float* y, const Geom& g, const Share& s,
                       float* halo = nullptr) const {
        Halo h;
        if (halo && s.nt > 1) {
            h.buf = halo;
            h.slot = blocks_ * g.wp * V;
            int64_t lo_t, hi_t, lo_n = 0, hi_p = 0;
            band_rows(g, s.t, s.nt, &lo_t, &hi_t);
            if (s.t > 0) {
                int64_t lo_p;
                band_rows(g, s.t - 1, s.nt, &lo_p, &hi_p);
                h.prev_lo = lo_t, h.prev_hi = std::min(hi_p, hi_t), h.prev_b = s.t - 1;
            }
            if (s.t + 1 < s.nt) {
                int64_t hi_n;
                band_rows(g, s.t + 1, s.nt, &lo_n, &hi_n);
                h.next_lo = std::max(lo_n, lo_t), h.next_hi = hi_t, h.next_b = s.t;
            }
            h.images = g.images;
            // this thread's halves: the lower half of the overlap with the next band, the upper of the previous
            const float* we = we_.get();
            for (int64_t n = 0; n < g.images; ++n) {
                const float* xn = x + n * g.cin_blocks * g.h * g.w * V;
                const int64_t next_mid = (h.next_lo + h.next_hi) / 2, prev_mid = (h.prev_lo + h.prev_hi) / 2;
                for (int64_t r = h.next_lo; r < std::min(h.next_hi, next_mid + (h.next_hi - h.next_lo) % 2); ++r)
                    expand_(xn, we, be_.get(), h.row(n, h.next_b, r - h.next_lo) + g.pl * V, blocks_, g, r, lo1_,
                            hi1_);
                for (int64_t r = std::max(h.prev_lo, prev_mid + (h.prev_hi - h.prev_lo) % 2); r < h.prev_hi; ++r)
                    expand_(xn, we, be_.get(), h.row(n, h.prev_b, r - h.prev_lo) + g.pl * V, blocks_, g, r, lo1_,
                            hi1_);
            }
#pragma omp barrier
        }
        for_each_segment(g, s, [&](int64_t n, int64_t b0, int64_t nb, int64_t oh0, int64_t oh1) {
            const int64_t off = n * pblocks_ * g.oh * g.ow * V;
            segment(x, y + off, g, n, b0, nb, oh0, oh1, nullptr, true, z ? z + off : nullptr, h.buf ? &h : nullptr);
        });
    }

    // Images of fewer rows than proj_rows_ (7 x 7: two bands would be 3 and 4 rows, each with halo rows): thread t
    // of nt (inside the parallel region when `team`) stores its channel blocks' depthwise rows in d (all of D,
    // nChw16c), a barrier, then projects its share of the output blocks of every image from all of d.
    void run_phases(const float* x, const float* z, float* d, float* y, const Geom& g, const Share& s,
                    bool team) const {
        run(x, d, g, s, nullptr);
        if (team) {
#pragma omp barrier
        }
        const int64_t px = g.oh * g.ow, b0 = pblocks_ * s.t / s.nt, b1 = pblocks_ * (s.t + 1) / s.nt;
        if (b0 == b1) return;
        const int64_t ws = blocks_ * V * V;
        for (int64_t n = 0; n < g.images; ++n) {
            const int64_t off = (n * pblocks_ + b0) * px * V;
            project_row(d + n * blocks_ * px * V, px, channels_, pw_.get() + b0 * ws, pb_.get() + b0 * V,
                        z ? z + off : nullptr, y + off, b1 - b0, px * V, phalf_ && b1 == pblocks_, DwAct::kNone, 0.f,
                        0.f, prefetch_);
        }
    }

    // Wp [Cout block][C padded][16], Bp [Cout padded]; the padding stays zero (y's padding channels: 0 + z's 0).
    void pack_projection(const KernelNode& node) {
        const Tensor& wp = *node.inputs[9].value;
        const int64_t cout = wp.dim(0), cp = blocks_ * V;
        pblocks_ = padded_channels(cout) / V;
        pw_ = aligned_floats(pblocks_ * cp * V);
        pb_ = aligned_floats(pblocks_ * V);
        for (int64_t o = 0; o < cout; ++o) {
            for (int64_t c = 0; c < channels_; ++c)
                pw_.get()[((o / V) * cp + c) * V + o % V] = wp.data<float>()[o * channels_ + c];
            pb_.get()[o] = node.inputs[10].value->data<float>()[o];
        }
        residual_ = node.inputs.size() > 11 && node.inputs[11].present;
        phalf_ = cout % V != 0 && cout % V <= V / 2;
    }

    // Wr [cr][C padded] (rows for h), We [block][cr][16] (a block's gates), biases padded with zeros: the padding
    // channels sum to 0 and keep y = 0 * gate.
    void pack_squeeze_excite(const KernelNode& node) {
        const Tensor& wr = *node.inputs[5].value;
        const Tensor& we = *node.inputs[7].value;
        se_cr_ = wr.dim(0);
        se_crp_ = padded_channels(se_cr_);
        const int64_t cp = blocks_ * V;
        se_wr_ = aligned_floats(se_cr_ * cp);
        se_br_ = aligned_floats(se_crp_);
        se_we_ = aligned_floats(blocks_ * se_cr_ * V);
        se_be_ = aligned_floats(cp);
        for (int64_t j = 0; j < se_cr_; ++j) {
            for (int64_t c = 0; c < channels_; ++c) {
                se_wr_.get()[j * cp + c] = wr.data<float>()[j * channels_ + c];
                se_we_.get()[((c / V) * se_cr_ + j) * V + c % V] = we.data<float>()[c * se_cr_ + j];
            }
            se_br_.get()[j] = node.inputs[6].value->data<float>()[j];
        }
        std::copy_n(node.inputs[8].value->data<float>(), channels_, se_be_.get());
        se_act_ = Activation::from_attrs(se_reduce_attrs(node.attrs), where_);
    }

    // Blocks [b0, b0 + nb) of image n, output rows [oh0, oh1). With `project` (all blocks, y and z at image n), each
    // output row's depthwise rows go to a buffer after the ring and are projected into y.
    void segment(const float* x, float* y, const Geom& g, int64_t n, int64_t b0, int64_t nb, int64_t oh0, int64_t oh1,
                 float* sums, bool project = false, const float* z = nullptr, const Halo* halo = nullptr) const {
        const int64_t cinp = padded_channels(cin_);
        const int64_t slot = nb * g.wp * V;  // floats per ring row
        const int64_t drow = project ? nb * g.ow * V : 0;
        float* ring = static_cast<float*>(thread_buffer(kRingSlot, sizeof(float) * (k_ * slot + drow)));
        float* d = ring + k_ * slot;
        for (int64_t r = 0; r < k_ * nb; ++r) {  // the padding columns of every ring row: zero
            float* row = ring + r * g.wp * V;
            std::memset(row, 0, sizeof(float) * g.pl * V);
            std::memset(row + (g.pl + g.w) * V, 0, sizeof(float) * (g.wp - g.pl - g.w) * V);
        }
        const float* xn = x + n * g.cin_blocks * g.h * g.w * V;
        int64_t next = 0;  // the next input row to expand
        for (int64_t oh = oh0; oh < oh1; ++oh) {
            const int64_t ih0 = oh * stride_ - g.pt;
            const int64_t need = std::min(g.h, ih0 + k_);
            next = std::max(next, std::max<int64_t>(0, ih0));
            for (; next < need; ++next) {
                float* dst = ring + (next % k_) * slot + g.pl * V;
                const float* shared = halo ? halo->find(n, next) : nullptr;
                if (shared) {  // all blocks (rows split): expanded once, by this thread or its neighbour
                    for (int64_t j = 0; j < nb; ++j)
                        std::memcpy(dst + j * g.wp * V, shared + j * g.wp * V + g.pl * V, sizeof(float) * g.w * V);
                } else {
                    expand_(xn, we_.get() + b0 * cinp * V, be_.get() + b0 * V, dst, nb, g, next, lo1_, hi1_);
                }
            }
            for (int64_t j = 0; j < nb; ++j) {
                const float* rows[5];
                for (int kh = 0; kh < k_; ++kh) {
                    const int64_t ih = ih0 + kh;
                    rows[kh] = ih < 0 || ih >= g.h ? nullptr : ring + (ih % k_) * slot + j * g.wp * V;
                }
                const int64_t b = b0 + j;
                float* yr = project ? d + j * g.ow * V : y + ((n * blocks_ + b) * g.oh + oh) * g.ow * V;
                dw_(rows, wd_.get() + b * k_ * k_ * V, bd_.get() + b * V, yr, g, lo2_, hi2_);
                if (sums) add_row(yr, g.ow, sums + (n * blocks_ + b) * V);
            }
            if (project)
                project_row(d, g.ow, channels_, pw_.get(), pb_.get(), z ? z + oh * g.ow * V : nullptr,
                            y + oh * g.ow * V, pblocks_, g.oh * g.ow * V, phalf_);
        }
    }

    std::string where_;
    ops::WindowAttrs win_;
    int64_t cin_ = 0, channels_ = 0, blocks_ = 0;
    int k_ = 3, stride_ = 1;
    DwAct act1_ = DwAct::kNone, act2_ = DwAct::kNone;
    float lo1_ = 0.f, hi1_ = 0.f, lo2_ = 0.f, hi2_ = 0.f;
    std::unique_ptr<float[], void (*)(void*)> we_{nullptr, std::free}, be_{nullptr, std::free};
    std::unique_ptr<float[], void (*)(void*)> wd_{nullptr, std::free}, bd_{nullptr, std::free};
    ExpandFn expand_ = nullptr;
    DwFn dw_ = nullptr;
    int64_t row_split_rows_ = kDefaultRowSplitRows;
    int64_t pblocks_ = 0;  // the projection's output blocks (0: none)
    int64_t proj_rows_ = kDefaultProjectRows;
    bool halo_ = true;  // KILN_CPU_EXPAND_DW_HALO=0: both bands expand their shared rows
    bool prefetch_ = true;  // two phases: the projection prefetches its next weights (KILN_CPU_CONV1X1_PREFETCH=0: not)
    bool residual_ = false, phalf_ = false;  // phalf_: the last output block has at most 8 real channels
    std::unique_ptr<float[], void (*)(void*)> pw_{nullptr, std::free}, pb_{nullptr, std::free};
    int64_t se_cr_ = 0, se_crp_ = 0;  // squeeze-excite: reduced channels (0: none), padded to 16
    Activation se_act_;
    std::unique_ptr<float[], void (*)(void*)> se_wr_{nullptr, std::free}, se_br_{nullptr, std::free};
    std::unique_ptr<float[], void (*)(void*)> se_we_{nullptr, std::free}, se_be_{nullptr, std::free};
};

bool fused_path(const KernelNode& node) {
    // (avx512vl: the projection's 256-bit FMAs with an embedded broadcast are EVEX-encoded)
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512vl") || node.precision != "fp32")
        return false;
    if (node.input_layout(0) != Layout::kNChw16c || node.output_layout(0) != Layout::kNChw16c) return false;
    if (node.inputs.size() > 11 && node.inputs[11].present && node.input_layout(11) != Layout::kNChw16c) return false;
    DwAct a;
    return act_of(Activation::from_attrs(expand_conv_attrs(node.attrs), node.where()), &a) &&
           act_of(Activation::from_attrs(depthwise_conv_attrs(node.attrs), node.where()), &a);
}

}  // namespace

bool supports_expand_depthwise(const KernelNode& node) {
    for (size_t i = 1; i < 5; ++i)
        if (!node.inputs[i].present || !node.inputs[i].value) return false;
    const size_t n = node.inputs.size();
    const bool se = n > 5 && node.inputs[5].present, proj = n > 9 && node.inputs[9].present;
    for (size_t i = 5; i < 9 && i < n; ++i)  // squeeze-excite: all four, constant
        if (node.inputs[i].present != se || (se && !node.inputs[i].value)) return false;
    if (se && proj) return false;
    for (size_t i = 9; i < 11 && i < n; ++i)  // projection: Wp and Bp constant, Z (11) any value
        if (node.inputs[i].present != proj || (proj && !node.inputs[i].value)) return false;
    if (proj && (n < 11 || node.inputs[9].value->rank() != 4)) return false;
    if (node.inputs[0].rank() != 4 || !node.inputs[0].dims[1].is_static()) return false;
    const Tensor& w2 = *node.inputs[3].value;
    if (w2.dim(2) != w2.dim(3) || (w2.dim(2) != 3 && w2.dim(2) != 5)) return false;
    ops::WindowAttrs win =
        ops::parse_window_attrs(depthwise_conv_attrs(node.attrs), 2, {w2.dim(2), w2.dim(3)}, false, node.where());
    return win.strides[0] == win.strides[1] && (win.strides[0] == 1 || win.strides[0] == 2) && win.dilations[0] == 1 &&
           win.dilations[1] == 1;
}

std::unique_ptr<Kernel> make_cpu_expand_depthwise(const KernelNode& node) {
    if (fused_path(node)) return std::make_unique<ExpandDepthwiseKernel>(node);
    return make_expand_depthwise_fallback(node);
}

LayoutCaps layout_caps_expand_depthwise(const KernelNode& node) {
    LayoutCaps c;
    c.inputs.assign(node.inputs.size(), false);
    c.inputs[0] = true;
    if (c.inputs.size() > 11) c.inputs[11] = true;  // the residual, read in the output's layout
    c.outputs = {true};
    c.prefers_blocked = true;
    return c;
}

}  // namespace kiln::backends::cpu

#pragma once
// A network's stem convolution (3x3, stride 1 or 2, a few input channels, plain NCHW input) one output row at a
// time into nChw16c blocks: FusedExpandDepthwise computes it in the expand's place (conv_expand_depthwise.cc), so
// MobileNetV2's / EfficientNet's stem output (32 x 112 x 112) goes into the depthwise ring instead of memory.
// The k input rows of every channel are first copied into a zero-padded buffer (so no tile checks edges), then
// tiles of up to 8 pixels x 2 output blocks take one input value per tap and pixel as a broadcast folded into the
// FMA (conv1x1_tile.h).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

#include "src/backends/cpu/avx512_act.h"
#include "src/backends/cpu/conv1x1_tile.h"

namespace kiln::backends::cpu {

namespace stem {

constexpr int64_t V = kChannelBlock;
constexpr int K = 3;

// Output pixels [w0, w0 + P) of OB blocks. buf: [cin][K][bw] padded input rows (column 0 = input column -pl);
// w: block 0's packed weights [cin * K * K][16] (blocks `wstride` floats apart); dst: block 0's row, blocks
// `dstride` apart.
template <int S, int OB, int P, DwAct A>
KILN_AVX512 inline void stem_tile(const float* buf, int64_t bw, int64_t cin, const float* w, int64_t wstride,
                                  const float* b, float* dst, int64_t dstride, int64_t w0, __m512 lo, __m512 hi) {
    __m512 acc[OB][P];
#pragma GCC unroll 2
    for (int o = 0; o < OB; ++o) {
        const __m512 bv = _mm512_load_ps(b + o * V);
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) acc[o][p] = bv;
    }
    for (int64_t c = 0; c < cin; ++c) {
#pragma GCC unroll 3
        for (int kh = 0; kh < K; ++kh) {
            const float* r = buf + (c * K + kh) * bw + S * w0;
            const float* wt = w + (c * K + kh) * K * V;
#pragma GCC unroll 3
            for (int kw = 0; kw < K; ++kw) {
                __m512 wv[OB];
#pragma GCC unroll 2
                for (int o = 0; o < OB; ++o) wv[o] = _mm512_load_ps(wt + o * wstride + kw * V);
#pragma GCC unroll 8
                for (int p = 0; p < P; ++p)
#pragma GCC unroll 2
                    for (int o = 0; o < OB; ++o) acc[o][p] = conv1x1::fmadd_bcast(r + S * p + kw, wv[o], acc[o][p]);
            }
        }
    }
#pragma GCC unroll 2
    for (int o = 0; o < OB; ++o)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) _mm512_store_ps(dst + o * dstride + (w0 + p) * V, activate<A>(acc[o][p], lo, hi));
}

using StemTileFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, const float*, float*, int64_t,
                            int64_t, __m512, __m512);

template <int S, DwAct A>
struct StemTiles {
    template <int P>
    static constexpr std::array<StemTileFn, 2> row() {
        return {stem_tile<S, 1, P, A>, stem_tile<S, 2, P, A>};
    }
    static constexpr std::array<std::array<StemTileFn, 2>, 8> kTable = {row<1>(), row<2>(), row<3>(), row<4>(),
                                                                        row<5>(), row<6>(), row<7>(), row<8>()};
};

// The input row buffer's width for output rows of `ow` pixels: pl zero columns, the xw input ones, zeros up to the
// last window's end.
inline int64_t buffer_width(int64_t xw, int64_t pl, int64_t ow, int64_t stride) {
    return std::max(pl + xw, (ow - 1) * stride + K);
}

// Output row `oh` (ow pixels) of blocks [0, nb) into dst (block 0's row, blocks dstride apart). x: the image, plain
// [cin][xh][xw]; w: [block][cin * K * K][16]; buf: a scratch of cin * K * bw floats.
template <int S, DwAct A>
KILN_AVX512 void stem_row(const float* x, int64_t cin, int64_t xh, int64_t xw, int64_t pt, int64_t pl,
                          const float* w, const float* b, float* dst, int64_t dstride, int64_t nb, int64_t oh,
                          int64_t ow, float* buf, float lo_f, float hi_f) {
    const int64_t bw = buffer_width(xw, pl, ow, S);
    for (int64_t c = 0; c < cin; ++c)
        for (int kh = 0; kh < K; ++kh) {
            float* row = buf + (c * K + kh) * bw;
            const int64_t ih = oh * S - pt + kh;
            if (ih < 0 || ih >= xh) {
                std::memset(row, 0, sizeof(float) * bw);
                continue;
            }
            std::memset(row, 0, sizeof(float) * pl);
            std::memcpy(row + pl, x + (c * xh + ih) * xw, sizeof(float) * xw);
            std::memset(row + pl + xw, 0, sizeof(float) * (bw - pl - xw));
        }
    const __m512 lo = _mm512_set1_ps(lo_f), hi = _mm512_set1_ps(hi_f);
    const int64_t ws = cin * K * K * V;
    constexpr const auto& table = StemTiles<S, A>::kTable;
    for (int64_t bb = 0; bb < nb; bb += 2) {
        const int64_t ob = std::min<int64_t>(2, nb - bb);
        for (int64_t w0 = 0; w0 < ow; w0 += 8) {
            const int64_t np = std::min<int64_t>(8, ow - w0);
            table[np - 1][ob - 1](buf, bw, cin, w + bb * ws, ws, b + bb * V, dst + bb * dstride, dstride, w0, lo, hi);
        }
    }
}

}  // namespace stem

}  // namespace kiln::backends::cpu

#pragma once
// The 1x1 convolution tiles of kiln's nChw16c kernels (conv_expand_depthwise.cc, conv1x1_small.cc): FMAs with the
// broadcast folded into the instruction, and the projection of FusedExpandDepthwise (one output row, or a small
// image, from a buffer of nChw16c rows; with an activation, the small-image 1x1 convolutions), with a 256-bit path for
// a last output block of at most 8 channels.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>

#include "src/backends/cpu/avx512_act.h"
#include "src/common/layout.h"

namespace kiln::backends::cpu {

namespace conv1x1 {

constexpr int64_t V = kChannelBlock;

// acc + broadcast(*x) * w with the broadcast folded into the FMA ({1to16} memory operand, as oneDNN's jit_1x1
// kernels do): GCC keeps a separate vbroadcastss per pixel when one value feeds several blocks' FMAs.
KILN_AVX512 inline __m512 fmadd_bcast(const float* x, __m512 w, __m512 acc) {
    asm("vfmadd231ps %1%{1to16%}, %2, %0" : "+v"(acc) : "m"(*x), "v"(w));
    return acc;
}

// The same on 256 bits ({1to8}).
__attribute__((target("avx512f,avx512vl,fma"))) inline __m256 fmadd_bcast8(const float* x, __m256 w, __m256 acc) {
    asm("vfmadd231ps %1%{1to8%}, %2, %0" : "+v"(acc) : "m"(*x), "v"(w));
    return acc;
}

// Output pixels [p0, p0 + P) of OB output blocks: y = act(Bp + Wp d (+ z)), act(0) = 0 (the padding lanes). d: the
// depthwise row, [C blocks][ow][16]; wp: the first block's packed weights [C padded][16] (blocks `wstride` floats
// apart); y and z: the first block's output row, blocks `ystride` floats apart (z may be nullptr when !R). With H the
// last block has at most 8 real channels (MobileNetV2's 24, EfficientNet's 40): it runs on 256-bit accumulators,
// which Zen 4 issues at twice the rate of 512-bit ones, and its padding lanes are stored as zeros. [pf, pf_end):
// cache lines to prefetch, one per input channel (project_row's `prefetch`).
// (every AVX-512 CPU has FMA3; the 256-bit FMA needs the target named)
#define KILN_AVX512_FMA __attribute__((target("avx512f,avx512vl,fma")))
template <int OB, int P, bool R, bool H, DwAct A>
KILN_AVX512_FMA inline void project_tile(const float* d, int64_t ow, int64_t c, const float* wp, int64_t wstride,
                                         const float* bp, const float* z, float* y, int64_t ystride, int64_t p0,
                                         __m512 lo, __m512 hi, const char* pf, const char* pf_end) {
    constexpr int F = H ? OB - 1 : OB;  // full blocks
    __m512 acc[F > 0 ? F : 1][P];
    __m256 half[P];
#pragma GCC unroll 3
    for (int o = 0; o < F; ++o) {
        const __m512 b = _mm512_load_ps(bp + o * V);
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p)
            acc[o][p] = R ? _mm512_add_ps(b, _mm512_loadu_ps(z + o * ystride + (p0 + p) * V)) : b;
    }
    if (H) {
        const __m256 b = _mm256_load_ps(bp + F * V);
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p)
            half[p] = R ? _mm256_add_ps(b, _mm256_loadu_ps(z + F * ystride + (p0 + p) * V)) : b;
    }
    for (int64_t ib = 0; ib * V < c; ++ib) {
        const float* dr = d + (ib * ow + p0) * V;
        const int64_t n = std::min<int64_t>(V, c - ib * V);
        const float* wi = wp + ib * V * V;
        for (int64_t i = 0; i < n; ++i) {
            if (pf < pf_end) {  // one line of the next group's weights per input channel (project_row)
                _mm_prefetch(pf, _MM_HINT_T0);
                pf += 64;
            }
            __m512 wv[F > 0 ? F : 1];
#pragma GCC unroll 3
            for (int o = 0; o < F; ++o) wv[o] = _mm512_load_ps(wi + o * wstride + i * V);
            const __m256 wh = H ? _mm256_load_ps(wi + F * wstride + i * V) : _mm256_setzero_ps();
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) {
#pragma GCC unroll 3
                for (int o = 0; o < F; ++o) acc[o][p] = fmadd_bcast(dr + p * V + i, wv[o], acc[o][p]);
                if (H) half[p] = fmadd_bcast8(dr + p * V + i, wh, half[p]);
            }
        }
    }
#pragma GCC unroll 3
    for (int o = 0; o < F; ++o)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + o * ystride + (p0 + p) * V, activate<A>(acc[o][p], lo, hi));
    if (H)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p)
            _mm512_storeu_ps(y + F * ystride + (p0 + p) * V,
                             activate<A>(_mm512_maskz_mov_ps(0xff, _mm512_castps256_ps512(half[p])), lo, hi));
}

using ProjectFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, const float*, const float*, float*,
                           int64_t, int64_t, __m512, __m512, const char*, const char*);

template <bool R, bool H, DwAct A>
struct ProjectTiles {
    template <int P>
    static constexpr std::array<ProjectFn, 3> row() {
        return {project_tile<1, P, R, H, A>, project_tile<2, P, R, H, A>, project_tile<3, P, R, H, A>};
    }
    static constexpr std::array<std::array<ProjectFn, 3>, 8> kTable = {row<1>(), row<2>(), row<3>(), row<4>(),
                                                                       row<5>(), row<6>(), row<7>(), row<8>()};
};

using ProjectTable = std::array<std::array<ProjectFn, 3>, 8>;
template <DwAct A>
inline constexpr const ProjectTable* kProjectTables[2][2] = {
    {&ProjectTiles<false, false, A>::kTable, &ProjectTiles<false, true, A>::kTable},
    {&ProjectTiles<true, false, A>::kTable, &ProjectTiles<true, true, A>::kTable}};

// `pb` output blocks of `ow` pixels (one output row, or a whole image: d's channel blocks are ow pixels apart):
// groups of up to 3 blocks (4 as 2 + 2), tiles of at most 8 pixels; `half`: the last block has at most 8 real
// channels. y = act(Bp + Wp d (+ z)), act none unless given (conv1x1_small.cc: Relu, Clip with lo <= 0 <= hi, Silu).
KILN_AVX512_FMA inline void project_row(const float* d, int64_t ow, int64_t c, const float* wp, const float* bp,
                                        const float* z, float* y, int64_t pb, int64_t ystride, bool half,
                                        DwAct act = DwAct::kNone, float lo_f = 0.f, float hi_f = 0.f,
                                        bool prefetch = false) {
    const ProjectTable* const(*tables)[2] = act == DwAct::kRelu   ? kProjectTables<DwAct::kRelu>
                                            : act == DwAct::kClip ? kProjectTables<DwAct::kClip>
                                            : act == DwAct::kSilu ? kProjectTables<DwAct::kSilu>
                                                                  : kProjectTables<DwAct::kNone>;
    const __m512 lo = _mm512_set1_ps(lo_f), hi = _mm512_set1_ps(hi_f);
    const int64_t ws = (c + V - 1) / V * V * V;
    for (int64_t b = 0; b < pb;) {
        const int64_t left = pb - b, ob = left == 4 ? 2 : std::min<int64_t>(3, left);
        const ProjectTable& table = *tables[z != nullptr][half && b + ob == pb];
        const float* zb = z ? z + b * ystride : nullptr;
        // ceil(ow / 8) tiles of equal width (+1 for the first few): 49 pixels as 7 x 7, not 6 x 8 + 1 (a lone
        // pixel would run one dependent FMA chain over all of C)
        const int64_t tiles = (ow + 7) / 8, base = ow / tiles, extra = ow % tiles;
        // with `prefetch` (weights that come from L3 or memory: small images, each group's weights used by a few
        // tiles only) the tiles load the next group's weights into L1 as they go, a tile's share each
        const int64_t nb0 = b + ob, nleft = pb - nb0, nob = nleft == 4 ? 2 : std::min<int64_t>(3, nleft);
        const char* next = reinterpret_cast<const char*>(wp + nb0 * ws);
        const int64_t lines = prefetch && nob > 0 ? nob * ws * static_cast<int64_t>(sizeof(float)) / 64 : 0;
        for (int64_t t = 0, p0 = 0; t < tiles; ++t) {
            const int64_t np = base + (t < extra);
            table[np - 1][ob - 1](d, ow, c, wp + b * ws, ws, bp + b * V, zb, y + b * ystride, ystride, p0, lo, hi,
                                  next + lines * t / tiles * 64, next + lines * (t + 1) / tiles * 64);
            p0 += np;
        }
        b += ob;
    }
}

}  // namespace conv1x1

}  // namespace kiln::backends::cpu

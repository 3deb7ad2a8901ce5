// Blocked GEMM in the GotoBLAS shape, kept plain: op(B) is packed into kKc x kNc blocks of kNr-wide column panels,
// op(A) into kMr-row slabs (alpha folded in), and a kMr x kNr register tile accumulates over k (i-k-j order inside
// the tile, so the j loop vectorises).
#include "src/backends/reference/gemm_util.h"

#include <algorithm>
#include <memory>

namespace kiln::backends::reference {
namespace {

constexpr int64_t kMr = 4;    // rows of the register tile
constexpr int64_t kNr = 8;    // columns of the register tile
constexpr int64_t kKc = 256;  // depth of a packed block
constexpr int64_t kNc = 512;  // width of a packed block (kKc x kNc floats = 512 KiB, fits L2)

// acc[kMr][kNr] = sum_p ap[p][r] * bp[p][j]; then C tile (mr x nr valid) += acc.
template <typename T>
void micro_kernel(int64_t kc, const T* __restrict ap, const T* __restrict bp, T* c, int64_t ldc, int64_t mr,
                  int64_t nr) {
    T acc[kMr][kNr] = {};
    for (int64_t p = 0; p < kc; ++p) {
        const T* a = ap + p * kMr;
        const T* b = bp + p * kNr;
        for (int64_t r = 0; r < kMr; ++r)
            for (int64_t j = 0; j < kNr; ++j) acc[r][j] += a[r] * b[j];
    }
    for (int64_t r = 0; r < mr; ++r) {
        T* crow = c + r * ldc;
        for (int64_t j = 0; j < nr; ++j) crow[j] += acc[r][j];
    }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i) {
        T* crow = c + i * ldc;
        if (beta == T(0)) {
            std::fill(crow, crow + n, T(0));
        } else if (beta != T(1)) {
            for (int64_t j = 0; j < n; ++j) crow[j] *= beta;
        }
    }
    if (m == 0 || n == 0 || k == 0 || alpha == T(0)) return;

    auto a_at = [&](int64_t i, int64_t p) { return trans_a ? a[p * lda + i] : a[i * lda + p]; };
    auto b_at = [&](int64_t p, int64_t j) { return trans_b ? b[j * ldb + p] : b[p * ldb + j]; };

    if (m <= 2 && !trans_b) {
        // Matrix-vector-like: packing would cost as much as the product; stream B rows directly (i-k-j).
        for (int64_t i = 0; i < m; ++i) {
            T* __restrict crow = c + i * ldc;
            for (int64_t p = 0; p < k; ++p) {
                T av = alpha * a_at(i, p);
                const T* __restrict brow = b + p * ldb;
                for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
            }
        }
        return;
    }

    // Packing buffers, left uninitialised (every element used is written first).
    std::unique_ptr<T[]> bpack(new T[static_cast<size_t>(kKc * ((std::min(n, kNc) + kNr - 1) / kNr * kNr))]);
    std::unique_ptr<T[]> apack(new T[static_cast<size_t>(kKc * kMr)]);
    for (int64_t j0 = 0; j0 < n; j0 += kNc) {
        int64_t nc = std::min(kNc, n - j0);
        int64_t panels = (nc + kNr - 1) / kNr;
        for (int64_t p0 = 0; p0 < k; p0 += kKc) {
            int64_t kc = std::min(kKc, k - p0);
            // Pack op(B)[p0:p0+kc, j0:j0+nc] as `panels` column panels, each kc x kNr (zero-padded).
            for (int64_t jp = 0; jp < panels; ++jp) {
                T* dst = bpack.get() + jp * kc * kNr;
                int64_t jn = std::min(kNr, nc - jp * kNr);
                for (int64_t p = 0; p < kc; ++p) {
                    if (!trans_b && jn == kNr) {
                        std::copy_n(b + (p0 + p) * ldb + j0 + jp * kNr, kNr, dst + p * kNr);
                        continue;
                    }
                    for (int64_t j = 0; j < kNr; ++j)
                        dst[p * kNr + j] = j < jn ? b_at(p0 + p, j0 + jp * kNr + j) : T(0);
                }
            }
            for (int64_t i0 = 0; i0 < m; i0 += kMr) {
                int64_t mr = std::min(kMr, m - i0);
                // Pack alpha * op(A)[i0:i0+mr, p0:p0+kc] as kc x kMr (zero-padded).
                for (int64_t p = 0; p < kc; ++p)
                    for (int64_t r = 0; r < kMr; ++r) apack[p * kMr + r] = r < mr ? alpha * a_at(i0 + r, p0 + p) : T(0);
                for (int64_t jp = 0; jp < panels; ++jp) {
                    int64_t jn = std::min(kNr, nc - jp * kNr);
                    micro_kernel<T>(kc, apack.get(), bpack.get() + jp * kc * kNr, c + i0 * ldc + j0 + jp * kNr, ldc, mr,
                                    jn);
                }
            }
        }
    }
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void gemm<int32_t>(bool, bool, int64_t, int64_t, int64_t, int32_t, const int32_t*, int64_t, const int32_t*,
                            int64_t, int32_t, int32_t*, int64_t);
template void gemm<int64_t>(bool, bool, int64_t, int64_t, int64_t, int64_t, const int64_t*, int64_t, const int64_t*,
                            int64_t, int64_t, int64_t*, int64_t);

}  // namespace kiln::backends::reference

#pragma once
// y = bias + x B for a constant B and a few rows of x, AVX-512 (matmul_gemv.cc): B packed once into panels of 16
// columns, [N / 16][K][16], so a call streams contiguous panels and reads each once for all rows of x. Used by the
// matmul gemv kernel (a CNN's classifier). (The squeeze-excite 1x1 convolutions of a 1x1 image, conv_matvec.cc, took
// as long with it as with their row dot products, 0.089 vs 0.093 ms for EfficientNet-B0's 16 excitations: bound
// by reading their weights, so they keep the simpler code.)
//
// Example usage:
//   PackedGemv g(w, /*k=*/1280, /*n=*/1000, /*b_is_nk=*/true, bias);  // w [1000][1280] as a Gemm with transB
//   g.run(x, /*m=*/1, y, 0, g.groups());                               // y[0, :1000]
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace kiln::backends::cpu {

class PackedGemv {
public:
    /// b: [k][n] row-major, or [n][k] when b_is_nk (a Gemm's transB, a 1x1 convolution's weights); bias: n floats
    /// or nullptr.
    PackedGemv(const float* b, int64_t k, int64_t n, bool b_is_nk, const float* bias);
    int64_t k() const { return k_; }
    int64_t n() const { return n_; }
    /// Column groups (4 panels of 16 columns each, the last one partial): the unit to split over threads.
    int64_t groups() const { return (panels_ + kGroup - 1) / kGroup; }
    /// y[r, c] = bias[c] + sum_i x[r, i] B[i, c] for rows [0, m) and the columns of groups [g0, g1); x is [m][k],
    /// y is [m][n] (row stride n).
    void run(const float* x, int64_t m, float* y, int64_t g0, int64_t g1) const;
    /// The columns [c0, c1) that groups [g0, g1) cover.
    int64_t first_column(int64_t g) const { return g * kGroup * 16 < n_ ? g * kGroup * 16 : n_; }

    static constexpr int64_t kGroup = 4;

private:
    int64_t k_ = 0, n_ = 0, panels_ = 0;
    std::unique_ptr<float[], void (*)(void*)> w_{nullptr, std::free}, bias_{nullptr, std::free};
};

}  // namespace kiln::backends::cpu

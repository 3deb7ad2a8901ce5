#pragma once
// A small, cache-friendly GEMM used by the reference Gemm/MatMul/Einsum/Conv/ConvTranspose kernels.
#include <cstdint>

namespace kiln::backends::reference {

/// C[M x N] = alpha * op(A) * op(B) + beta * C, all row-major with row strides lda/ldb/ldc.
/// op(A) is A (M x K) or, when trans_a, A^T with A stored K x M; likewise op(B) is K x N.
/// beta == 0 overwrites C (NaNs already in C are not propagated), as in BLAS.
/// Instantiated for float, double, int32_t and int64_t.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
          int64_t ldb, T beta, T* c, int64_t ldc);

inline void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    gemm<float>(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace kiln::backends::reference

#pragma once
// Deterministic float32 test data in [-0.5, 0.5) from a small LCG (shared by the cpu backend tests).
#include "kiln/tensor.h"

namespace kiln::test_util {

inline Tensor random_tensor(Shape shape, uint32_t seed) {
    Tensor t(DataType::kFloat32, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) {
        seed = seed * 1664525u + 1013904223u;
        t.data<float>()[i] = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) - 0.5f;
    }
    return t;
}

}  // namespace kiln::test_util

#pragma once
// Shared by the cpu backend tests: deterministic float32 test data in [-0.5, 0.5) from a small LCG, and a build of a
// network on one backend with the default config.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>

#include "kiln/builder.h"
#include "kiln/logger.h"
#include "kiln/network.h"
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

inline std::shared_ptr<Engine> build(const NetworkDefinition& net, const std::string& backend) {
    StderrLogger logger(Severity::kWarning);
    BuilderConfig config;
    config.backend = backend;
    return Builder(logger).build(net, config);
}

/// Runs `cpu` (1 and 2 threads) and `ref` on two seeded random inputs "x" of `shape`; every output element finite
/// and within 1e-5 of the reference's scale.
inline void expect_matches_reference(Engine& cpu, Engine& ref, const Shape& shape) {
    for (int threads : {1, 2}) {
        auto ctx = cpu.create_context();
        ctx->set_num_threads(threads);
        auto ref_ctx = ref.create_context();
        for (uint32_t seed : {21u, 22u}) {
            Tensor x = random_tensor(shape, seed);
            Tensor y = ctx->run({{"x", x}}).begin()->second;
            Tensor e = ref_ctx->run({{"x", x}}).begin()->second;
            ASSERT_EQ(y.shape(), e.shape());
            float max_err = 0.f, scale = 0.f;
            for (int64_t i = 0; i < y.numel(); ++i) {
                ASSERT_TRUE(std::isfinite(y.data<float>()[i])) << "element " << i;
                max_err = std::max(max_err, std::fabs(y.data<float>()[i] - e.data<float>()[i]));
                scale = std::max(scale, std::fabs(e.data<float>()[i]));
            }
            EXPECT_LT(max_err, 1e-5f * std::max(1.f, scale)) << "threads " << threads;
        }
    }
}

}  // namespace kiln::test_util

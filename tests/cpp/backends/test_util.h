#pragma once
// Shared by the cpu backend tests: deterministic float32 test data in [-0.5, 0.5) from a small LCG, and a build of a
// network on one backend with the default config.
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

}  // namespace kiln::test_util

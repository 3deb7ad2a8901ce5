#pragma once
/// \file builder.h
/// Builder + BuilderConfig: optimise a NetworkDefinition into an Engine (or its serialised plan).
///
/// Example usage:
/// \code
///   kiln::BuilderConfig config;
///   config.opt_level = 3;
///   std::shared_ptr<kiln::Engine> engine = kiln::Builder(logger).build(net, config);
///   engine->save("model.plan");
/// \endcode
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/engine.h"
#include "kiln/logger.h"
#include "kiln/network.h"
#include "kiln/runtime.h"
#include "kiln/tensor.h"

namespace kiln {

struct BuilderConfig {
    int opt_level = 3;                          ///< 0: import only ... 3: every pass
    std::string backend = "cpu";                ///< target backend: "cpu" or "reference"
    std::map<std::string, Shape> input_shapes;  ///< fixes symbolic input dims at build time (optional)
    std::vector<std::string> disabled_passes;   ///< pass names to skip, for debugging
    /// "fp32" or "fp16" (stored in the plan's metadata["precision"]; the CUDA backend then runs matmuls and
    /// convolutions in fp16 with fp32 accumulation, graph inputs and outputs stay fp32)
    std::string precision = "fp32";
};

/// What the optimiser did, for `kiln build --verbose` and `kiln inspect`.
struct BuildReport {
    struct PassStat {
        std::string name;
        int nodes_before = 0, nodes_after = 0;
        double ms = 0;
    };
    std::vector<PassStat> passes;
    int imported_nodes = 0;
    int final_nodes = 0;
    double total_ms = 0;
};

class Builder {
public:
    explicit Builder(Logger& logger) : logger_(logger) {}
    /// Optimises and lowers `network` (which is left unchanged). Throws kiln::Error.
    std::shared_ptr<Engine> build(const NetworkDefinition& network, const BuilderConfig& config,
                                  BuildReport* report = nullptr);
    std::vector<uint8_t> build_serialized(const NetworkDefinition& network, const BuilderConfig& config);

private:
    Logger& logger_;
};



}  // namespace kiln

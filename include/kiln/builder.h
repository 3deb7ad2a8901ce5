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
    /// "fp32", "fp16" (cuda) or "bf16" (cuda; cpu with AVX512-BF16): the precision of matmuls and convolutions,
    /// with fp32 accumulation; normalisation statistics, softmax and reductions stay fp32 inside the kernels and
    /// graph inputs and outputs stay fp32. Stored in the plan's metadata["precision"].
    std::string precision = "fp32";
    /// Allow TF32 tensor cores for fp32 matmuls and convolutions (cuda; metadata["tf32"] = "1").
    bool tf32 = false;
    /// Per-layer precision constraints: layer name (a plan node's name or one of the ONNX nodes fused into it,
    /// see `kiln inspect`) -> "fp32" | "fp16" | "bf16". Stored as metadata["layer_precision"] "name=prec;...".
    std::map<std::string, std::string> layer_precision;
    /// Auto-tuning timing cache (cuda): read when it exists, written back with new measurements. Empty: none.
    std::string timing_cache;
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
    /// Throws the kiln::Error that build() would throw for `config` alone, before any work: an unknown or
    /// unsupported precision for the backend, bf16 on the cpu backend without AVX512-BF16, --tf32 off CUDA ...
    static void check_config(const BuilderConfig& config);

private:
    Logger& logger_;
};



}  // namespace kiln

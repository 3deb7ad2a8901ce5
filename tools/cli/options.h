#pragma once
// Option groups of the `kiln` CLI. Each group registers its flags on a CLI11 (sub)command and, in finish(),
// turns the raw strings into typed values (errors are kiln::Error kInvalidArgument naming the flag).
#include <map>
#include <string>
#include <vector>

#include "kiln/builder.h"

namespace CLI {
class App;
}

namespace kiln::cli {

/// Which model, and how to build it when it is ONNX: --shape, --opt-level, --disable-pass, --backend, --verbose.
struct ModelOptions {
    std::string model;
    std::vector<std::string> shapes;  // name:1x3x224x224
    int opt_level = 3;
    std::vector<std::string> disabled_passes;
    std::string backend = "cpu";
    bool fp16 = false;  // --fp16: BuilderConfig::precision = "fp16"
    bool bf16 = false;  // --bf16
    bool tf32 = false;  // --tf32
    std::vector<std::string> layer_precisions;  // --layer-precision NAME:PREC
    std::string timing_cache;                   // --timing-cache FILE
    bool no_cuda_graph = false;                 // --no-cuda-graph (a context option, not a build option)
    bool verbose = false;

    void add_to(CLI::App& app, bool model_positional = true);
    BuilderConfig finish() const;
};

/// Input data: --input name=file.npy|file.pb (repeatable), --batch N for random inputs, --seed.
struct InputOptions {
    std::vector<std::string> inputs;
    int64_t batch = 1;
    uint64_t seed = 0;

    void add_to(CLI::App& app);
    /// name -> file path.
    std::map<std::string, std::string> files() const;
};

/// Threads per execution context when --threads is not given: the number of physical cores.
int default_threads();

struct BenchOptions {
    int warmup = 5;
    int iterations = 0;       // 0: run for `duration` seconds
    double duration = 3.0;
    int threads = default_threads();
    bool json = false;
    int profile = 0;  // print the N slowest layers of the last run

    void add_to(CLI::App& app);
};

/// Parses "name:1x3x224x224" into (name, shape).
std::pair<std::string, Shape> parse_shape_spec(const std::string& spec);
/// Parses "name=path".
std::pair<std::string, std::string> parse_input_spec(const std::string& spec);

}  // namespace kiln::cli

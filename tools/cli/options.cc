#include "tools/cli/options.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "src/common/check.h"

namespace kiln::cli {

std::pair<std::string, Shape> parse_shape_spec(const std::string& spec) {
    size_t colon = spec.rfind(':');
    KILN_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < spec.size(), kInvalidArgument, "--shape '",
               spec, "': expected NAME:DIMS, e.g. input:1x3x224x224");
    Shape shape;
    std::string dims = spec.substr(colon + 1);
    if (dims == "scalar") return {spec.substr(0, colon), shape};
    size_t pos = 0;
    while (pos <= dims.size()) {
        size_t x = dims.find('x', pos);
        std::string tok = dims.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
        KILN_CHECK(!tok.empty() && tok.find_first_not_of("0123456789") == std::string::npos, kInvalidArgument,
                   "--shape '", spec, "': dimension '", tok, "' is not a non-negative integer");
        shape.push_back(std::stoll(tok));
        if (x == std::string::npos) break;
        pos = x + 1;
    }
    return {spec.substr(0, colon), shape};
}

std::pair<std::string, std::string> parse_input_spec(const std::string& spec) {
    size_t eq = spec.find('=');
    KILN_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(), kInvalidArgument, "--input '", spec,
               "': expected NAME=FILE (FILE a .npy or ONNX TensorProto .pb)");
    return {spec.substr(0, eq), spec.substr(eq + 1)};
}

void ModelOptions::add_to(CLI::App& app, bool model_positional) {
    if (model_positional) app.add_option("model", model, "ONNX model (.onnx) or kiln plan (.plan)")->required();
    app.add_option("--shape", shapes, "Fix an input's shape at build time: NAME:DIMS, e.g. input:1x3x224x224");
    app.add_option("--opt-level,-O", opt_level, "Optimisation level 0 (import only) to 3 (all passes)")
        ->check(CLI::Range(0, 3));
    app.add_option("--disable-pass", disabled_passes, "Skip an optimisation pass (repeatable; for debugging)");
    app.add_option("--backend", backend, "Target backend: cpu, reference or cuda")
        ->check(CLI::IsMember({"cpu", "reference", "cuda"}));
    auto* f16 = app.add_flag("--fp16", fp16, "Run matmuls and convolutions in fp16 with fp32 accumulation (cuda)");
    app.add_flag("--bf16", bf16, "Run matmuls and convolutions in bf16 with fp32 accumulation (cuda; cpu with "
                                 "AVX512-BF16)")->excludes(f16);
    app.add_flag("--tf32", tf32, "Allow TF32 tensor cores for fp32 matmuls and convolutions (cuda)");
    app.add_option("--layer-precision", layer_precisions,
                   "Pin a layer's precision: NAME:fp32|fp16|bf16 (repeatable; NAME as `kiln inspect` shows it, or "
                   "an ONNX node fused into it)");
    app.add_option("--timing-cache", timing_cache,
                   "Auto-tuning timing cache file (cuda): read if present, updated with new measurements");
    app.add_flag("--no-cuda-graph", no_cuda_graph, "Launch kernels one by one instead of replaying a CUDA graph");
    app.add_flag("--verbose,-v", verbose, "Log every step");
}

BuilderConfig ModelOptions::finish() const {
    BuilderConfig c;
    c.opt_level = opt_level;
    c.backend = backend;
    c.precision = fp16 ? "fp16" : bf16 ? "bf16" : "fp32";
    c.tf32 = tf32;
    c.timing_cache = timing_cache;
    for (const std::string& s : layer_precisions) {
        size_t colon = s.rfind(':');
        KILN_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < s.size(), kInvalidArgument,
                   "--layer-precision '", s, "': expected NAME:PRECISION, e.g. /fc/Gemm:fp32");
        c.layer_precision[s.substr(0, colon)] = s.substr(colon + 1);
    }
    c.disabled_passes = disabled_passes;
    for (const std::string& s : shapes) {
        auto [name, shape] = parse_shape_spec(s);
        c.input_shapes[name] = shape;
    }
    return c;
}

void InputOptions::add_to(CLI::App& app) {
    app.add_option("--input,-i", inputs, "Input data NAME=FILE (.npy or ONNX TensorProto .pb); repeatable");
    app.add_option("--batch", batch, "Batch size used for random inputs' symbolic first dimension")
        ->check(CLI::PositiveNumber);
    app.add_option("--seed", seed, "Seed for random inputs");
}

std::map<std::string, std::string> InputOptions::files() const {
    std::map<std::string, std::string> out;
    for (const std::string& s : inputs) {
        auto [name, path] = parse_input_spec(s);
        KILN_CHECK(!out.count(name), kInvalidArgument, "--input '", name, "' is given more than once");
        out[name] = path;
    }
    return out;
}

int default_threads() {
    // physical cores = logical CPUs / (siblings per package / cores per package), from /proc/cpuinfo
    static const int kThreads = [] {
        int logical = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        std::ifstream f("/proc/cpuinfo");
        std::string line;
        int siblings = 0, cores = 0;
        while (std::getline(f, line) && (!siblings || !cores)) {
            auto value = [&] { return std::atoi(line.c_str() + line.find(':') + 1); };
            if (line.rfind("siblings", 0) == 0) siblings = value();
            if (line.rfind("cpu cores", 0) == 0) cores = value();
        }
        int smt = siblings > 0 && cores > 0 && siblings >= cores ? siblings / cores : 1;
        return std::max(1, logical / std::max(1, smt));
    }();
    return kThreads;
}

void BenchOptions::add_to(CLI::App& app) {
    app.add_option("--warmup", warmup, "Warm-up runs")->check(CLI::NonNegativeNumber);
    app.add_option("--iterations,-n", iterations, "Timed runs (default: run for --duration seconds)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--duration", duration, "Seconds to run when --iterations is not given")
        ->check(CLI::PositiveNumber);
    app.add_option("--threads", threads, "Threads per execution context (default: physical cores)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--json", json, "Print one JSON object instead of a table");
    app.add_option("--profile", profile,
                   "Also print the N slowest layers (per-layer medians of 21 profiled runs, to stderr)")
        ->check(CLI::NonNegativeNumber);
}

}  // namespace kiln::cli

#include "tools/cli/session.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "src/common/check.h"
#include "tools/cli/npy.h"

#ifndef KILN_SOURCE_DIR
#define KILN_SOURCE_DIR "."
#endif

namespace kiln::cli {

bool is_plan_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    char magic[8] = {};
    f.read(magic, 8);
    return f.gcount() == 8 && std::memcmp(magic, "KILNPLAN", 8) == 0;
}

std::shared_ptr<Engine> load_engine(const ModelOptions& opts, Logger& logger, BuildReport* report) {
    std::error_code ec;
    KILN_CHECK(std::filesystem::exists(opts.model, ec), kIoError, "cannot open model file '", opts.model,
               "': no such file or directory");
    if (is_plan_file(opts.model)) return Runtime(logger).load(opts.model);
    NetworkDefinition net;
    OnnxParser(net, logger).parse_file(opts.model);
    return Builder(logger).build(net, opts.finish(), report);
}

Tensor random_tensor(const std::string& name, DataType dtype, const Shape& shape, uint64_t seed) {
    Tensor t(dtype, shape);
    std::mt19937_64 rng(seed);
    bool is_mask = name.find("mask") != std::string::npos;
    int64_t n = t.numel();
    switch (dtype) {
        case DataType::kFloat32: {
            std::uniform_real_distribution<float> d(-1.f, 1.f);
            for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = d(rng);
            break;
        }
        case DataType::kFloat64: {
            std::uniform_real_distribution<double> d(-1.0, 1.0);
            for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = d(rng);
            break;
        }
        case DataType::kFloat16:
        case DataType::kBFloat16: {
            std::uniform_real_distribution<float> d(-1.f, 1.f);
            for (int64_t i = 0; i < n; ++i)
                t.data<uint16_t>()[i] = dtype == DataType::kFloat16 ? float_to_half(d(rng)) : float_to_bf16(d(rng));
            break;
        }
        default: {
            std::uniform_int_distribution<int64_t> d(0, is_mask || dtype == DataType::kBool ? 1 : 9);
            for (int64_t i = 0; i < n; ++i) {
                int64_t v = d(rng);
                switch (dtype) {
                    case DataType::kInt64: t.data<int64_t>()[i] = v; break;
                    case DataType::kInt32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
                    case DataType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
                    default: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
                }
            }
        }
    }
    return t;
}

std::map<std::string, Tensor> prepare_inputs(const Engine& engine, const InputOptions& opts) {
    std::map<std::string, Tensor> out;
    std::map<std::string, std::string> files = opts.files();
    std::map<std::string, int64_t> symbols;
    for (const TensorDesc& d : engine.inputs()) {
        auto it = files.find(d.name);
        if (it == files.end()) continue;
        Tensor t = read_tensor_file(it->second);
        for (size_t i = 0; i < d.dims.size() && i < t.shape().size(); ++i)
            if (!d.dims[i].is_static() && !d.dims[i].symbol.empty()) symbols.emplace(d.dims[i].symbol, t.dim(i));
        out[d.name] = std::move(t);
        files.erase(it);
    }
    if (!files.empty()) {
        std::vector<std::string> names;
        for (auto& d : engine.inputs()) names.push_back(d.name);
        KILN_FAIL(kInvalidArgument, "--input '", files.begin()->first, "' is not an input of the model; inputs are: ",
                  join(names, ", "));
    }
    uint64_t seed = opts.seed;
    for (const TensorDesc& d : engine.inputs()) {
        ++seed;
        if (out.count(d.name)) continue;
        Shape shape;
        for (size_t i = 0; i < d.dims.size(); ++i) {
            const Dim& dim = d.dims[i];
            if (dim.is_static()) {
                shape.push_back(dim.value);
            } else if (!dim.symbol.empty() && symbols.count(dim.symbol)) {
                shape.push_back(symbols[dim.symbol]);
            } else {
                int64_t v = i == 0 ? opts.batch : 1;
                if (!dim.symbol.empty()) symbols[dim.symbol] = v;
                shape.push_back(v);
            }
        }
        out[d.name] = random_tensor(d.name, d.dtype, shape, seed);
    }
    return out;
}

std::string source_dir() {
    if (const char* s = std::getenv("KILN_SOURCE_DIR")) return s;
    return KILN_SOURCE_DIR;
}

std::string python_exe() {
    if (const char* p = std::getenv("KILN_PYTHON")) return p;
    std::string venv = source_dir() + "/.venv/bin/python";
    if (std::filesystem::exists(venv)) return venv;
    return "python3";
}

}  // namespace kiln::cli

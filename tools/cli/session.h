#pragma once
// What several commands share: loading a model (ONNX is built on the fly, a plan is deserialised) and preparing
// inputs (from files, or random with a fixed seed).
#include <map>
#include <memory>
#include <string>

#include "kiln/kiln.h"
#include "tools/cli/options.h"

namespace kiln::cli {

bool is_plan_file(const std::string& path);
std::shared_ptr<Engine> load_engine(const ModelOptions& opts, Logger& logger, BuildReport* report = nullptr);
/// Inputs for `engine`: files where given, random data elsewhere. Symbolic dims take `batch` for the first dim
/// (and 1 elsewhere) unless a file fixes them.
std::map<std::string, Tensor> prepare_inputs(const Engine& engine, const InputOptions& opts);
/// Random tensor: floats uniform in [-1, 1); ints in [0, 2) for names containing "mask", [0, 10) otherwise.
Tensor random_tensor(const std::string& name, DataType dtype, const Shape& shape, uint64_t seed);
/// Path of the Python interpreter with onnxruntime (KILN_PYTHON, the project venv, or python3).
std::string python_exe();
/// Directory of kiln's source tree (for tools/ scripts).
std::string source_dir();

}  // namespace kiln::cli

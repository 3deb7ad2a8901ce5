#pragma once
// Shared declarations of the kiln._kiln module: each bind_* function adds one group of classes.
#include <nanobind/nanobind.h>

#include <cstdint>
#include <string>

#include "kiln/kiln.h"

namespace kiln::python {

namespace nb = nanobind;

/// Precision flags of the Python BuilderConfig (TensorRT's BuilderFlag). kiln's CPU backend runs fp32, and bf16 on
/// CPUs with AVX512-BF16.
enum class BuilderFlag : uint32_t { kFP16 = 1, kBF16 = 2, kINT8 = 4 };

/// kiln::BuilderConfig plus what the Python API adds on top: precision flags and a memory limit.
struct PyBuilderConfig {
    BuilderConfig base;
    uint32_t flags = 0;
    uint64_t memory_limit = 0;  ///< activation bytes per execution context; 0 = no limit
};

/// Checks the device and precision flags of `config` before a build (kUnsupported with a clear message).
void check_build_config(const PyBuilderConfig& config);
/// The kiln::BuilderConfig a build uses: the base config with the precision the flags ask for.
BuilderConfig effective_config(const PyBuilderConfig& config);
/// Checks the built engine against the config's memory limit (kOutOfMemory).
void check_memory_limit(const Engine& engine, const PyBuilderConfig& config);
/// Parses a dtype given as kiln.DataType, str ("float32", "fp16") or numpy dtype / scalar type.
DataType dtype_from_py(nb::handle h);

void bind_network(nb::module_& m);  // NetworkDefinition, OnnxParser, BuilderConfig, BuildReport, Builder

}  // namespace kiln::python

// kiln._kiln: NetworkDefinition, OnnxParser, BuilderConfig, BuildReport and Builder (the build side of the API).
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "bindings.h"
#include "tensor_convert.h"

namespace kiln::python {

using namespace nb::literals;

void check_build_config(const PyBuilderConfig& config) {
    const std::string& backend = config.base.backend;
    bool cuda = backend == "cuda" || backend == "gpu";
    if (cuda && !KILN_PY_HAS_CUDA)
        throw Error(ErrorCode::kUnsupported,
                    "device 'cuda': the CUDA backend is not available in this build of kiln (it was built without "
                    "the CUDA toolkit; kiln.build_info()['cuda'] is False). Build with device='cpu'.");
    const char* names[] = {"fp16", "bf16", "int8"};
    for (int i = 0; i < 3; ++i) {
        if (!(config.flags & (1u << i))) continue;
        if (cuda && i < 2) continue;  // the CUDA backend runs fp16 and bf16
        if (backend == "cpu" && i == 1) continue;  // bf16 on CPUs with AVX512-BF16: checked below
        std::string msg = std::string("precision ") + names[i] + " is not supported by the '" + backend +
                          "' backend: it runs fp32 only";
        msg += i == 0   ? " (FP16 kernels come with the CUDA backend; the cpu backend runs BF16)"
               : i == 1 ? " (BF16 runs on the cpu backend, on CPUs with AVX512-BF16)"
                        : " (INT8 needs calibration, not there yet)";
        throw Error(ErrorCode::kUnsupported, msg + ". Use precision='fp32'.");
    }
    if (!cuda) Builder::check_config(effective_config(config));  // e.g. bf16 on a CPU without AVX512-BF16
}

BuilderConfig effective_config(const PyBuilderConfig& config) {
    BuilderConfig base = config.base;
    if (config.flags & static_cast<uint32_t>(BuilderFlag::kFP16))
        base.precision = "fp16";
    else if (config.flags & static_cast<uint32_t>(BuilderFlag::kBF16))
        base.precision = "bf16";
    return base;
}

void check_memory_limit(const Engine& engine, const PyBuilderConfig& config) {
    if (config.memory_limit == 0) return;
    MemoryInfo mem = engine.memory();
    if (mem.planned && mem.arena_bytes > config.memory_limit)
        throw Error(ErrorCode::kOutOfMemory,
                    "the engine needs " + std::to_string(mem.arena_bytes) +
                        " bytes of activation memory per execution context, more than the memory limit of " +
                        std::to_string(config.memory_limit) +
                        " bytes: raise BuilderConfig.memory_limit or fix smaller input shapes");
}

DataType dtype_from_py(nb::handle h) {
    if (nb::isinstance<DataType>(h)) return nb::cast<DataType>(h);
    if (nb::isinstance<nb::str>(h)) return parse_dtype(nb::cast<std::string>(h));
    nb::object name;
    try {
        name = nb::module_::import_("numpy").attr("dtype")(h).attr("name");
    } catch (const nb::python_error&) {
        throw Error(ErrorCode::kInvalidArgument,
                    "not a data type: " + nb::cast<std::string>(nb::repr(h)) +
                        " (use kiln.DataType, a name such as 'float32', or a numpy dtype)");
    }
    return parse_dtype(nb::cast<std::string>(name));
}

namespace {

std::shared_ptr<Engine> build_engine(Builder& builder, const NetworkDefinition& network,
                                     const PyBuilderConfig& config, BuildReport* report) {
    check_build_config(config);
    BuilderConfig base = effective_config(config);
    std::shared_ptr<Engine> engine;
    {
        nb::gil_scoped_release release;
        engine = builder.build(network, base, report);
    }
    check_memory_limit(*engine, config);
    return engine;
}

void bind_config(nb::module_& m) {
    nb::enum_<BuilderFlag>(m, "BuilderFlag", nb::is_flag(), "Precision flags of BuilderConfig (as in TensorRT).")
        .value("FP16", BuilderFlag::kFP16, "float16 matmuls and convolutions (CUDA backend)")
        .value("BF16", BuilderFlag::kBF16, "bfloat16 matmuls and convolutions (CUDA; cpu backend with AVX512-BF16)")
        .value("INT8", BuilderFlag::kINT8, "allow int8 kernels (needs calibration, not yet supported)");

    nb::class_<PyBuilderConfig>(m, "BuilderConfig",
                                "How to build an engine: optimisation level, backend, precision flags, memory limit,\n"
                                "fixed input shapes and passes to skip.")
        .def(nb::init<>())
        .def_prop_rw(
            "opt_level", [](const PyBuilderConfig& c) { return c.base.opt_level; },
            [](PyBuilderConfig& c, int v) { c.base.opt_level = v; },
            "Optimisation level: 0 imports only ... 3 runs every pass (default 3).")
        .def_prop_rw(
            "backend", [](const PyBuilderConfig& c) { return c.base.backend; },
            [](PyBuilderConfig& c, const std::string& v) { c.base.backend = v; },
            "Target backend: 'cpu' (default), 'reference' or 'cuda' (when kiln is built with CUDA).")
        .def_prop_rw(
            "input_shapes", [](const PyBuilderConfig& c) { return c.base.input_shapes; },
            [](PyBuilderConfig& c, nb::dict shapes) {
                std::map<std::string, Shape> out;
                for (auto [k, v] : shapes) {
                    std::string name = nb::cast<std::string>(k);
                    out[name] = shape_from_py(v, "input_shapes['" + name + "']");
                }
                c.base.input_shapes = std::move(out);
            },
            "Fixes symbolic input dims at build time: {'input': (1, 3, 224, 224)}.")
        .def_prop_rw(
            "disabled_passes", [](const PyBuilderConfig& c) { return c.base.disabled_passes; },
            [](PyBuilderConfig& c, std::vector<std::string> v) { c.base.disabled_passes = std::move(v); },
            "Names of optimiser passes to skip, for debugging.")
        .def_prop_rw(
            "tf32", [](const PyBuilderConfig& c) { return c.base.tf32; },
            [](PyBuilderConfig& c, bool v) { c.base.tf32 = v; },
            "Allow TF32 tensor cores for fp32 matmuls and convolutions (CUDA backend).")
        .def_prop_rw(
            "timing_cache", [](const PyBuilderConfig& c) { return c.base.timing_cache; },
            [](PyBuilderConfig& c, const std::string& v) { c.base.timing_cache = v; },
            "Auto-tuning timing cache file (CUDA backend): read when present, rewritten with new measurements.")
        .def_prop_rw(
            "layer_precision", [](const PyBuilderConfig& c) { return c.base.layer_precision; },
            [](PyBuilderConfig& c, std::map<std::string, std::string> v) { c.base.layer_precision = std::move(v); },
            "Per-layer precision constraints: {layer name: 'fp32' | 'fp16' | 'bf16'} (see Engine.layers()).")
        .def_rw("memory_limit", &PyBuilderConfig::memory_limit,
                "Maximum activation memory per execution context in bytes (0: no limit). A build whose memory\n"
                "plan needs more raises OutOfMemoryError.")
        .def(
            "set_flag", [](PyBuilderConfig& c, BuilderFlag f) { c.flags |= static_cast<uint32_t>(f); },
            "flag"_a, "Allows a precision; FP16/INT8 raise UnsupportedError on the CPU, BF16 needs AVX512-BF16.")
        .def(
            "clear_flag", [](PyBuilderConfig& c, BuilderFlag f) { c.flags &= ~static_cast<uint32_t>(f); }, "flag"_a)
        .def(
            "get_flag",
            [](const PyBuilderConfig& c, BuilderFlag f) { return (c.flags & static_cast<uint32_t>(f)) != 0; },
            "flag"_a)
        .def("validate", &check_build_config,
             "Raises UnsupportedError now for what the build would refuse (CUDA device, fp16/int8 flags, bf16\n"
             "on a CPU without AVX512-BF16).")
        .def("__repr__", [](const PyBuilderConfig& c) {
            return "BuilderConfig(opt_level=" + std::to_string(c.base.opt_level) + ", backend='" + c.base.backend +
                   "', flags=" + std::to_string(c.flags) + ", memory_limit=" + std::to_string(c.memory_limit) + ")";
        });

    nb::class_<BuildReport::PassStat>(m, "PassStat", "One optimiser pass: node counts before/after and time.")
        .def_ro("name", &BuildReport::PassStat::name)
        .def_ro("nodes_before", &BuildReport::PassStat::nodes_before)
        .def_ro("nodes_after", &BuildReport::PassStat::nodes_after)
        .def_ro("ms", &BuildReport::PassStat::ms)
        .def("__repr__", [](const BuildReport::PassStat& p) {
            return "PassStat('" + p.name + "', " + std::to_string(p.nodes_before) + " -> " +
                   std::to_string(p.nodes_after) + " nodes)";
        });
    nb::class_<BuildReport>(m, "BuildReport", "What the optimiser did: per-pass statistics and node counts.")
        .def(nb::init<>())
        .def_ro("passes", &BuildReport::passes)
        .def_ro("imported_nodes", &BuildReport::imported_nodes)
        .def_ro("final_nodes", &BuildReport::final_nodes)
        .def_ro("total_ms", &BuildReport::total_ms);
}

}  // namespace

void bind_network(nb::module_& m) {
    nb::class_<NetworkDefinition>(m, "NetworkDefinition",
                                  "A model built in code (or filled by OnnxParser), handed to Builder.build.\n\n"
                                  "Example::\n\n"
                                  "    net = kiln.NetworkDefinition()\n"
                                  "    x = net.add_input('x', 'float32', ('batch', 4))\n"
                                  "    w = net.add_constant('w', np.ones((4, 8), np.float32))\n"
                                  "    y = net.add_layer('MatMul', [x, w])[0]\n"
                                  "    net.mark_output(net.add_layer('Relu', [y])[0])\n")
        .def(nb::init<>())
        .def(
            "add_input",
            [](NetworkDefinition& n, const std::string& name, nb::handle dtype, nb::handle shape) {
                return n.add_input(name, dtype_from_py(dtype), sym_shape_from_py(shape, "input '" + name + "'"));
            },
            "name"_a, "dtype"_a, "shape"_a,
            "Declares a graph input. `shape` holds ints, strs (named symbolic dims) or None. Returns its name.")
        .def(
            "add_constant",
            [](NetworkDefinition& n, const std::string& name, nb::handle value) {
                std::string what = "constant '" + name + "'";
                return n.add_constant(name, array_to_tensor(to_host_array(value, what), what).clone());
            },
            "name"_a, "value"_a,
            "Adds a constant (weights), copied from a numpy array or DLPack tensor. Returns its name.")
        .def(
            "add_layer",
            [](NetworkDefinition& n, const std::string& op_type, const std::vector<std::string>& inputs,
               nb::handle attrs, int num_outputs, const std::string& name) {
                return n.add_layer(op_type, inputs, attributes_from_py(attrs), num_outputs, name);
            },
            "op_type"_a, "inputs"_a, "attrs"_a = nb::none(), "num_outputs"_a = 1, "name"_a = "",
            "Adds a layer of ONNX op type `op_type` ('' in `inputs` skips an optional input); `attrs` maps names\n"
            "to int, float, str, lists of those or numpy arrays. Returns the output names.")
        .def("mark_output", &NetworkDefinition::mark_output, "name"_a, "Marks a tensor as a network output.")
        .def_prop_ro("num_layers", &NetworkDefinition::num_layers)
        .def_prop_ro("input_names", &NetworkDefinition::input_names)
        .def_prop_ro("output_names", &NetworkDefinition::output_names)
        .def("to_text", &NetworkDefinition::to_text, "Textual listing of the network, one layer per line.")
        .def("__str__", &NetworkDefinition::to_text)
        .def("__repr__", [](const NetworkDefinition& n) {
            return "<kiln.NetworkDefinition with " + std::to_string(n.num_layers()) + " layers>";
        });

    nb::class_<OnnxParser>(m, "OnnxParser", "Imports an ONNX model (file or bytes) into a NetworkDefinition.")
        .def(nb::init<NetworkDefinition&, Logger&>(), "network"_a, "logger"_a, nb::keep_alive<1, 2>(),
             nb::keep_alive<1, 3>())
        .def(
            "parse_file",
            [](OnnxParser& p, const std::filesystem::path& path) {
                nb::gil_scoped_release release;
                p.parse_file(path.string());
            },
            "path"_a,
            "Parses an .onnx file. Raises FileError (missing file), InvalidModelError (malformed model) or\n"
            "UnsupportedError (lists every node kiln cannot run, with op type and domain).")
        .def(
            "parse_bytes",
            [](OnnxParser& p, nb::bytes data, const std::string& source, const std::string& model_dir) {
                std::string copy(data.c_str(), data.size());
                nb::gil_scoped_release release;
                p.parse_bytes(copy.data(), copy.size(), source, model_dir);
            },
            "data"_a, "source"_a = "<bytes>", "model_dir"_a = ".",
            "Parses a serialised ONNX model; `source` names it in errors, `model_dir` resolves external data.");

    bind_config(m);

    nb::class_<Builder>(m, "Builder", "Optimises a NetworkDefinition into an Engine.")
        .def(nb::init<Logger&>(), "logger"_a, nb::keep_alive<1, 2>())
        .def(
            "build",
            [](Builder& b, const NetworkDefinition& n, const PyBuilderConfig& c, BuildReport* report) {
                return build_engine(b, n, c, report);
            },
            "network"_a, "config"_a, "report"_a = nb::none(), nb::keep_alive<0, 1>(),
            "Builds an Engine (the network is left unchanged); fills `report` (a BuildReport) when given.\n"
            "The GIL is released while kiln works; a Python Logger is called back with the GIL held.")
        .def(
            "build_serialized",
            [](Builder& b, const NetworkDefinition& n, const PyBuilderConfig& c) {
                std::vector<uint8_t> bytes = build_engine(b, n, c, nullptr)->serialize();
                return nb::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            },
            "network"_a, "config"_a, "Builds and returns the serialised plan (bytes) for Runtime.deserialize.");
}

}  // namespace kiln::python

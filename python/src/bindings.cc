// kiln._kiln: the nanobind module over kiln's public C++ API (include "kiln/kiln.h" only). The high-level Python API
// (kiln.build, kiln.load, kiln.Engine) lives in python/kiln/__init__.py on top of it.
//
// Errors: every kiln::Error becomes the kiln._errors class for its ErrorCode (KilnError and subclasses), with the
// C++ message. The GIL is released while kiln parses, builds and runs; a Python Logger is called back with it held,
// so Ctrl-C (KeyboardInterrupt) raised in a logger callback stops a build between optimiser passes.
#include <nanobind/nanobind.h>
#include <nanobind/stl/filesystem.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>
#include <nanobind/trampoline.h>

#include <cstring>

#include "bindings.h"
#include "tensor_convert.h"

namespace kiln::python {

using namespace nb::literals;

namespace {

const char* code_enum_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument: return "kInvalidArgument";
        case ErrorCode::kIoError: return "kIoError";
        case ErrorCode::kInvalidModel: return "kInvalidModel";
        case ErrorCode::kInvalidPlan: return "kInvalidPlan";
        case ErrorCode::kVersionMismatch: return "kVersionMismatch";
        case ErrorCode::kUnsupported: return "kUnsupported";
        case ErrorCode::kOutOfMemory: return "kOutOfMemory";
        case ErrorCode::kInternal: return "kInternal";
    }
    return "kInternal";
}

// Sets the Python error for a kiln::Error: kiln._errors.error_class(code)(message).
void raise_kiln_error(const Error& e) {
    try {
        nb::object cls = nb::module_::import_("kiln._errors").attr("error_class")(code_enum_name(e.code()));
        nb::object exc = cls(e.what());
        PyErr_SetObject(cls.ptr(), exc.ptr());
    } catch (nb::python_error& pe) {
        pe.restore();
    }
}

/// Lets Python subclass kiln.Logger (TensorRT's ILogger): `def log(self, severity, message)`.
class PyLogger : public Logger {
public:
    NB_TRAMPOLINE(Logger, 1);
    void log(Severity severity, const std::string& message) override {
        call_python(severity, message);
        // A Ctrl-C that arrived during the call raises KeyboardInterrupt here, at once: CPython would otherwise run
        // its handler only at the next check of the interpreter loop, which may come after the build returns.
        nb::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) throw nb::python_error();
    }

private:
    void call_python(Severity severity, const std::string& message) {
        NB_OVERRIDE_PURE_NAME("log", log, severity, message);
    }
};

/// An ExecutionContext with the Engine it runs (for input dtypes) and its thread count.
struct PyContext {
    std::shared_ptr<const Engine> engine;
    std::unique_ptr<ExecutionContext> ctx;
    int num_threads = 1;
    // GPU engines: output buffers handed to Python as device arrays. A buffer Python has released (only the pool
    // holds it) is reused, so repeated runs keep their addresses and replay the context's CUDA graph.
    std::map<std::string, std::shared_ptr<DeviceBuffer>> out_pool;
};

std::string feed_name(nb::handle k) {
    if (!nb::isinstance<nb::str>(k))
        throw Error(ErrorCode::kInvalidArgument, "input names must be str, got " + nb::cast<std::string>(nb::repr(k)));
    return nb::cast<std::string>(k);
}

// GPU engine with device inputs or device outputs: inputs stay where they are (CUDA arrays are read in place,
// host arrays are uploaded), outputs are written into device buffers by enqueue(); output='cuda' hands those
// buffers to Python as DLPack device arrays (no copy), otherwise they are copied to numpy.
nb::dict run_on_device(PyContext& c, nb::dict feeds, const std::string& output) {
    std::vector<AnyArray> keep;
    std::vector<DeviceBuffer> uploads;
    uploads.reserve(feeds.size());
    for (auto [k, v] : feeds) {
        std::string name = feed_name(k), what = "input '" + name + "'";
        AnyArray a;
        if (!nb::try_cast(v, a, true))
            throw Error(ErrorCode::kInvalidArgument, what + ": expected a numpy array or a DLPack tensor, got " +
                                                         nb::cast<std::string>(nb::repr(v.type())));
        Shape shape(a.ndim());
        for (size_t i = 0; i < a.ndim(); ++i) shape[i] = static_cast<int64_t>(a.shape(i));
        const DataType* expected = nullptr;
        for (const TensorDesc& d : c.engine->inputs())
            if (d.name == name) expected = &d.dtype;
        DataType dt = dtype_from_dlpack(a.dtype(), what);
        if (expected && dt != *expected)
            throw Error(ErrorCode::kInvalidArgument, what + " has dtype " + dtype_name(dt) + ", expected " +
                                                         dtype_name(*expected));
        void* ptr = const_cast<void*>(a.data());
        if (a.device_type() == nb::device::cuda::value) {
            if (!is_c_contiguous(a))
                throw Error(ErrorCode::kInvalidArgument, what + " is a non-contiguous CUDA tensor: pass "
                                                                "tensor.contiguous()");
        } else {
            Tensor t = array_to_tensor(a, what, expected);
            uploads.emplace_back(t.bytes());
            uploads.back().upload(t.raw(), t.bytes());
            ptr = uploads.back().data();
        }
        keep.push_back(a);
        c.ctx->set_input_shape(name, shape);
        c.ctx->set_tensor_address(name, ptr);
    }
    std::vector<std::pair<const TensorDesc*, Shape>> outs;
    for (const TensorDesc& d : c.engine->outputs()) {
        Shape shape = c.ctx->output_shape(d.name);
        size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(d.dtype);
        std::shared_ptr<DeviceBuffer>& buf = c.out_pool[d.name];
        if (!buf || buf.use_count() > 1 || buf->bytes() < bytes) buf = std::make_shared<DeviceBuffer>(bytes);
        c.ctx->set_tensor_address(d.name, buf->data());
        outs.emplace_back(&d, shape);
    }
    {
        nb::gil_scoped_release release;
        c.ctx->enqueue(nullptr);
    }
    nb::dict out;
    for (auto& [d, shape] : outs) {
        std::shared_ptr<DeviceBuffer> buf = c.out_pool[d->name];
        if (output == "cuda") {
            auto* owner_ref = new std::shared_ptr<DeviceBuffer>(buf);
            nb::capsule owner(owner_ref, [](void* p) noexcept { delete static_cast<std::shared_ptr<DeviceBuffer>*>(p); });
            std::vector<size_t> dims(shape.begin(), shape.end());
            nb::ndarray<nb::array_api> arr(buf->data(), dims.size(), dims.data(), owner, nullptr,
                                           dlpack_from_dtype(d->dtype), nb::device::cuda::value, 0);
            out[d->name.c_str()] = arr.cast();
        } else {
            Tensor t(d->dtype, shape);
            buf->download(t.raw(), t.bytes());
            out[d->name.c_str()] = output == "numpy" ? tensor_to_numpy(t) : tensor_to_dlpack(t);
        }
    }
    return out;
}

bool has_cuda_input(nb::dict feeds) {
    for (auto [k, v] : feeds) {
        AnyArray a;
        if (nb::try_cast(v, a, true) && a.device_type() == nb::device::cuda::value) return true;
    }
    return false;
}

nb::dict run_context(PyContext& c, nb::dict feeds, const std::string& output) {
    if (output != "numpy" && output != "dlpack" && output != "cuda")
        throw Error(ErrorCode::kInvalidArgument, "output must be 'numpy', 'dlpack' or 'cuda', got '" + output + "'");
    if (c.engine->on_device() && (output == "cuda" || has_cuda_input(feeds))) return run_on_device(c, feeds, output);
    if (output == "cuda")
        throw Error(ErrorCode::kUnsupported, "output='cuda' needs an engine built for the GPU (device='cuda'); this "
                                             "engine runs on the '" + c.engine->target_backend() + "' backend");
    std::vector<AnyArray> keep;  // the caller's arrays stay referenced while kiln reads them
    std::map<std::string, Tensor> inputs;
    for (auto [k, v] : feeds) {
        std::string name = feed_name(k);
        std::string what = "input '" + name + "'";
        const DataType* expected = nullptr;
        for (const TensorDesc& d : c.engine->inputs())
            if (d.name == name) expected = &d.dtype;
        keep.push_back(to_host_array(v, what));
        inputs[name] = array_to_tensor(keep.back(), what, expected);
    }
    std::map<std::string, Tensor> outputs;
    {
        nb::gil_scoped_release release;
        outputs = c.ctx->run(inputs);
    }
    nb::dict out;
    for (const TensorDesc& d : c.engine->outputs()) {  // engine order, not alphabetical
        auto it = outputs.find(d.name);
        if (it == outputs.end()) continue;
        out[d.name.c_str()] = output == "numpy" ? tensor_to_numpy(it->second) : tensor_to_dlpack(it->second);
    }
    return out;
}

nb::list descs_to_py(const std::vector<TensorDesc>& descs) {
    nb::list out;
    for (const TensorDesc& d : descs) out.append(nb::cast(d));
    return out;
}

nb::dict layer_to_py(const LayerInfo& l) {
    auto tensors = [](const std::vector<TensorDesc>& ts) {
        nb::list out;
        for (const TensorDesc& t : ts)
            out.append(nb::make_tuple(t.name, numpy_dtype_name(t.dtype), sym_shape_to_py(t.dims)));
        return out;
    };
    nb::dict d;
    d["name"] = l.name;
    d["op_type"] = l.op_type;
    d["domain"] = l.domain;
    d["backend"] = l.backend;
    d["kernel"] = l.kernel;
    d["inputs"] = tensors(l.inputs);
    d["outputs"] = tensors(l.outputs);
    d["fused_from"] = l.fused_from;
    nb::dict attrs;
    for (const auto& [k, v] : l.attributes) attrs[k.c_str()] = v;
    d["attributes"] = attrs;
    return d;
}

nb::bytes to_bytes(const std::vector<uint8_t>& v) {
    return nb::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

void bind_core(nb::module_& m) {
    nb::enum_<DataType>(m, "DataType", "Element types of kiln tensors.")
        .value("FLOAT32", DataType::kFloat32)
        .value("FLOAT16", DataType::kFloat16)
        .value("BFLOAT16", DataType::kBFloat16)
        .value("FLOAT64", DataType::kFloat64)
        .value("INT8", DataType::kInt8)
        .value("UINT8", DataType::kUInt8)
        .value("INT32", DataType::kInt32)
        .value("INT64", DataType::kInt64)
        .value("BOOL", DataType::kBool);
    m.def(
        "parse_dtype", [](nb::handle h) { return dtype_from_py(h); }, "dtype"_a,
        "kiln.DataType of a name ('float32', 'fp16', 'int64', ...), a numpy dtype or a kiln.DataType.");
    m.def(
        "dtype_name", [](DataType t) { return numpy_dtype_name(t); }, "dtype"_a,
        "numpy name of a kiln.DataType ('float32', 'bfloat16', ...).");

    nb::enum_<Severity>(m, "Severity", "Logger message severities (lower is more severe).")
        .value("ERROR", Severity::kError)
        .value("WARNING", Severity::kWarning)
        .value("INFO", Severity::kInfo)
        .value("VERBOSE", Severity::kVerbose);

    nb::class_<Logger, PyLogger>(m, "Logger",
                                 "Receives kiln's messages. Subclass it and override log(severity, message);\n"
                                 "Builder, OnnxParser and Runtime take one (as in TensorRT).")
        .def(nb::init<>())
        .def("log", &Logger::log, "severity"_a, "message"_a);
    nb::class_<StderrLogger, Logger>(m, "StderrLogger", "Writes messages at or above min_severity to stderr.")
        .def(nb::init<Severity>(), "min_severity"_a = Severity::kWarning)
        .def("set_min_severity", &StderrLogger::set_min_severity, "severity"_a);
    nb::class_<NullLogger, Logger>(m, "NullLogger", "Discards every message.").def(nb::init<>());

    nb::class_<TensorDesc>(m, "TensorDesc", "Name, dtype and (possibly symbolic) shape of an engine input/output.")
        .def_ro("name", &TensorDesc::name)
        .def_ro("dtype", &TensorDesc::dtype, "kiln.DataType")
        .def_prop_ro(
            "shape", [](const TensorDesc& d) { return sym_shape_to_py(d.dims); },
            "tuple of int (static), str (named symbolic dim) or None (unknown)")
        .def_prop_ro(
            "numpy_dtype", [](const TensorDesc& d) { return numpy_dtype_name(d.dtype); }, "numpy dtype name")
        .def("__repr__", [](const TensorDesc& d) {
            return "TensorDesc('" + d.name + "', " + numpy_dtype_name(d.dtype) + "[" + shape_str(d.dims) + "])";
        });
}

void bind_runtime(nb::module_& m) {
    nb::class_<PyContext>(m, "ExecutionContext",
                          "Per-thread state that runs an Engine (activation memory). Make one per thread with\n"
                          "Engine.create_context(); the Engine itself is shared and immutable.")
        .def("run", &run_context, "inputs"_a, "output"_a = "numpy",
             "Runs the engine on {name: array} (numpy arrays or DLPack tensors; C-contiguous inputs are not\n"
             "copied) and returns {name: array} in the engine's output order: numpy arrays (output='numpy',\n"
             "bfloat16 as uint16 bits) or framework-neutral DLPack arrays (output='dlpack'), without copying.\n"
             "GPU engines read CUDA tensors (torch, cupy) in place and, with output='cuda', return DLPack device\n"
             "arrays over kiln's output buffers (no copy; a buffer is reused once Python drops it).\n"
             "Wrong names, shapes or dtypes raise InvalidArgumentError naming the tensor.")
        .def_prop_rw(
            "num_threads", [](const PyContext& c) { return c.num_threads; },
            [](PyContext& c, int n) {
                c.num_threads = n < 1 ? 1 : n;
                c.ctx->set_num_threads(c.num_threads);
            },
            "Threads the kernels may use (ExecutionContext::set_num_threads).")
        .def("set_num_threads", [](PyContext& c, int n) {
            c.num_threads = n < 1 ? 1 : n;
            c.ctx->set_num_threads(c.num_threads);
        }, "n"_a)
        .def(
            "set_profiling", [](PyContext& c, bool on) { c.ctx->set_profiling(on); }, "on"_a,
            "Records per-layer times of each run (last_profile()).")
        .def(
            "last_profile", [](const PyContext& c) { return c.ctx->last_profile(); },
            "[(layer name, ms)] of the last run, when profiling is on.")
        .def_prop_ro("engine", [](const PyContext& c) { return std::const_pointer_cast<Engine>(c.engine); });

    nb::class_<Engine>(m, "Engine", "An immutable optimised model, shareable across threads.")
        .def_prop_ro("inputs", [](const Engine& e) { return descs_to_py(e.inputs()); })
        .def_prop_ro("outputs", [](const Engine& e) { return descs_to_py(e.outputs()); })
        .def_prop_ro(
            "layers",
            [](const Engine& e) {
                nb::list out;
                for (const LayerInfo& l : e.layers()) out.append(layer_to_py(l));
                return out;
            },
            "One dict per layer: name, op_type, backend, kernel, inputs/outputs (name, dtype, shape), ...")
        .def_prop_ro(
            "memory",
            [](const Engine& e) {
                MemoryInfo mi = e.memory();
                nb::dict d;
                d["planned"] = mi.planned;
                d["arena_bytes"] = mi.arena_bytes;
                d["naive_bytes"] = mi.naive_bytes;
                d["lower_bound_bytes"] = mi.lower_bound_bytes;
                d["weight_bytes"] = mi.weight_bytes;
                return d;
            },
            "Memory plan: arena_bytes (activation block per context), weight_bytes, ...")
        .def_prop_ro("target_backend", &Engine::target_backend)
        .def_prop_ro("kiln_version", &Engine::kiln_version)
        .def_prop_ro("metadata", &Engine::metadata)
        .def(
            "serialize", [](const Engine& e) { return to_bytes(e.serialize()); },
            "The plan as bytes (versioned, checksummed); Runtime.deserialize reads it back.")
        .def(
            "save",
            [](const Engine& e, const std::filesystem::path& path) {
                nb::gil_scoped_release release;
                e.save(path.string());
            },
            "path"_a, "Writes the plan atomically (temporary file + rename).")
        .def(
            "create_context",
            [](std::shared_ptr<Engine> e) {
                auto c = std::make_unique<PyContext>();
                c->engine = e;
                c->ctx = e->create_context();
                return c;
            },
            "Makes an ExecutionContext (one per thread).");

    nb::class_<Runtime>(m, "Runtime", "Loads serialised plans into Engines (needs neither ONNX nor the optimiser).")
        .def(nb::init<Logger&>(), "logger"_a, nb::keep_alive<1, 2>())
        .def(
            "deserialize",
            [](Runtime& r, nb::bytes data, const std::string& source) {
                std::vector<uint8_t> bytes(data.size());
                if (data.size()) std::memcpy(bytes.data(), data.c_str(), data.size());
                nb::gil_scoped_release release;
                return r.deserialize(bytes, source);
            },
            "data"_a, "source"_a = "<memory>", nb::keep_alive<0, 1>(),
            "Engine from plan bytes. Raises InvalidPlanError (corrupted, checksum) or VersionMismatchError.")
        .def(
            "load",
            [](Runtime& r, const std::filesystem::path& path) {
                nb::gil_scoped_release release;
                return r.load(path.string());
            },
            "path"_a, nb::keep_alive<0, 1>(), "Engine from a .plan file (FileError when missing).");

    m.def(
        "read_tensor_proto",
        [](nb::bytes data, const std::string& source) {
            return tensor_to_numpy(read_tensor_proto(data.c_str(), data.size(), source));
        },
        "data"_a, "source"_a = "<bytes>", "numpy array from a serialised ONNX TensorProto (.pb).");
}

}  // namespace

}  // namespace kiln::python

NB_MODULE(_kiln, m) {
    using namespace kiln::python;
    m.doc() = "kiln's C++ API (nanobind). Most users want the high-level functions in `kiln` itself.";
    // kiln keeps a module-level Runtime and Logger (a Python subclass) alive until exit, which nanobind would
    // report as leaks at interpreter shutdown.
    nb::set_leak_warnings(false);
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const kiln::Error& e) {
            raise_kiln_error(e);
        }
    });
    m.attr("__version__") = kiln::kVersionString;
    m.def(
        "build_info",
        []() {
            nb::dict d;
            d["version"] = kiln::kVersionString;
#ifdef KILN_NO_CPU_BACKEND
            std::vector<std::string> backends = {"reference"};  // built without oneDNN
#else
            std::vector<std::string> backends = {"cpu", "reference"};
#endif
            if (KILN_PY_HAS_CUDA) backends.push_back("cuda");
            d["backends"] = backends;
            d["cuda"] = static_cast<bool>(KILN_PY_HAS_CUDA);
            return d;
        },
        "What this build of kiln contains: version, backends, whether the CUDA backend is compiled in.");
    bind_core(m);
    bind_network(m);
    bind_runtime(m);
}

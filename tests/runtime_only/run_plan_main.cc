// A deployment-style program linked against kiln_runtime only (no ONNX frontend, no protobuf, no optimizer):
// loads a plan, runs it on constant inputs of the engine's static shapes (symbolic dims = 1), prints the outputs.
// tests/python/test_runtime_only.py checks that it runs and that it does not link protobuf.
#include <cstdio>

#include "kiln/runtime.h"
#include "kiln/status.h"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s model.plan\n", argv[0]);
        return 2;
    }
    kiln::StderrLogger logger;
    try {
        auto engine = kiln::Runtime(logger).load(argv[1]);
        std::map<std::string, kiln::Tensor> inputs;
        for (const kiln::TensorDesc& d : engine->inputs()) {
            kiln::Shape shape;
            for (const kiln::Dim& dim : d.dims) shape.push_back(dim.is_static() ? dim.value : 1);
            inputs[d.name] = kiln::Tensor(d.dtype, shape);  // zeros
        }
        auto outputs = engine->create_context()->run(inputs);
        for (auto& [name, t] : outputs) std::printf("%s %s\n", name.c_str(), kiln::shape_str(t.shape()).c_str());
    } catch (const kiln::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return kiln::exit_code(e.code());
    }
    return 0;
}

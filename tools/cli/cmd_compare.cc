// kiln compare: kiln vs onnxruntime (through tools/ort_reference.py) on the same inputs.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "src/common/check.h"
#include "tools/cli/commands.h"
#include "tools/cli/npy.h"
#include "tools/cli/session.h"

namespace kiln::cli {

namespace {

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string file_name(const std::string& tensor) {
    std::string f = tensor;
    for (char& ch : f)
        if (ch == '/' || ch == '\\' || ch == ':') ch = '_';
    return f + ".npy";
}

}  // namespace

int cmd_compare(const CompareArgs& a) {
    StderrLogger logger(a.model.verbose ? Severity::kVerbose : Severity::kWarning);
    KILN_CHECK(!is_plan_file(a.model.model), kInvalidArgument, "`kiln compare` needs the ONNX model, not a plan");
    std::shared_ptr<Engine> engine = load_engine(a.model, logger);
    std::map<std::string, Tensor> inputs = prepare_inputs(*engine, a.inputs);
    auto ctx = engine->create_context();
    ctx->set_cuda_graphs(!a.model.no_cuda_graph);
    ctx->set_num_threads(a.threads);
    std::map<std::string, Tensor> outputs = ctx->run(inputs);

    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                cat("kiln_compare_", std::to_string(::getpid()), "_", std::rand());
    std::filesystem::create_directories(dir);
    struct Cleanup {
        std::filesystem::path p;
        ~Cleanup() {
            std::error_code ec;
            std::filesystem::remove_all(p, ec);
        }
    } cleanup{dir};
    std::string cmd = shell_quote(python_exe()) + " " + shell_quote(source_dir() + "/tools/ort_reference.py") + " " +
                      shell_quote(a.model.model) + " --output-dir " + shell_quote((dir / "ref").string());
    int k = 0;
    for (auto& [name, t] : inputs) {
        std::string p = (dir / cat("in", k++, ".npy")).string();
        write_npy(p, t);
        cmd += " --input " + shell_quote(name + "=" + p);
    }
    int rc = std::system(cmd.c_str());
    KILN_CHECK(rc == 0, kInternal, "the onnxruntime reference failed (", cmd, "); is onnxruntime installed? ",
               "(scripts/install_deps.sh; or set KILN_PYTHON)");

    bool ok = true;
    std::printf("%-28s %-16s %12s %12s %12s %12s  %s\n", "output", "shape", "max_abs_err", "max_rel_err", "scale",
                "err/scale", "result");
    for (const TensorDesc& d : engine->outputs()) {
        const Tensor& got = outputs.at(d.name);
        Tensor ref = read_npy((dir / "ref" / file_name(d.name)).string());
        bool pass = got.shape() == ref.shape() && got.dtype() == ref.dtype();
        double max_abs = 0, max_rel = 0, scale = 0;
        if (pass) {
            for (int64_t i = 0; i < ref.numel(); ++i) {
                double r = ref.get_f64(i), g = got.get_f64(i);
                double err = std::fabs(r - g);
                if (std::isnan(r) != std::isnan(g)) err = INFINITY;
                if (std::isnan(r) && std::isnan(g)) err = 0;
                max_abs = std::max(max_abs, err);
                max_rel = std::max(max_rel, err / (std::fabs(r) + 1e-6));
                if (std::isfinite(r)) scale = std::max(scale, std::fabs(r));
            }
        }
        if (scale == 0) scale = 1;
        double norm = max_abs / scale;
        bool exact = ref.dtype() != DataType::kFloat32 && ref.dtype() != DataType::kFloat64 &&
                     ref.dtype() != DataType::kFloat16 && ref.dtype() != DataType::kBFloat16;
        pass = pass && (exact ? max_abs == 0 : norm <= a.tolerance);
        ok &= pass;
        std::string shape = got.shape() == ref.shape()
                                ? shape_str(got.shape())
                                : cat(shape_str(got.shape()), "!=", shape_str(ref.shape()));
        std::printf("%-28s %-16s %12.3e %12.3e %12.3e %12.3e  %s\n", d.name.c_str(), shape.c_str(), max_abs, max_rel,
                    scale, norm, pass ? "PASS" : "FAIL");
    }
    std::printf("%s (tolerance %.1e of each output's scale)\n", ok ? "all outputs match" : "MISMATCH", a.tolerance);
    return ok ? 0 : 1;
}

}  // namespace kiln::cli

// kiln build / kiln run
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "src/common/check.h"
#include "tools/cli/commands.h"
#include "tools/cli/npy.h"
#include "tools/cli/session.h"

namespace kiln::cli {

int cmd_build(const BuildArgs& a) {
    StderrLogger logger(a.model.verbose ? Severity::kVerbose : Severity::kWarning);
    KILN_CHECK(!is_plan_file(a.model.model), kInvalidArgument, "'", a.model.model,
               "' is already a kiln plan; `kiln build` takes an ONNX model");
    BuildReport report;
    auto t0 = std::chrono::steady_clock::now();
    std::shared_ptr<Engine> engine = load_engine(a.model, logger, &report);
    engine->save(a.output);
    double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (a.model.verbose) {
        for (const auto& p : report.passes)
            std::printf("  pass %-32s %5d -> %5d nodes  %8.2f ms\n", p.name.c_str(), p.nodes_before, p.nodes_after,
                        p.ms);
    }
    MemoryInfo mem = engine->memory();
    std::printf("built %s: %d -> %d layers, %.1f MiB weights, build %.2f s (optimise+lower %.0f ms)\n",
                a.output.c_str(), report.imported_nodes, report.final_nodes, mem.weight_bytes / 1048576.0, total,
                report.total_ms);
    return 0;
}

namespace {

std::string stats(const Tensor& t) {
    if (t.dtype() != DataType::kFloat32 || t.numel() == 0) return "";
    double sum = 0, mx = -INFINITY, mn = INFINITY;
    for (int64_t i = 0; i < t.numel(); ++i) {
        double v = t.data<float>()[i];
        sum += v;
        mx = std::max(mx, v);
        mn = std::min(mn, v);
    }
    return cat(" mean=", sum / t.numel(), " min=", mn, " max=", mx);
}

}  // namespace

int cmd_run(const RunArgs& a) {
    StderrLogger logger(a.model.verbose ? Severity::kVerbose : Severity::kWarning);
    std::shared_ptr<Engine> engine = load_engine(a.model, logger);
    std::map<std::string, Tensor> inputs = prepare_inputs(*engine, a.inputs);
    auto ctx = engine->create_context();
    ctx->set_cuda_graphs(!a.model.no_cuda_graph);
    ctx->set_num_threads(a.threads);
    std::map<std::string, Tensor> outputs = ctx->run(inputs);
    if (!a.output_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(a.output_dir, ec);
        KILN_CHECK(!ec, kIoError, "cannot create output directory '", a.output_dir, "': ", ec.message());
    }
    for (const TensorDesc& d : engine->outputs()) {
        const Tensor& t = outputs.at(d.name);
        std::printf("%s: %s[%s]%s\n", d.name.c_str(), dtype_name(t.dtype()), shape_str(t.shape()).c_str(),
                    stats(t).c_str());
        if (!a.output_dir.empty()) {
            std::string file = d.name;
            for (char& ch : file)
                if (ch == '/' || ch == '\\' || ch == ':') ch = '_';
            write_npy((std::filesystem::path(a.output_dir) / (file + ".npy")).string(), t);
        }
    }
    return 0;
}

}  // namespace kiln::cli

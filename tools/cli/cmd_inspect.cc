// kiln inspect: layers (with the ONNX nodes each came from), shapes, dtypes, passes, memory; --json and --dot.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "src/common/check.h"
#include "tools/cli/commands.h"
#include "tools/cli/session.h"

namespace kiln::cli {

namespace {

std::string desc_str(const TensorDesc& d) {
    if (d.name.empty()) return "_";
    return cat(d.name, ":", dtype_name(d.dtype), "[", shape_str(d.dims), "]");
}

nlohmann::json desc_json(const TensorDesc& d) {
    std::vector<nlohmann::json> dims;
    for (const Dim& x : d.dims) dims.push_back(x.is_static() ? nlohmann::json(x.value) : nlohmann::json(x.str()));
    return {{"name", d.name}, {"dtype", dtype_name(d.dtype)}, {"shape", dims}};
}

void write_dot(const std::string& path, const Engine& engine) {
    std::ofstream f(path);
    KILN_CHECK(f.good(), kIoError, "cannot write '", path, "'");
    f << "digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=Helvetica];\n";
    std::map<std::string, std::string> producer;
    for (const TensorDesc& d : engine.inputs()) {
        f << "  \"in:" << d.name << "\" [shape=ellipse, label=\"" << d.name << "\\n" << shape_str(d.dims) << "\"];\n";
        producer[d.name] = "in:" + d.name;
    }
    for (const LayerInfo& l : engine.layers()) {
        f << "  \"" << l.name << "\" [label=\"" << l.op_type << "\\n" << l.name;
        if (l.fused_from.size() > 1) f << "\\n(" << l.fused_from.size() << " ONNX nodes)";
        f << "\"];\n";
        for (const TensorDesc& in : l.inputs)
            if (producer.count(in.name))
                f << "  \"" << producer[in.name] << "\" -> \"" << l.name << "\" [label=\"" << shape_str(in.dims)
                  << "\"];\n";
        for (const TensorDesc& o : l.outputs) producer[o.name] = l.name;
    }
    for (const TensorDesc& d : engine.outputs())
        f << "  \"out:" << d.name << "\" [shape=ellipse];\n  \"" << producer[d.name] << "\" -> \"out:" << d.name
          << "\";\n";
    f << "}\n";
}

}  // namespace

int cmd_inspect(const InspectArgs& a) {
    StderrLogger logger(a.model.verbose ? Severity::kVerbose : Severity::kWarning);
    BuildReport report;
    bool from_onnx = !is_plan_file(a.model.model);
    std::shared_ptr<Engine> engine = load_engine(a.model, logger, &report);
    std::vector<LayerInfo> layers = engine->layers();
    MemoryInfo mem = engine->memory();
    if (!a.dot.empty()) write_dot(a.dot, *engine);
    if (a.json) {
        nlohmann::json j;
        j["model"] = a.model.model;
        j["kiln_version"] = engine->kiln_version();
        j["backend"] = engine->target_backend();
        for (const TensorDesc& d : engine->inputs()) j["inputs"].push_back(desc_json(d));
        for (const TensorDesc& d : engine->outputs()) j["outputs"].push_back(desc_json(d));
        j["nodes"] = nlohmann::json::array();
        for (const LayerInfo& l : layers) {
            nlohmann::json n = {{"name", l.name}, {"op", l.op_type}, {"domain", l.domain}, {"backend", l.backend},
                                {"kernel", l.kernel}, {"fused_from", l.fused_from}};
            n["inputs"] = nlohmann::json::array();
            n["outputs"] = nlohmann::json::array();
            for (const TensorDesc& d : l.inputs) n["inputs"].push_back(d.name);
            for (const TensorDesc& d : l.outputs) n["outputs"].push_back(d.name);
            for (const TensorDesc& d : l.outputs) n["output_shapes"].push_back(desc_json(d)["shape"]);
            for (auto& [k, v] : l.attributes) n["attributes"][k] = v;
            j["nodes"].push_back(n);
        }
        j["memory"] = {{"planned", mem.planned},
                       {"planned_bytes", mem.arena_bytes},
                       {"naive_bytes", mem.naive_bytes},
                       {"lower_bound_bytes", mem.lower_bound_bytes},
                       {"weight_bytes", mem.weight_bytes}};
        if (from_onnx) {
            j["passes"] = nlohmann::json::array();
            for (const auto& p : report.passes)
                j["passes"].push_back(
                    {{"name", p.name}, {"nodes_before", p.nodes_before}, {"nodes_after", p.nodes_after}, {"ms", p.ms}});
            j["imported_nodes"] = report.imported_nodes;
        }
        for (auto& [k, v] : engine->metadata()) j["metadata"][k] = v;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("model      %s\nkiln       %s, backend %s\n", a.model.model.c_str(), engine->kiln_version().c_str(),
                engine->target_backend().c_str());
    for (const TensorDesc& d : engine->inputs()) std::printf("input      %s\n", desc_str(d).c_str());
    for (const TensorDesc& d : engine->outputs()) std::printf("output     %s\n", desc_str(d).c_str());
    for (auto& [k, v] : engine->metadata()) {
        if (k == "doc_string") continue;
        if (k == "cuda_tactics") {  // one line per tuned problem: summarised (the per-layer kernels show them)
            long n = std::count(v.begin(), v.end(), '\n');
            std::printf("metadata   %s = %ld tuned problems (--json for the list)\n", k.c_str(), n);
            continue;
        }
        std::printf("metadata   %s = %s\n", k.c_str(), v.c_str());
    }
    if (from_onnx) {
        std::printf("\npasses (%d imported nodes -> %d layers)\n", report.imported_nodes, report.final_nodes);
        for (const auto& p : report.passes)
            std::printf("  %-32s %5d -> %5d  %8.2f ms\n", p.name.c_str(), p.nodes_before, p.nodes_after, p.ms);
    }
    std::printf("\nlayers (%zu)\n", layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
        const LayerInfo& l = layers[i];
        std::vector<std::string> ins, outs;
        for (auto& d : l.inputs) ins.push_back(desc_str(d));
        for (auto& d : l.outputs) outs.push_back(desc_str(d));
        std::printf("%4zu %-20s %s\n     in:  %s\n     out: %s\n", i, l.op_type.c_str(), l.name.c_str(),
                    join(ins, ", ").c_str(), join(outs, ", ").c_str());
        if (!l.kernel.empty()) std::printf("     kernel: %s (%s)\n", l.kernel.c_str(), l.backend.c_str());
        if (l.fused_from.size() > 1 || (l.fused_from.size() == 1 && l.fused_from[0] != l.name))
            std::printf("     from: %s\n", join(l.fused_from, ", ").c_str());
    }
    std::printf("\nmemory\n  weights          %12llu bytes\n", static_cast<unsigned long long>(mem.weight_bytes));
    if (mem.planned) {
        std::printf("  activation arena %12llu bytes (naive sum %llu, lower bound %llu)\n",
                    static_cast<unsigned long long>(mem.arena_bytes), static_cast<unsigned long long>(mem.naive_bytes),
                    static_cast<unsigned long long>(mem.lower_bound_bytes));
    } else {
        std::printf("  activations      dynamic (symbolic shapes; fix them with --shape to plan an arena)\n");
    }
    return 0;
}

}  // namespace kiln::cli

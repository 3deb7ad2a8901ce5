// Builder: clone the network, fix input shapes, verify, infer, optimise, lower, create the engine.
#include <chrono>

#include "kiln/builder.h"
#include "src/backends/backend.h"
#include "src/builder/lower.h"
#include "src/common/check.h"
#include "src/common/strings.h"
#include "src/passes/pass.h"

namespace kiln {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void apply_input_shapes(ir::Graph& g, const std::map<std::string, Shape>& shapes) {
    for (auto& [name, shape] : shapes) {
        ir::Value* v = g.find_value(name);
        KILN_CHECK(v && v->is_input, kInvalidArgument, "input shape given for '", name,
                   "', which is not a model input (--shape / input_shapes)");
        KILN_CHECK(v->dims.size() == shape.size(), kInvalidArgument, "input shape ", name, ":", shape_str(shape),
                   " has rank ", shape.size(), " but the input is ", shape_str(v->dims));
        for (size_t i = 0; i < shape.size(); ++i)
            KILN_CHECK(!v->dims[i].is_static() || v->dims[i].value == shape[i], kInvalidArgument, "input shape ",
                       name, ":", shape_str(shape), " conflicts with the model's fixed shape ", shape_str(v->dims));
        v->dims = to_sym(shape);
    }
}

bool is_precision(const std::string& p) { return p == "fp32" || p == "fp16" || p == "bf16"; }

void check_precision(const BuilderConfig& c) {
    KILN_CHECK(is_precision(c.precision), kInvalidArgument, "precision '", c.precision,
               "' is not supported; use fp32, fp16 or bf16");
    for (const auto& [layer, p] : c.layer_precision)
        KILN_CHECK(is_precision(p), kInvalidArgument, "--layer-precision ", layer, ":", p,
                   ": the precision must be fp32, fp16 or bf16");
    const bool host = c.backend == "cpu" || c.backend == "reference";
    KILN_CHECK(!(host && c.precision == "fp16"), kUnsupported, "precision fp16 is not supported by the '", c.backend,
               "' backend: build with --backend cuda, or use --bf16 on a CPU with AVX512-BF16");
    KILN_CHECK(!(c.backend == "reference" && c.precision != "fp32"), kUnsupported,
               "the reference backend runs fp32 only; drop --", c.precision, " or pick --backend cpu/cuda");
    KILN_CHECK(!(host && c.tf32), kUnsupported, "--tf32 is a CUDA option; it has no effect on the '", c.backend,
               "' backend (drop it)");
    if (c.backend == "cpu") {  // the machine's side (AVX512-BF16 for bf16), before any pass runs
        std::unique_ptr<backends::Backend> cpu = backends::make_backend("cpu");
        cpu->check_precision(c.precision);
        for (const auto& [layer, p] : c.layer_precision) cpu->check_precision(p);
    }
}

// Resolves --layer-precision names against the optimised graph: a layer is named by its node's name or by any
// ONNX node fused into it. Returns "node=prec;node=prec" for the plan's metadata. Unknown names are an error.
std::string resolve_layer_precision(const plan::PlanModel& plan, const std::map<std::string, std::string>& wanted) {
    std::map<std::string, std::string> per_node;
    for (const auto& [layer, prec] : wanted) {
        bool found = false;
        for (const plan::PlanNode& n : plan.nodes) {
            bool match = n.name == layer;
            for (const std::string& f : n.fused_from) match |= f == layer;
            if (!match) continue;
            found = true;
            auto [it, fresh] = per_node.emplace(n.name, prec);
            KILN_CHECK(fresh || it->second == prec, kInvalidArgument, "--layer-precision: layer '", n.name,
                       "' gets both ", it->second, " and ", prec, " (through '", layer, "', fused into it)");
        }
        KILN_CHECK(found, kInvalidArgument, "--layer-precision: no layer named '", layer,
                   "' (`kiln inspect MODEL` lists the layers and the ONNX nodes fused into each)");
    }
    std::string out;
    for (const auto& [n, p] : per_node) out += cat(out.empty() ? "" : ";", n, "=", p);
    return out;
}

}  // namespace

std::shared_ptr<Engine> Builder::build(const NetworkDefinition& network, const BuilderConfig& config,
                                       BuildReport* report) {
    auto t_start = std::chrono::steady_clock::now();
    check_config(config);
    for (const std::string& name : config.disabled_passes) {
        bool known = false;
        for (const auto& p : passes::pipeline()) known |= name == p.name;
        KILN_CHECK(known, kInvalidArgument, "cannot disable unknown pass '", name, "' (see `kiln inspect` for the pass names)");
    }
    std::unique_ptr<ir::Graph> g = network.graph().clone();
    KILN_CHECK(!g->outputs().empty(), kInvalidModel, "the network has no outputs");
    apply_input_shapes(*g, config.input_shapes);
    g->verify();
    g->topological_sort();
    g->infer_shapes(/*lenient=*/true);  // shape arithmetic may need constant folding first

    BuildReport local;
    BuildReport& rep = report ? *report : local;
    rep.imported_nodes = static_cast<int>(g->num_nodes());
    passes::PassContext pctx{logger_, config.opt_level, config.backend, config.precision};
    for (const auto& p : passes::pipeline()) {
        if (config.opt_level < p.min_level) continue;
        bool disabled = false;
        for (const std::string& d : config.disabled_passes) disabled |= d == p.name;
        if (disabled) continue;
        auto t0 = std::chrono::steady_clock::now();
        int before = static_cast<int>(g->num_nodes());
        if (p.run(*g, pctx)) {
            g->topological_sort();
            g->infer_shapes(/*lenient=*/true);
        }
        rep.passes.push_back({p.name, before, static_cast<int>(g->num_nodes()), ms_since(t0)});
        logger_.log(Severity::kVerbose, cat("pass ", p.name, ": ", before, " -> ", g->num_nodes(), " nodes"));
    }
    try {
        g->infer_shapes();  // strict: every rank must be known now
    } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnsupported || config.opt_level >= 1) throw;
        throw Error(e.code(), cat(e.what(), " (opt level 0 does not fold shape arithmetic: build with opt level 1 ",
                                  "or higher)"));
    }
    rep.final_nodes = static_cast<int>(g->num_nodes());
    // the precision each node will get from the metadata below (a layer named by its node or a fused ONNX node)
    auto precision_of = [&](const plan::PlanNode& n) {
        for (const auto& [layer, prec] : config.layer_precision) {
            if (n.name == layer) return prec;
            for (const std::string& f : n.fused_from)
                if (f == layer) return prec;
        }
        return config.precision;
    };
    plan::PlanModel plan = builder::lower_to_plan(*g, config.backend, precision_of);
    plan.metadata["precision"] = config.precision;
    if (config.tf32) plan.metadata["tf32"] = "1";
    if (!config.layer_precision.empty())
        plan.metadata["layer_precision"] = resolve_layer_precision(plan, config.layer_precision);
    std::shared_ptr<Engine> engine = Engine::create(std::move(plan), logger_, config.timing_cache);
    rep.total_ms = ms_since(t_start);
    return engine;
}

void Builder::check_config(const BuilderConfig& config) {
    KILN_CHECK(config.opt_level >= 0 && config.opt_level <= 3, kInvalidArgument, "optimisation level ",
               config.opt_level, " is out of range (0 to 3)");
    check_precision(config);
}

std::vector<uint8_t> Builder::build_serialized(const NetworkDefinition& network, const BuilderConfig& config) {
    return build(network, config)->serialize();
}

}  // namespace kiln

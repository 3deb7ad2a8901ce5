// `kiln` — build | run | bench | inspect | compare. Thin: option groups live in options.cc, commands in cmd_*.cc.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "kiln/kiln.h"
#include "tools/cli/commands.h"

namespace {

// oneDNN's OpenMP threads busy-wait at every barrier by default. On a shared or oversubscribed machine a descheduled
// team member then stalls the others for a whole time slice (measured on the 2-core dev machine under load: ResNet-50
// 800-1200 ms instead of 96 ms). libgomp reads its wait policy once, before main, so the CLI re-executes itself with
// OMP_WAIT_POLICY=PASSIVE unless the caller chose a policy. A passive thread still spins briefly before it sleeps
// (GOMP_SPINCOUNT=1000, about 10 us): enough to catch the next convolution of a CNN without a futex wake-up
// (ResNet-50 batch 1, quiet: -2 ms of ~41), too short to steal a time slice under load (same speed as no spin).
void ensure_omp_wait_policy(char** argv) {
    if (std::getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    setenv("GOMP_SPINCOUNT", "1000", 0);
    execv("/proc/self/exe", argv);  // on failure carry on with libgomp's default policy
}

}  // namespace

int main(int argc, char** argv) {
    ensure_omp_wait_policy(argv);
    using namespace kiln::cli;
    CLI::App app{"kiln — deep-learning inference optimizer and runtime", "kiln"};
    app.require_subcommand(1);
    app.set_version_flag("--version", kiln::kVersionString);

    BuildArgs build;
    CLI::App* b = app.add_subcommand("build", "Optimise an ONNX model into an engine plan");
    build.model.add_to(*b);
    b->add_option("--output,-o", build.output, "Plan file to write")->required();

    RunArgs run;
    CLI::App* r = app.add_subcommand("run", "Run a model or plan on inputs and write one .npy per output");
    run.model.add_to(*r);
    run.inputs.add_to(*r);
    r->add_option("--output-dir", run.output_dir, "Directory for <output name>.npy files");
    r->add_option("--threads", run.threads, "Threads per execution context (default: physical cores)")
        ->check(CLI::PositiveNumber);

    BenchArgs bench;
    CLI::App* be = app.add_subcommand("bench", "Measure latency and throughput");
    bench.model.add_to(*be);
    bench.inputs.add_to(*be);
    bench.bench.add_to(*be);

    InspectArgs inspect;
    CLI::App* in = app.add_subcommand("inspect", "Show layers, shapes, dtypes, passes and memory of a model or plan");
    inspect.model.add_to(*in);
    in->add_flag("--json", inspect.json, "Print one JSON object");
    in->add_option("--dot", inspect.dot, "Write the optimised graph as Graphviz to FILE");

    CompareArgs compare;
    CLI::App* c = app.add_subcommand("compare", "Run kiln and onnxruntime on the same inputs and compare outputs");
    compare.model.add_to(*c);
    compare.inputs.add_to(*c);
    c->add_option("--tolerance", compare.tolerance, "Max abs error allowed, relative to each output's scale");
    c->add_option("--threads", compare.threads, "Threads per execution context (default: physical cores)")
        ->check(CLI::PositiveNumber);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        if (*b) return cmd_build(build);
        if (*r) return cmd_run(run);
        if (*be) return cmd_bench(bench);
        if (*in) return cmd_inspect(inspect);
        if (*c) return cmd_compare(compare);
    } catch (const kiln::Error& e) {
        std::fprintf(stderr, "kiln: error: %s\n", e.what());
        return kiln::exit_code(e.code());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kiln: internal error: %s\n", e.what());
        return 1;
    }
    return 0;
}

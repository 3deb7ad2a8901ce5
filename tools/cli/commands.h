#pragma once
// One function per `kiln` subcommand; each returns the process exit code.
#include <string>

#include "tools/cli/options.h"

namespace kiln::cli {

struct BuildArgs {
    ModelOptions model;
    std::string output;
};
struct RunArgs {
    ModelOptions model;
    InputOptions inputs;
    std::string output_dir;
    int threads = default_threads();
};
struct BenchArgs {
    ModelOptions model;
    InputOptions inputs;
    BenchOptions bench;
};
struct InspectArgs {
    ModelOptions model;
    bool json = false;
    std::string dot;
};
struct CompareArgs {
    ModelOptions model;
    InputOptions inputs;
    double tolerance = 1e-4;
    int threads = default_threads();
};

int cmd_build(const BuildArgs& a);
int cmd_run(const RunArgs& a);
int cmd_bench(const BenchArgs& a);
int cmd_inspect(const InspectArgs& a);
int cmd_compare(const CompareArgs& a);

}  // namespace kiln::cli

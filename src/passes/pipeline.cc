// The optimisation pipeline, in the order the passes run.
#include "src/passes/pass.h"

namespace kiln::passes {

const std::vector<PassInfo>& pipeline() {
    static const std::vector<PassInfo> kPipeline = {
        {"dead_code_elimination", 1, &dead_code_elimination},
    };
    return kPipeline;
}

}  // namespace kiln::passes

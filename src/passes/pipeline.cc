// The optimisation pipeline, in the order the passes run.
#include "src/passes/pass.h"

namespace kiln::passes {

const std::vector<PassInfo>& pipeline() {
    static const std::vector<PassInfo> kPipeline = {
        // O1: simplification
        {"constant_folding", 1, &constant_folding},
        {"identity_elimination", 1, &identity_elimination},
        {"common_subexpression_elimination", 1, &common_subexpression_elimination},
        // O2: + folding of BatchNormalization into the layer before it
        {"fold_batch_norm", 2, &fold_batch_norm},
        // cleanup (every level)
        {"dead_code_elimination", 1, &dead_code_elimination},
    };
    return kPipeline;
}

}  // namespace kiln::passes

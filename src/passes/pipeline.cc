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
        {"gather_to_reshape", 1, &gather_to_reshape},  // O1; after constant_folding, which makes the index constant
        // O2: + recognition of decomposed ops
        {"fuse_gelu", 2, &fuse_gelu},
        {"fuse_layer_norm", 2, &fuse_layer_norm},
        // O3: + layer and kernel fusion
        {"fuse_attention", 3, &fuse_attention},
        {"fuse_attention_heads", 3, &fuse_attention_heads},  // cpu / reference / cuda: heads read in place
        {"fuse_conv_epilogue", 3, &fuse_conv_epilogue},
        {"gemm_to_matmul", 3, &gemm_to_matmul},  // linear-layer Gemms (and their Reshapes) -> MatMul + bias Add
        {"fuse_matmul_transpose", 3, &fuse_matmul_transpose},  // before fuse_matmul_epilogue, which extends it
        // after the attention fusions (which match Transposes), before fuse_matmul_epilogue: a Transpose / Reshape
        // moved out from between a projection and a residual Add lets the Add fuse
        {"transpose_optimization", 3, &transpose_optimization},
        {"fuse_matmul_epilogue", 3, &fuse_matmul_epilogue},
        {"fuse_qkv_projection", 3, &fuse_qkv_projection},  // cuda: one GEMM for a packed Attention's Q, K and V
        {"fuse_matmul_norm", 3, &fuse_matmul_norm},  // cuda, KILN_CUDA_MATMUL_NORM=1: residual matmul + LayerNorm
        {"fuse_embed_layer_norm", 3, &fuse_embed_layer_norm},  // cuda: Gather + constant Adds + LayerNorm
        {"fuse_expand_depthwise", 3, &fuse_expand_depthwise},  // cpu: 1x1 expand + depthwise in one kernel
        {"mark_squeeze_excite", 3, &mark_squeeze_excite},  // before fuse_elementwise, which skips marked nodes
        {"hoist_reshape", 3, &hoist_reshape},  // a Cast / Not moved below a reshape meets the elementwise ops after it
        {"fuse_elementwise", 3, &fuse_elementwise},
        // cleanup (every level)
        {"dead_code_elimination", 1, &dead_code_elimination},
    };
    return kPipeline;
}

}  // namespace kiln::passes

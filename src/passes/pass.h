#pragma once
// Pass + the ordered pipeline. A pass rewrites the graph in place and returns whether it changed anything; when a
// precondition fails it leaves the graph alone.
#include <functional>
#include <string>
#include <vector>

#include "kiln/logger.h"
#include "src/ir/graph.h"

namespace kiln::passes {

struct PassContext {
    Logger& logger;
    int opt_level = 3;
    std::string backend = "cpu";  ///< the target backend: a pass may produce a form only some backends run well
    std::string precision = "fp32";  ///< the plan's default precision (BuilderConfig::precision)
};

struct PassInfo {
    const char* name;
    int min_level;  ///< runs when opt_level >= min_level
    bool (*run)(ir::Graph& g, PassContext& ctx);
};

/// The pipeline, in order (src/passes/pipeline.cc).
const std::vector<PassInfo>& pipeline();

// One pass per file; declarations here so the pipeline list stays the only place that orders them.
bool constant_folding(ir::Graph& g, PassContext& ctx);
bool identity_elimination(ir::Graph& g, PassContext& ctx);
bool gather_to_reshape(ir::Graph& g, PassContext& ctx);
bool common_subexpression_elimination(ir::Graph& g, PassContext& ctx);
bool fold_batch_norm(ir::Graph& g, PassContext& ctx);
bool fuse_gelu(ir::Graph& g, PassContext& ctx);
bool fuse_layer_norm(ir::Graph& g, PassContext& ctx);
bool fuse_attention(ir::Graph& g, PassContext& ctx);
bool fuse_attention_heads(ir::Graph& g, PassContext& ctx);
bool fuse_conv_epilogue(ir::Graph& g, PassContext& ctx);
bool gemm_to_matmul(ir::Graph& g, PassContext& ctx);
bool fuse_matmul_transpose(ir::Graph& g, PassContext& ctx);
bool fuse_matmul_epilogue(ir::Graph& g, PassContext& ctx);
bool fuse_qkv_projection(ir::Graph& g, PassContext& ctx);
bool fuse_matmul_norm(ir::Graph& g, PassContext& ctx);
bool fuse_embed_layer_norm(ir::Graph& g, PassContext& ctx);
bool transpose_optimization(ir::Graph& g, PassContext& ctx);
bool mark_squeeze_excite(ir::Graph& g, PassContext& ctx);
bool fuse_expand_depthwise(ir::Graph& g, PassContext& ctx);
bool hoist_reshape(ir::Graph& g, PassContext& ctx);
bool fuse_elementwise(ir::Graph& g, PassContext& ctx);
bool dead_code_elimination(ir::Graph& g, PassContext& ctx);

}  // namespace kiln::passes

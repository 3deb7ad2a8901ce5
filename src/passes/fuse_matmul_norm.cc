// The residual matmul of a transformer and the LayerNormalization that reads it become one FusedMatMulNorm:
//   s = FusedMatMul(x, W, b, z)            (after fuse_matmul_epilogue: x @ W + b + z, no activation)
//   y = LayerNormalization(s, gamma, beta) (last axis, constant gamma / beta)
//   -> y [, s] = FusedMatMulNorm(x, W, b, z, gamma, beta)
// s stays an output when something else reads it (pre-norm models: GPT-2, ViT carry it as the next residual).
// Post-norm BERT has two per layer (attention output and FFN output). On cuda the GEMM writes split-K partial
// products and one row-wise kernel sums them with the bias and the residual and normalises: cuBLASLt's own split-K
// reduction, the residual epilogue and the LayerNormalization kernel were three launches. Only for cuda, and by
// default only for at most kMaxDefaultRows static rows (the matmul's M): on an H100 (docs/PERFORMANCE.md) it took
// BERT-base batch 1 from 0.47 to 0.45 ms and GPT-2 batch 1 from 0.45 to 0.42, but made batch 32 (4096 rows) 1-5%
// slower, where the fp32 partial products cost more memory traffic than the launches they save.
// KILN_CUDA_MATMUL_NORM=1 fuses at any size (dynamic shapes too), =0 never.
#include <cstdlib>
#include <string>

#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool norm_vector(const ir::Value* v, int64_t n) {
    return v && v->is_constant() && v->dtype == DataType::kFloat32 && v->constant->shape().size() == 1 &&
           v->constant->numel() == n;
}

constexpr int64_t kMaxDefaultRows = 1024;

// rows of s (all dims but the last) when static, else -1
int64_t static_rows(const ir::Value* s) {
    int64_t m = 1;
    for (size_t i = 0; i + 1 < s->dims.size(); ++i) {
        if (!s->dims[i].is_static()) return -1;
        m *= s->dims[i].value;
    }
    return m;
}

template <bool kAnySize>
bool try_fuse(ir::Graph& g, ir::Node* ln, const UseMap& uses) {
    if (ln->inputs.size() != 3 || ln->outputs.size() != 1) return false;
    ir::Value* s = ln->input(0);
    ir::Node* mm = s ? s->producer : nullptr;
    if (!mm || mm->op_type != "FusedMatMul" || mm->domain != "kiln" || mm->inputs.size() != 4) return false;
    if (!mm->input(2) || !mm->input(3) || !mm->attrs.get_string("activation", "").empty()) return false;
    const ir::Value* w = mm->input(1);
    if (!w->is_constant() || w->constant->shape().size() != 2 || s->dtype != DataType::kFloat32) return false;
    if (s->dims.empty() || !s->dims.back().is_static()) return false;
    if (!kAnySize) {
        const int64_t m = static_rows(s);
        if (m < 0 || m > kMaxDefaultRows) return false;
    }
    const int rank = static_cast<int>(s->dims.size());
    const int64_t axis = ln->attrs.get_int("axis", -1);
    if (axis != -1 && axis != rank - 1) return false;
    const int64_t n = s->dims.back().value;
    if (!norm_vector(ln->input(1), n) || !norm_vector(ln->input(2), n)) return false;

    const bool keep_sum = !uses.single_use(s);  // other readers, or a graph output
    record_fused(mm, {ln});
    ir::Value* y = ln->outputs[0];
    ir::Value* gamma = ln->input(1);
    ir::Value* beta = ln->input(2);
    const float eps = ln->attrs.get_float("epsilon", 1e-5f);
    g.remove_node(ln);
    mm->op_type = "FusedMatMulNorm";
    mm->inputs.push_back(gamma);
    mm->inputs.push_back(beta);
    mm->attrs.set("epsilon", eps);
    mm->outputs = {y};
    y->producer = mm;
    if (keep_sum)
        mm->outputs.push_back(s);
    else
        s->producer = nullptr;
    return true;
}

}  // namespace

bool fuse_matmul_norm(ir::Graph& g, PassContext& ctx) {
    const char* env = std::getenv("KILN_CUDA_MATMUL_NORM");
    const std::string mode = env ? env : "";
    if (ctx.backend != "cuda" || mode == "0") return false;
    return mode == "1" ? rewrite_until_stable(g, "LayerNormalization", "", try_fuse<true>)
                       : rewrite_until_stable(g, "LayerNormalization", "", try_fuse<false>);
}

}  // namespace kiln::passes

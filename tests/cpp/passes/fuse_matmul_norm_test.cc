// fuse_matmul_norm: a residual FusedMatMul read by a LayerNormalization becomes one FusedMatMulNorm (cuda only);
// its reference kernel against a hand computation.
#include <cstdlib>

#include "src/backends/backend.h"
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

// x [2, 3, k] -> x W + b + r -> LayerNormalization(gamma, beta, eps 1e-3) [-> also an output when `pre_norm`]
void residual_norm(NetworkDefinition& net, int64_t k, int64_t n, bool pre_norm, int64_t tokens = 3) {
    std::string x = net.add_input("x", DataType::kFloat32, {2, tokens, k});
    std::string r = net.add_input("r", DataType::kFloat32, {2, tokens, n});
    std::string mm = net.add_layer("MatMul", {x, net.add_constant("w", filled({k, n}, 1.f, 0.5f))})[0];
    std::string s =
        net.add_layer("Add", {net.add_layer("Add", {mm, net.add_constant("b", filled({n}, 2.f))})[0], r})[0];
    AttributeMap eps;
    eps.set("epsilon", 1e-3f);
    std::string y = net.add_layer(
        "LayerNormalization",
        {s, net.add_constant("gamma", filled({n}, 3.f, 1.f, 1.f)), net.add_constant("beta", filled({n}, 4.f))}, eps)[0];
    net.mark_output(y);
    if (pre_norm) net.mark_output(net.add_layer("Relu", {s})[0]);
}

// mode: KILN_CUDA_MATMUL_NORM's value ("1": any size, "0": never), nullptr: unset (up to 1024 static rows)
std::unique_ptr<ir::Graph> optimise_for(const NetworkDefinition& net, const std::string& backend, bool* fused,
                                        const char* mode = nullptr) {
    if (mode)
        setenv("KILN_CUDA_MATMUL_NORM", mode, 1);
    else
        unsetenv("KILN_CUDA_MATMUL_NORM");
    std::unique_ptr<ir::Graph> g = run_passes_for(net, backend, {&fuse_matmul_epilogue, &fuse_matmul_norm}, fused);
    unsetenv("KILN_CUDA_MATMUL_NORM");
    return g;
}

// residual_norm(8, 16) optimised for cuda; fused tells whether the pass changed it
std::unique_ptr<ir::Graph> fused_residual_norm(bool pre_norm, bool* fused) {
    NetworkDefinition net;
    residual_norm(net, 8, 16, pre_norm);
    return optimise_for(net, "cuda", fused);
}

}  // namespace

TEST(FuseMatMulNorm, ResidualMatMulAndLayerNormBecomeOneNode) {
    bool fused = false;
    auto g = fused_residual_norm(false, &fused);
    ASSERT_TRUE(fused);
    EXPECT_EQ(count_op(*g, "LayerNormalization"), 0);
    EXPECT_EQ(count_op(*g, "FusedMatMul"), 0);
    const ir::Node* n = first_node(*g, "FusedMatMulNorm");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->inputs.size(), 6u);
    EXPECT_EQ(n->outputs.size(), 1u);  // S has no other reader
    EXPECT_FLOAT_EQ(n->attrs.get_float("epsilon", 0.f), 1e-3f);
    EXPECT_EQ(n->outputs[0]->dims.size(), 3u);
}

TEST(FuseMatMulNorm, PreNormKeepsTheSumAsSecondOutput) {
    bool fused = false;
    auto g = fused_residual_norm(true, &fused);
    ASSERT_TRUE(fused);
    const ir::Node* n = first_node(*g, "FusedMatMulNorm");
    const ir::Node* relu = first_node(*g, "Relu");
    ASSERT_TRUE(n && relu);
    ASSERT_EQ(n->outputs.size(), 2u);
    EXPECT_EQ(relu->input(0), n->outputs[1]);
}

TEST(FuseMatMulNorm, OnlyForCuda) {
    NetworkDefinition net;
    residual_norm(net, 8, 16, false);
    bool fused = true;
    optimise_for(net, "cpu", &fused);
    EXPECT_FALSE(fused);
    optimise_for(net, "cuda", &fused, "0");  // turned off
    EXPECT_FALSE(fused);
}

TEST(FuseMatMulNorm, ByDefaultOnlyUpToAThousandRows) {
    for (int64_t tokens : {3, 512, 513}) {  // 6, 1024 and 1026 rows
        NetworkDefinition net;
        residual_norm(net, 8, 16, false, tokens);
        bool fused = false;
        optimise_for(net, "cuda", &fused);
        EXPECT_EQ(fused, tokens <= 512) << tokens;
        optimise_for(net, "cuda", &fused, "1");  // any size when asked for
        EXPECT_TRUE(fused) << tokens;
    }
}

// The reference kernel (the host fallback and the oracle) against S = x W + b + r and a plain LayerNormalization.
TEST(FuseMatMulNorm, ReferenceKernelMatchesHandComputation) {
    const int64_t m = 3, k = 5, n = 7;
    Tensor x = filled({m, k}, 1.f), w = filled({k, n}, 2.f, 0.5f), b = filled({n}, 3.f), r = filled({m, n}, 4.f);
    Tensor gamma = filled({n}, 5.f, 1.f, 1.f), beta = filled({n}, 6.f);
    auto info = [](const Tensor& t, bool constant) {
        ops::TensorInfo i;
        i.dims.assign(t.shape().begin(), t.shape().end());
        if (constant) i.value = &t;
        return i;
    };
    const std::string name = "mmn", op = "FusedMatMulNorm";
    AttributeMap attrs;
    attrs.set("epsilon", 1e-2f);
    backends::KernelNode node{
        name,
        op,
        attrs,
        {info(x, false), info(w, true), info(b, true), info(r, false), info(gamma, true), info(beta, true)},
        {info(r, false), info(r, false)}};
    auto ref = backends::make_backend("reference");
    ASSERT_TRUE(ref->supports(node));
    auto kernel = ref->create_kernel(node);
    Tensor y(DataType::kFloat32, {m, n}), s(DataType::kFloat32, {m, n});
    kernel->execute({{&x, &w, &b, &r, &gamma, &beta}, {&y, &s}, 1});
    std::vector<std::vector<double>> sum(m, std::vector<double>(n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double acc = b.data<float>()[j] + r.data<float>()[i * n + j];
            for (int64_t t = 0; t < k; ++t) acc += double(x.data<float>()[i * k + t]) * w.data<float>()[t * n + j];
            sum[i][j] = acc;
        }
    expect_norm_rows(sum, &s, y, gamma, beta, 1e-2);
}

}  // namespace kiln::passes::test

// gemm_to_matmul: a linear layer exported as Reshape -> Gemm -> Reshape (GPT-2's Conv1D) becomes MatMul + bias Add on
// the 3-D input, which fuse_matmul_epilogue then folds together with the residual Add and the activation.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

AttributeMap gemm_attrs(bool trans_b, float beta = 1.f) {
    AttributeMap a;
    if (trans_b) a.set("transB", int64_t{1});
    if (beta != 1.f) a.set("beta", beta);
    return a;
}

// x [2, 5, 6] -> Reshape [-1, 6] -> Gemm(W, c) -> Reshape [2, 5, 4] -> + r -> Relu
void linear_block(NetworkDefinition& net, bool trans_b, Shape c_shape, float beta = 1.f) {
    std::string x = net.add_input("x", DataType::kFloat32, {2, 5, 6});
    std::string r = net.add_input("r", DataType::kFloat32, {2, 5, 4});
    std::string flat = net.add_layer("Reshape", {x, net.add_constant("flat", ints({-1, 6}))})[0];
    std::string w = net.add_constant("w", filled(trans_b ? Shape{4, 6} : Shape{6, 4}, 0.5f, 0.4f));
    std::string c = net.add_constant("c", filled(c_shape, 2.f, 0.3f));
    std::string y = net.add_layer("Gemm", {flat, w, c}, gemm_attrs(trans_b, beta))[0];
    std::string y3 = net.add_layer("Reshape", {y, net.add_constant("unflat", ints({2, 5, 4}))})[0];
    net.mark_output(net.add_layer("Relu", {net.add_layer("Add", {y3, r})[0]})[0]);
}

std::map<std::string, Tensor> feeds() { return {{"x", filled({2, 5, 6}, 0.1f)}, {"r", filled({2, 5, 4}, 0.7f)}}; }

}  // namespace

TEST(GemmToMatmul, LinearLayerBecomesOneFusedMatMulWithResidualAndActivation) {
    for (bool trans_b : {false, true}) {
        NetworkDefinition net;
        linear_block(net, trans_b, {4});
        bool changed = false;
        auto g = run_pass(net, &gemm_to_matmul, &changed);
        EXPECT_TRUE(changed);
        EXPECT_EQ(count_op(*g, "Gemm"), 0);
        EXPECT_EQ(count_op(*g, "Reshape"), 0);
        EXPECT_EQ(layer_ops(net, 3), (std::vector<std::string>{"FusedMatMul"}));  // bias + residual + Relu folded
        expect_same_outputs(net, feeds());
    }
}

TEST(GemmToMatmul, RowBiasAndOtherBetasAreLeftAsGemm) {
    NetworkDefinition full;  // C of the output's full shape is not a bias
    linear_block(full, false, {10, 4});
    bool changed = true;
    run_pass(full, &gemm_to_matmul, &changed);
    EXPECT_FALSE(changed);
    expect_same_outputs(full, feeds());
    NetworkDefinition scaled;  // beta != 1
    linear_block(scaled, false, {1, 4}, 0.5f);
    run_pass(scaled, &gemm_to_matmul, &changed);
    EXPECT_FALSE(changed);
    expect_same_outputs(scaled, feeds());
}

}  // namespace kiln::passes::test

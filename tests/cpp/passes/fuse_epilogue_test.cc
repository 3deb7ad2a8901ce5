// fuse_conv_epilogue and fuse_matmul_epilogue: bias, residual Add and activations move into one fused layer.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

std::string conv(NetworkDefinition& net, const std::string& x, int64_t cin, int64_t cout, const std::string& name) {
    AttributeMap a;
    a.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    return net.add_layer("Conv",
                         {x, net.add_constant(name + ".w", filled({cout, cin, 3, 3}, 0.2f, 0.3f)),
                          net.add_constant(name + ".b", filled({cout}, 0.7f, 0.1f))},
                         a, 1, name)[0];
}

}  // namespace

TEST(FuseConvEpilogue, ResidualThenRelu) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 3, 6, 6});
    std::string y = conv(net, x, 3, 3, "conv");
    std::string sum = net.add_layer("Add", {y, x})[0];
    net.mark_output(net.add_layer("Relu", {sum})[0]);
    auto g = run_pass(net, &fuse_conv_epilogue);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = g->nodes()[0];
    EXPECT_EQ(n->op_type, "FusedConv");
    EXPECT_EQ(n->attrs.get_string("activation", ""), "Relu");
    ASSERT_EQ(n->inputs.size(), 4u);
    EXPECT_EQ(n->inputs[3]->name, "x");
    EXPECT_EQ(n->fused_from, (std::vector<std::string>{"conv", net.graph().nodes()[1]->name, net.graph().nodes()[2]->name}));
    expect_same_outputs(net, {{"x", filled({2, 3, 6, 6}, 0.4f)}});
}

TEST(FuseConvEpilogue, SiluAndClip) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 2, 5, 5});
    std::string y = conv(net, x, 2, 4, "c1");
    std::string silu = net.add_layer("Mul", {y, net.add_layer("Sigmoid", {y})[0]})[0];
    std::string z = conv(net, silu, 4, 4, "c2");
    std::string relu6 = net.add_layer("Clip", {z, scalar(net, "lo", 0.f), scalar(net, "hi", 6.f)})[0];
    net.mark_output(relu6);
    auto g = run_pass(net, &fuse_conv_epilogue);
    EXPECT_EQ(count_op(*g, "FusedConv"), 2);
    EXPECT_EQ(g->num_nodes(), 2u);
    EXPECT_EQ(g->nodes()[0]->attrs.get_string("activation", ""), "Silu");
    EXPECT_EQ(g->nodes()[1]->attrs.get_string("activation", ""), "Clip");
    EXPECT_FLOAT_EQ(g->nodes()[1]->attrs.get_float("activation_beta", 0), 6.f);
    expect_same_outputs(net, {{"x", filled({1, 2, 5, 5}, 0.9f, 3.f)}});
}

TEST(FuseConvEpilogue, SharedOutputIsNotFused) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 2, 4, 4});
    std::string y = conv(net, x, 2, 2, "conv");
    net.mark_output(net.add_layer("Relu", {y})[0]);
    net.mark_output(y);  // the pre-activation value is needed too
    bool changed = true;
    run_pass(net, &fuse_conv_epilogue, &changed);
    EXPECT_FALSE(changed);
}

TEST(FuseMatMulEpilogue, BiasResidualGelu) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 3, 8});
    std::string h = net.add_layer("MatMul", {x, net.add_constant("w1", filled({8, 16}, 0.3f, 0.4f))})[0];
    std::string hb = net.add_layer("Add", {h, net.add_constant("b1", filled({16}, 0.1f, 0.2f))})[0];
    std::string a = net.add_layer("Gelu", {hb})[0];
    std::string o = net.add_layer("MatMul", {a, net.add_constant("w2", filled({16, 8}, 0.8f, 0.3f))})[0];
    std::string ob = net.add_layer("Add", {net.add_constant("b2", filled({8}, 0.5f, 0.2f)), o})[0];
    net.mark_output(net.add_layer("Add", {ob, x})[0]);  // residual
    auto g = run_pass(net, &fuse_matmul_epilogue);
    ASSERT_EQ(g->num_nodes(), 2u);
    EXPECT_EQ(count_op(*g, "FusedMatMul"), 2);
    EXPECT_EQ(g->nodes()[0]->attrs.get_string("activation", ""), "Gelu");
    EXPECT_EQ(g->nodes()[1]->inputs.size(), 4u);  // A, W, bias, residual
    expect_same_outputs(net, {{"x", filled({2, 3, 8}, 0.6f)}});
}

TEST(FuseMatMulEpilogue, NonConstantWeightStaysMatMul) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 8});
    std::string w = net.add_input("w", DataType::kFloat32, {8, 4});
    net.mark_output(net.add_layer("Relu", {net.add_layer("MatMul", {x, w})[0]})[0]);
    bool changed = true;
    run_pass(net, &fuse_matmul_epilogue, &changed);
    EXPECT_FALSE(changed);
}

}  // namespace kiln::passes::test

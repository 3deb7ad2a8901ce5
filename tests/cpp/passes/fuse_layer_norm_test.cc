// fuse_layer_norm: decomposed LayerNorm and RMSNorm become LayerNormalization / RMSNormalization.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

std::string reduce_mean_last(NetworkDefinition& net, const std::string& x, const std::string& name) {
    AttributeMap keep;
    keep.set("keepdims", int64_t{1});
    return net.add_layer("ReduceMean", {x, net.add_constant(name + ".axes", ints({-1}))}, keep, 1, name)[0];
}

}  // namespace

TEST(FuseLayerNorm, PyTorchDecomposedForm) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 5, 16});
    std::string mean = reduce_mean_last(net, x, "mean");
    std::string d = net.add_layer("Sub", {x, mean})[0];
    std::string sq = net.add_layer("Pow", {d, scalar(net, "two", 2.f)})[0];
    std::string var = reduce_mean_last(net, sq, "var");
    std::string ve = net.add_layer("Add", {var, scalar(net, "eps", 1e-5f)})[0];
    std::string sd = net.add_layer("Sqrt", {ve})[0];
    std::string n = net.add_layer("Div", {d, sd})[0];
    std::string m = net.add_layer("Mul", {n, net.add_constant("gamma", filled({16}, 0.1f, 0.5f, 1.f))})[0];
    net.mark_output(net.add_layer("Add", {m, net.add_constant("beta", filled({16}, 0.9f, 0.3f))})[0]);
    bool changed = false;
    auto g = run_pass(net, &fuse_layer_norm, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* ln = g->nodes()[0];
    EXPECT_EQ(ln->op_type, "LayerNormalization");
    EXPECT_EQ(ln->inputs.size(), 3u);
    EXPECT_FLOAT_EQ(ln->attrs.get_float("epsilon", 0), 1e-5f);
    EXPECT_EQ(ln->fused_from.size(), 9u);
    expect_same_outputs(net, {{"x", filled({2, 5, 16}, 0.3f, 2.f, 0.5f)}}, 2);
}

TEST(FuseLayerNorm, WithoutAffine) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 8});
    std::string mean = reduce_mean_last(net, x, "mean");
    std::string d = net.add_layer("Sub", {x, mean})[0];
    std::string sq = net.add_layer("Pow", {d, scalar(net, "two", 2.f)})[0];
    std::string var = reduce_mean_last(net, sq, "var");
    std::string sd = net.add_layer("Sqrt", {net.add_layer("Add", {var, scalar(net, "eps", 1e-6f)})[0]})[0];
    net.mark_output(net.add_layer("Div", {d, sd})[0]);
    auto g = run_pass(net, &fuse_layer_norm);
    EXPECT_EQ(count_op(*g, "LayerNormalization"), 1);
    EXPECT_EQ(g->num_nodes(), 1u);
    expect_same_outputs(net, {{"x", filled({3, 8}, 0.1f)}}, 2);
}

TEST(FuseLayerNorm, RMSNorm) {
    // y = x * Reciprocal(Sqrt(ReduceMean(x^2) + eps)) * gamma
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 4, 32});
    std::string sq = net.add_layer("Pow", {x, scalar(net, "two", 2.f)})[0];
    std::string ms = reduce_mean_last(net, sq, "ms");
    std::string sd = net.add_layer("Sqrt", {net.add_layer("Add", {ms, scalar(net, "eps", 1e-6f)})[0]})[0];
    std::string r = net.add_layer("Reciprocal", {sd})[0];
    std::string n = net.add_layer("Mul", {x, r})[0];
    net.mark_output(net.add_layer("Mul", {n, net.add_constant("gamma", filled({32}, 0.4f, 0.5f, 1.f))})[0]);
    auto g = run_pass(net, &fuse_layer_norm);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->nodes()[0]->op_type, "RMSNormalization");
    expect_same_outputs(net, {{"x", filled({2, 4, 32}, 0.8f, 3.f)}}, 2);
}

TEST(FuseLayerNorm, NonTrailingAxisIsLeftAlone) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 8});
    AttributeMap keep;
    keep.set("keepdims", int64_t{1});
    std::string mean = net.add_layer("ReduceMean", {x, net.add_constant("axes", ints({0}))}, keep)[0];
    std::string d = net.add_layer("Sub", {x, mean})[0];
    std::string sq = net.add_layer("Pow", {d, scalar(net, "two", 2.f)})[0];
    std::string var = net.add_layer("ReduceMean", {sq, net.add_constant("axes2", ints({0}))}, keep)[0];
    std::string sd = net.add_layer("Sqrt", {net.add_layer("Add", {var, scalar(net, "eps", 1e-6f)})[0]})[0];
    net.mark_output(net.add_layer("Div", {d, sd})[0]);
    bool changed = true;
    run_pass(net, &fuse_layer_norm, &changed);
    EXPECT_FALSE(changed);
}

}  // namespace kiln::passes::test

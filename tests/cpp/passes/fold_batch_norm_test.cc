// fold_batch_norm: BatchNormalization after Conv / ConvTranspose (grouped) / Gemm (transB) folds into the layer.
#include <gtest/gtest.h>

#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

/// Adds BN params for `c` channels (var > 0) and a BatchNormalization reading `x`; returns its output.
std::string add_bn(NetworkDefinition& net, const std::string& x, int64_t c, const std::string& name = "bn") {
    std::string gamma = net.add_constant(name + ".gamma", filled({c}, 0.3f, 0.5f, 1.f));
    std::string beta = net.add_constant(name + ".beta", filled({c}, 1.1f, 0.2f));
    std::string mean = net.add_constant(name + ".mean", filled({c}, 2.3f, 0.3f));
    std::string var = net.add_constant(name + ".var", filled({c}, 0.9f, 0.4f, 0.6f));
    AttributeMap a;
    a.set("epsilon", 1e-3f);
    return net.add_layer("BatchNormalization", {x, gamma, beta, mean, var}, a, 1, name)[0];
}

AttributeMap attr_int(const std::string& k, int64_t v) {
    AttributeMap a;
    a.set(k, v);
    return a;
}

void expect_folded(const NetworkDefinition& net, const std::string& layer_op, const std::string& layer_name) {
    bool changed = false;
    auto g = run_pass(net, &fold_batch_norm, &changed);
    EXPECT_TRUE(changed);
    EXPECT_EQ(count_op(*g, "BatchNormalization"), 0);
    ASSERT_EQ(count_op(*g, layer_op), 1);
    for (const ir::Node* n : g->nodes()) {
        if (n->op_type != layer_op) continue;
        EXPECT_EQ(n->fused_from, (std::vector<std::string>{layer_name, "bn"}));
        EXPECT_EQ(n->outputs[0]->name, net.output_names()[0]);  // the BN's output name is kept
    }
}

}  // namespace

TEST(FoldBatchNorm, ConvWithBias) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 3, 6, 6});
    std::string w = net.add_constant("w", filled({4, 3, 3, 3}, 0.1f, 0.3f));
    std::string b = net.add_constant("b", filled({4}, 0.2f));
    std::string y = net.add_layer("Conv", {x, w, b}, {}, 1, "conv")[0];
    net.mark_output(add_bn(net, y, 4));
    expect_folded(net, "Conv", "conv");
    expect_same_outputs(net, {{"x", filled({2, 3, 6, 6}, 0.4f)}}, 2);
    expect_same_outputs(net, {{"x", filled({2, 3, 6, 6}, 0.4f)}}, 3);
    std::vector<std::string> o1 = layer_ops(net, 1), o2 = layer_ops(net, 2);
    EXPECT_EQ(o1, (std::vector<std::string>{"Conv", "BatchNormalization"}));  // O1: no BN folding
    EXPECT_EQ(o2, (std::vector<std::string>{"Conv"}));
}

TEST(FoldBatchNorm, GroupedConvWithoutBias) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 4, 5, 5});
    std::string w = net.add_constant("w", filled({6, 2, 3, 3}, 0.1f, 0.3f));
    std::string y = net.add_layer("Conv", {x, w}, attr_int("group", 2), 1, "conv")[0];
    net.mark_output(add_bn(net, y, 6));
    expect_folded(net, "Conv", "conv");
    expect_same_outputs(net, {{"x", filled({1, 4, 5, 5}, 0.4f)}});
}

TEST(FoldBatchNorm, GroupedConvTranspose) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 4, 3, 3});
    // W [C_in=4, M/group=3, 2, 2], group 2 -> 6 output channels.
    std::string w = net.add_constant("w", filled({4, 3, 2, 2}, 0.7f, 0.3f));
    std::string b = net.add_constant("b", filled({6}, 0.2f));
    AttributeMap a = attr_int("group", 2);
    a.set("strides", std::vector<int64_t>{2, 2});
    std::string y = net.add_layer("ConvTranspose", {x, w, b}, a, 1, "deconv")[0];
    net.mark_output(add_bn(net, y, 6));
    expect_folded(net, "ConvTranspose", "deconv");
    expect_same_outputs(net, {{"x", filled({1, 4, 3, 3}, 0.4f)}});
}

TEST(FoldBatchNorm, GemmTransBWithAlphaBeta) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 5});
    std::string w = net.add_constant("w", filled({3, 5}, 0.1f));
    std::string c = net.add_constant("c", filled({1, 3}, 0.2f));
    AttributeMap a = attr_int("transB", 1);
    a.set("alpha", 0.5f);
    a.set("beta", 2.f);
    std::string y = net.add_layer("Gemm", {x, w, c}, a, 1, "fc")[0];
    net.mark_output(add_bn(net, y, 3));
    expect_folded(net, "Gemm", "fc");
    expect_same_outputs(net, {{"x", filled({4, 5}, 0.4f)}});
}

TEST(FoldBatchNorm, GemmWithoutBias) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 5});
    std::string y = net.add_layer("Gemm", {x, net.add_constant("w", filled({5, 3}, 0.1f))}, {}, 1, "fc")[0];
    net.mark_output(add_bn(net, y, 3));
    expect_folded(net, "Gemm", "fc");
    expect_same_outputs(net, {{"x", filled({2, 5}, 0.4f)}});
}

TEST(FoldBatchNorm, NotFoldableBatchNormsStay) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 3, 4, 4});
    // After a Relu: standalone.
    std::string r = net.add_layer("Relu", {x})[0];
    net.mark_output(add_bn(net, r, 3, "bn_relu"));
    // The conv output is read twice.
    std::string y = net.add_layer("Conv", {x, net.add_constant("w", filled({3, 3, 1, 1}, 0.1f))}, {}, 1, "conv")[0];
    net.mark_output(add_bn(net, y, 3, "bn_shared"));
    net.mark_output(net.add_layer("Sigmoid", {y})[0]);
    bool changed = true;
    auto g = run_pass(net, &fold_batch_norm, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "BatchNormalization"), 2);
    expect_same_outputs(net, {{"x", filled({1, 3, 4, 4}, 0.4f)}});
}

TEST(FoldBatchNorm, NonConstantConvWeightStays) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 3, 4, 4});
    std::string wx = net.add_input("w", DataType::kFloat32, {3, 3, 1, 1});
    std::string y = net.add_layer("Conv", {x, wx}, {}, 1, "conv")[0];
    net.mark_output(add_bn(net, y, 3));
    bool changed = true;
    auto g = run_pass(net, &fold_batch_norm, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "BatchNormalization"), 1);
}

}  // namespace kiln::passes::test

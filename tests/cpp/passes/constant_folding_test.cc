// constant_folding: constant subgraphs and static Shape/Size chains become constants; weights never grow.
#include <gtest/gtest.h>

#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

TEST(ConstantFolding, FoldsConstantArithmetic) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 3});
    std::string c1 = net.add_constant("c1", filled({3}, 0.1f));
    std::string c2 = net.add_constant("c2", filled({3}, 0.7f));
    std::string t = net.add_layer("Add", {c1, c2})[0];
    std::string u = net.add_layer("Mul", {t, c1})[0];
    net.mark_output(net.add_layer("Add", {x, u}, {}, 1, "y")[0]);
    bool changed = false;
    auto g = run_pass(net, &constant_folding, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_TRUE(g->nodes()[0]->input(1)->is_constant());
    EXPECT_EQ(g->outputs()[0]->name, net.output_names()[0]);
    expect_same_outputs(net, {{"x", filled({2, 3}, 1.f)}});
}

// Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as PyTorch exports it.
void shape_chain_net(NetworkDefinition& net, const SymShape& x_dims) {
    std::string x = net.add_input("x", DataType::kFloat32, x_dims);
    std::string shape = net.add_layer("Shape", {x})[0];
    AttributeMap axis0;
    axis0.set("axis", int64_t{0});
    std::string b = net.add_layer("Gather", {shape, net.add_constant("i0", ints({0}))}, axis0)[0];
    std::string bu = net.add_layer("Unsqueeze", {b, net.add_constant("ax", ints({0}, {1}))})[0];
    std::string cat_shape =
        net.add_layer("Concat", {bu, net.add_constant("minus1", ints({-1}, {1}))}, axis0)[0];
    std::string r = net.add_layer("Reshape", {x, cat_shape})[0];
    std::string sz = net.add_layer("Size", {x})[0];
    std::string szf = net.add_layer("Cast", {sz}, [] {
        AttributeMap a;
        a.set("to", int64_t{1});  // FLOAT
        return a;
    }())[0];
    net.mark_output(net.add_layer("Mul", {r, szf}, {}, 1, "y")[0]);
}

TEST(ConstantFolding, ShapeChainBecomesStaticWhenDimsAreKnown) {
    NetworkDefinition net;
    shape_chain_net(net, {2, 3, 4});
    auto g = run_pass(net, &constant_folding);
    EXPECT_EQ(count_op(*g, "Shape"), 0);
    EXPECT_EQ(count_op(*g, "Size"), 0);
    EXPECT_EQ(count_op(*g, "Concat"), 0);
    EXPECT_EQ(g->num_nodes(), 2u);  // Reshape(x, const) and Mul(r, const)
    EXPECT_EQ(shape_str(g->outputs()[0]->dims), "2x12");
    expect_same_outputs(net, {{"x", filled({2, 3, 4}, 0.5f)}});
}

TEST(ConstantFolding, ShapeOfSymbolicDimsStays) {
    NetworkDefinition net;
    shape_chain_net(net, {Dim("batch"), 3, 4});
    bool changed = true;
    auto g = run_pass(net, &constant_folding, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Shape"), 1);
    EXPECT_EQ(count_op(*g, "Size"), 1);
    expect_same_outputs(net, {{"x", filled({5, 3, 4}, 0.5f)}});
}

TEST(ConstantFolding, TransposeOfSingleUseWeightFolds) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 600});
    std::string w = net.add_constant("w", filled({600, 600}, 0.3f, 0.01f));  // 1.4 MB
    AttributeMap perm;
    perm.set("perm", std::vector<int64_t>{1, 0});
    std::string wt = net.add_layer("Transpose", {w}, perm)[0];
    net.mark_output(net.add_layer("MatMul", {x, wt}, {}, 1, "y")[0]);
    auto g = run_pass(net, &constant_folding);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    EXPECT_EQ(g->find_value("w"), nullptr);  // the original weight is dead and dropped
    expect_same_outputs(net, {{"x", filled({2, 600}, 0.9f)}});
}

TEST(ConstantFolding, DoesNotDuplicateASharedLargeWeight) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 600});
    std::string w = net.add_constant("w", filled({600, 600}, 0.3f, 0.01f));
    AttributeMap perm;
    perm.set("perm", std::vector<int64_t>{1, 0});
    std::string wt = net.add_layer("Transpose", {w}, perm)[0];
    std::string a = net.add_layer("MatMul", {x, wt})[0];
    std::string b = net.add_layer("MatMul", {x, w})[0];
    net.mark_output(net.add_layer("Add", {a, b}, {}, 1, "y")[0]);
    bool changed = true;
    auto g = run_pass(net, &constant_folding, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 1);
}

TEST(ConstantFolding, DoesNotMaterialiseLargeConstantOfShape) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1024, 1024});
    std::string big = net.add_layer("ConstantOfShape", {net.add_constant("s", ints({1024, 1024}))})[0];  // 4 MiB
    std::string small = net.add_layer("ConstantOfShape", {net.add_constant("s2", ints({1024}, {1}))})[0];
    net.mark_output(net.add_layer("Add", {x, big}, {}, 1, "y")[0]);
    net.mark_output(net.add_layer("Add", {x, small}, {}, 1, "z")[0]);
    auto g = run_pass(net, &constant_folding);
    EXPECT_EQ(count_op(*g, "ConstantOfShape"), 1);
    EXPECT_EQ(count_op(*g, "Add"), 2);
}

TEST(ConstantFolding, ConstantGraphOutputKeepsItsName) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2});
    net.mark_output(net.add_layer("Relu", {x}, {}, 1, "r")[0]);
    std::string c = net.add_layer("Neg", {net.add_constant("c", filled({2}, 0.2f))}, {}, 1, "neg")[0];
    net.mark_output(c);
    auto g = run_pass(net, &constant_folding);
    EXPECT_EQ(g->num_nodes(), 1u);
    ASSERT_EQ(g->outputs().size(), 2u);
    EXPECT_EQ(g->outputs()[1]->name, c);
    EXPECT_TRUE(g->outputs()[1]->is_constant());
    expect_same_outputs(net, {{"x", filled({2}, 0.4f)}});
}

}  // namespace kiln::passes::test

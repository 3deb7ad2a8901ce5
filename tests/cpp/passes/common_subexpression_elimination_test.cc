// common_subexpression_elimination: duplicate nodes (same op, inputs, attributes) and small constants merge.
#include <gtest/gtest.h>

#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

TEST(CommonSubexpressionElimination, MergesDuplicateChains) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 5});
    std::string b1 = net.add_layer("Sigmoid", {net.add_layer("Relu", {x})[0]})[0];
    std::string b2 = net.add_layer("Sigmoid", {net.add_layer("Relu", {x})[0]})[0];
    net.mark_output(net.add_layer("Add", {b1, b2}, {}, 1, "y")[0]);
    auto g = run_pass(net, &common_subexpression_elimination);
    EXPECT_EQ(count_op(*g, "Relu"), 1);
    EXPECT_EQ(count_op(*g, "Sigmoid"), 1);
    EXPECT_EQ(g->num_nodes(), 3u);
    expect_same_outputs(net, {{"x", filled({3, 5}, 0.2f)}});
}

TEST(CommonSubexpressionElimination, DifferentAttributesOrOutputsStay) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 3});
    AttributeMap a0, a1;
    a0.set("axis", int64_t{0});
    a1.set("axis", int64_t{1});
    std::string s0 = net.add_layer("Softmax", {x}, a0)[0];
    std::string s1 = net.add_layer("Softmax", {x}, a1)[0];
    net.mark_output(net.add_layer("Add", {s0, s1}, {}, 1, "y")[0]);
    // Two identical nodes that are both graph outputs keep their names.
    net.mark_output(net.add_layer("Relu", {x}, {}, 1, "r1")[0]);
    net.mark_output(net.add_layer("Relu", {x}, {}, 1, "r2")[0]);
    bool changed = true;
    auto g = run_pass(net, &common_subexpression_elimination, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(g->num_nodes(), 5u);
}

TEST(CommonSubexpressionElimination, MergesIdenticalSmallConstantsThenTheirUsers) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 4});
    std::string a = net.add_layer("Add", {x, net.add_constant("c1", filled({4}, 0.5f))})[0];
    std::string b = net.add_layer("Add", {x, net.add_constant("c2", filled({4}, 0.5f))})[0];
    std::string c = net.add_layer("Add", {x, net.add_constant("c3", filled({4}, 0.6f))})[0];  // other values
    net.mark_output(net.add_layer("Mul", {net.add_layer("Mul", {a, b})[0], c}, {}, 1, "y")[0]);
    auto g = run_pass(net, &common_subexpression_elimination);
    EXPECT_EQ(count_op(*g, "Add"), 2) << g->to_text();
    EXPECT_EQ(count_op(*g, "Mul"), 2);
    expect_same_outputs(net, {{"x", filled({2, 4}, 0.8f)}});
}

TEST(CommonSubexpressionElimination, LargeConstantsAreNotCompared) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 2048});  // 8 KiB constants
    std::string a = net.add_layer("Add", {x, net.add_constant("c1", filled({2048}, 0.5f))})[0];
    std::string b = net.add_layer("Add", {x, net.add_constant("c2", filled({2048}, 0.5f))})[0];
    net.mark_output(net.add_layer("Mul", {a, b}, {}, 1, "y")[0]);
    bool changed = true;
    auto g = run_pass(net, &common_subexpression_elimination, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Add"), 2);
}

}  // namespace kiln::passes::test

// transpose_optimization: Transpose pairs cancel or merge, Reshape pairs merge, Transposes sink through unary ops.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

std::string transpose(NetworkDefinition& net, const std::string& x, std::vector<int64_t> perm,
                      const std::string& name = "") {
    AttributeMap a;
    if (!perm.empty()) a.set("perm", perm);
    return net.add_layer("Transpose", {x}, a, 1, name)[0];
}

}  // namespace

TEST(TransposeOptimization, InversePairCancels) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 3, 4, 5});
    std::string t = transpose(net, x, {0, 2, 3, 1});  // NCHW -> NHWC
    t = transpose(net, t, {0, 3, 1, 2});              // and back
    net.mark_output(net.add_layer("Relu", {t})[0]);
    bool changed = false;
    auto g = run_pass(net, &transpose_optimization, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->nodes()[0]->input(0)->name, "x");
    expect_same_outputs(net, {{"x", filled({2, 3, 4, 5}, 0.3f)}});
}

TEST(TransposeOptimization, PairMergesIntoOne) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3, 4});
    std::string t = transpose(net, x, {1, 0, 2}, "t1");
    net.mark_output(transpose(net, t, {}, "t2"));  // no perm: reverse -> x.dims[1,0,2][2,1,0] = x dims [2,0,1]
    auto g = run_pass(net, &transpose_optimization);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = g->nodes()[0];
    EXPECT_EQ(n->attrs.get_ints("perm"), (std::vector<int64_t>{2, 0, 1}));
    EXPECT_EQ(n->input(0)->name, "x");
    EXPECT_EQ(n->fused_from, (std::vector<std::string>{"t2", "t1"}));
    EXPECT_EQ(shape_str(n->outputs[0]->dims), "4x2x3");
    expect_same_outputs(net, {{"x", filled({2, 3, 4}, 0.3f)}});
}

TEST(TransposeOptimization, InnerTransposeWithOtherReadersStays) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3});
    std::string t = transpose(net, x, {1, 0});
    net.mark_output(net.add_layer("Relu", {t})[0]);
    net.mark_output(net.add_layer("Sigmoid", {transpose(net, t, {1, 0})})[0]);
    auto g = run_pass(net, &transpose_optimization);
    EXPECT_EQ(count_op(*g, "Transpose"), 1);
    expect_same_outputs(net, {{"x", filled({2, 3}, 0.3f)}});
}

TEST(TransposeOptimization, ReshapePairMerges) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 6, 4});
    std::string r = net.add_layer("Reshape", {x, net.add_constant("s1", ints({0, 3, 2, 4}))}, {}, 1, "r1")[0];
    r = net.add_layer("Reshape", {r, net.add_constant("s2", ints({-1, 8}))}, {}, 1, "r2")[0];
    net.mark_output(r);
    auto g = run_pass(net, &transpose_optimization);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = g->nodes()[0];
    EXPECT_EQ(n->input(0)->name, "x");
    EXPECT_EQ(n->input(1)->constant->to_i64_vector(), (std::vector<int64_t>{-1, 8}));
    EXPECT_EQ(n->fused_from, (std::vector<std::string>{"r2", "r1"}));
    expect_same_outputs(net, {{"x", filled({2, 6, 4}, 0.3f)}});
}

TEST(TransposeOptimization, ReshapePairWithZeroUsesTheStaticShape) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 6, 4});
    std::string r = net.add_layer("Reshape", {x, net.add_constant("s1", ints({4, 3, 4}))})[0];
    r = net.add_layer("Reshape", {r, net.add_constant("s2", ints({0, -1}))})[0];  // 0 = the inner output's dim 0
    net.mark_output(r);
    auto g = run_pass(net, &transpose_optimization);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->nodes()[0]->input(1)->constant->to_i64_vector(), (std::vector<int64_t>{4, 12}));
    expect_same_outputs(net, {{"x", filled({2, 6, 4}, 0.3f)}});

    NetworkDefinition dyn;  // symbolic dims and a 0: left alone
    std::string y = dyn.add_input("y", DataType::kFloat32, {Dim("b"), 6, 4});
    std::string s = dyn.add_layer("Reshape", {y, dyn.add_constant("s1", ints({0, 3, 8}))})[0];
    dyn.mark_output(dyn.add_layer("Reshape", {s, dyn.add_constant("s2", ints({0, -1}))})[0]);
    bool changed = true;
    auto h = run_pass(dyn, &transpose_optimization, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(h->num_nodes(), 2u);
}

TEST(TransposeOptimization, SinksThroughUnaryChain) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3, 4});
    std::string t = transpose(net, x, {2, 0, 1});
    t = net.add_layer("Relu", {t})[0];
    t = net.add_layer("Tanh", {t}, {}, 1, "tanh")[0];
    net.mark_output(transpose(net, t, {1, 2, 0}));
    auto g = run_pass(net, &transpose_optimization);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    ASSERT_EQ(g->num_nodes(), 2u);
    EXPECT_EQ(g->outputs()[0]->name, net.output_names()[0]);
    EXPECT_EQ(g->outputs()[0]->producer->name, "tanh");
    EXPECT_EQ(shape_str(g->outputs()[0]->dims), "2x3x4");
    expect_same_outputs(net, {{"x", filled({2, 3, 4}, 0.3f)}});
}

TEST(TransposeOptimization, NoSinkWhenPermsDoNotCancel) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3, 4});
    std::string t = net.add_layer("Relu", {transpose(net, x, {2, 0, 1})})[0];
    net.mark_output(transpose(net, t, {2, 0, 1}));
    bool changed = true;
    auto g = run_pass(net, &transpose_optimization, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(g->num_nodes(), 3u);
}

TEST(TransposeOptimization, TransposeMovingOnlyUnitDimsBecomesReshape) {
    // torchvision's nn.MultiheadAttention at batch 1: [1, S, E] -> [S, 1, E] moves no data
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 5, 8, 1});
    net.mark_output(net.add_layer("Relu", {transpose(net, x, {1, 3, 0, 2})})[0]);
    net.mark_output(net.add_layer("Sigmoid", {transpose(net, x, {0, 2, 1, 3})})[0]);  // 5 and 8 swap: stays
    auto g = run_pass(net, &transpose_optimization);
    EXPECT_EQ(count_op(*g, "Transpose"), 1);
    EXPECT_EQ(count_op(*g, "Reshape"), 1);
    for (const ir::Node* n : g->nodes())
        if (n->op_type == "Reshape") EXPECT_EQ(shape_str(n->outputs[0]->dims), "5x1x1x8");
    expect_same_outputs(net, {{"x", filled({1, 5, 8, 1}, 0.3f)}});
}

TEST(TransposeOptimization, UnitTransposeWithSymbolicDimsStays) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 1, 8});
    net.mark_output(net.add_layer("Relu", {transpose(net, x, {1, 0, 2})})[0]);
    bool changed = true;
    auto g = run_pass(net, &transpose_optimization, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 1);
}

}  // namespace kiln::passes::test

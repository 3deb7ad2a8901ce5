// transpose_optimization: Transpose pairs cancel or merge, Reshape pairs merge, Transposes sink through unary ops,
// Transposes that keep the last axis and Reshapes that keep the last dim move below row-wise ops to their partner.
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

TEST(TransposeOptimization, IdentityPairAtAGraphOutputCancels) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3});
    std::string r = net.add_layer("Relu", {x}, {}, 1, "relu")[0];
    net.mark_output(transpose(net, transpose(net, r, {1, 0}), {1, 0}));
    auto g = run_pass(net, &transpose_optimization);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->outputs()[0]->name, net.output_names()[0]);  // the output keeps its name
    EXPECT_EQ(g->outputs()[0]->producer->name, "relu");
    expect_same_outputs(net, {{"x", filled({2, 3}, 0.3f)}});
}

// MatMul(Transpose(x, p), W) == Transpose(MatMul(x, W), p) when p keeps the last axis: the Transpose moves below the
// projection, its bias, a bias-like Mul and an activation, and cancels with the inverse one
TEST(TransposeOptimization, TransposeMovesBelowRowWiseOpsAndCancels) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3, 8});
    std::string t = transpose(net, x, {1, 0, 2});  // [3, 2, 8]
    t = net.add_layer("MatMul", {t, net.add_constant("w", filled({8, 6}, 1.f, 0.3f))}, {}, 1, "mm")[0];
    t = net.add_layer("Add", {net.add_constant("b", filled({6}, 2.f)), t})[0];
    t = net.add_layer("Mul", {t, net.add_constant("g", filled({1, 1, 6}, 3.f))})[0];
    t = net.add_layer("Relu", {t})[0];
    net.mark_output(net.add_layer("Sigmoid", {transpose(net, t, {1, 0, 2})})[0]);
    bool changed = false;
    auto g = run_pass(net, &transpose_optimization, &changed);
    EXPECT_TRUE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    EXPECT_EQ(g->nodes().size(), 5u);
    for (const ir::Node* n : g->nodes())
        if (n->name == "mm") EXPECT_EQ(n->input(0)->name, "x");
    EXPECT_EQ(shape_str(g->outputs()[0]->dims), "2x3x6");
    for (const char* backend : {"cpu", "reference"})
        expect_same_outputs(net, {{"x", filled({2, 3, 8}, 0.3f)}}, 3, backend);
}

TEST(TransposeOptimization, TransposeMovingTheLastAxisStaysAboveTheMatMul) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3, 4});
    std::string t = transpose(net, x, {0, 2, 1});  // [2, 4, 3]: rows are columns of x
    t = net.add_layer("MatMul", {t, net.add_constant("w", filled({3, 5}, 1.f))})[0];
    net.mark_output(net.add_layer("Relu", {transpose(net, t, {0, 2, 1})})[0]);
    // the last axis stays, but the bias varies along a moved axis: not row-wise
    std::string u = transpose(net, x, {1, 0, 2});  // [3, 2, 4]
    u = net.add_layer("Add", {u, net.add_constant("b2", filled({2, 4}, 2.f))})[0];
    net.mark_output(net.add_layer("Relu", {transpose(net, u, {1, 0, 2})})[0]);
    // a computed B
    std::string v = transpose(net, x, {1, 0, 2});
    v = net.add_layer("MatMul", {v, net.add_input("w_in", DataType::kFloat32, {4, 4})})[0];
    net.mark_output(net.add_layer("Relu", {transpose(net, v, {1, 0, 2})})[0]);
    bool changed = true;
    auto g = run_pass(net, &transpose_optimization, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 6);
}

// MatMul(Reshape(x, [..., K]), W) == Reshape(MatMul(x, W), [..., N]): the flattening Reshape moves below the
// projection and its bias, meets the unflattening one, and both go
TEST(TransposeOptimization, ReshapeMovesBelowRowWiseOpsAndCancels) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 2, 8});
    std::string r = net.add_layer("Reshape", {x, net.add_constant("s1", ints({6, 8}))})[0];
    r = net.add_layer("MatMul", {r, net.add_constant("w", filled({8, 5}, 1.f, 0.3f))}, {}, 1, "mm")[0];
    r = net.add_layer("Add", {r, net.add_constant("b", filled({5}, 2.f))})[0];
    r = net.add_layer("Reshape", {r, net.add_constant("s2", ints({3, 2, 5}))})[0];
    net.mark_output(net.add_layer("Relu", {r})[0]);
    auto g = run_pass(net, &transpose_optimization);
    EXPECT_EQ(count_op(*g, "Reshape"), 0);
    EXPECT_EQ(g->nodes().size(), 3u);
    for (const ir::Node* n : g->nodes())
        if (n->name == "mm") EXPECT_EQ(shape_str(n->outputs[0]->dims), "3x2x5");
    for (const char* backend : {"cpu", "reference"})
        expect_same_outputs(net, {{"x", filled({3, 2, 8}, 0.3f)}}, 3, backend);

    NetworkDefinition other;  // the Reshape regroups the last dim: stays
    std::string y = other.add_input("y", DataType::kFloat32, {3, 2, 8});
    std::string q = other.add_layer("Reshape", {y, other.add_constant("s1", ints({3, 4, 4}))})[0];
    q = other.add_layer("MatMul", {q, other.add_constant("w", filled({4, 4}, 1.f))})[0];
    other.mark_output(other.add_layer("Reshape", {q, other.add_constant("s2", ints({3, 2, 8}))})[0]);
    bool changed = true;
    auto h = run_pass(other, &transpose_optimization, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*h, "Reshape"), 2);
}

}  // namespace kiln::passes::test

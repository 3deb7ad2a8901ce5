// fuse_elementwise: chains of float32 elementwise ops become one FusedElementwise node with a postfix program.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

const ir::Node* only_fused(const ir::Graph& g) { return only_node(g, "FusedElementwise"); }

}  // namespace

// y = sigmoid(x * 0.5 + b) * x - c, with b [C] and c [1, C, 1] broadcast against x [N, 2, C].
TEST(FuseElementwise, SyntheticChainWithBroadcasting) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 2, 5});
    std::string b = net.add_constant("b", filled({5}, 0.3f));
    std::string c = net.add_input("c", DataType::kFloat32, {1, 2, 1});
    std::string t = net.add_layer("Mul", {x, scalar(net, "half", 0.5f)}, {}, 1, "mul0")[0];
    t = net.add_layer("Add", {t, b}, {}, 1, "add")[0];
    t = net.add_layer("Sigmoid", {t}, {}, 1, "sig")[0];
    t = net.add_layer("Mul", {t, x}, {}, 1, "mul1")[0];
    net.mark_output(net.add_layer("Sub", {t, c}, {}, 1, "sub")[0]);
    bool changed = false;
    auto g = run_pass(net, &fuse_elementwise, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = only_fused(*g);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->domain, "kiln");
    std::vector<std::string> want = {"in0", "const:0.5", "mul", "in1", "add", "sigmoid", "in0", "mul", "in2", "sub"};
    EXPECT_EQ(n->attrs.get_strings("program"), want);
    ASSERT_EQ(n->inputs.size(), 3u);
    EXPECT_EQ(n->inputs[0]->name, "x");
    EXPECT_EQ(n->inputs[1]->name, "b");
    EXPECT_EQ(n->inputs[2]->name, "c");
    EXPECT_EQ(n->fused_from, (std::vector<std::string>{"mul0", "add", "sig", "mul1", "sub"}));
    EXPECT_EQ(n->outputs[0]->name, net.output_names()[0]);
    EXPECT_EQ(shape_str(n->outputs[0]->dims), "batchx2x5");
    std::map<std::string, Tensor> feeds = {{"x", filled({3, 2, 5}, 0.4f, 2.f)}, {"c", filled({1, 2, 1}, 1.3f)}};
    expect_same_outputs(net, feeds);
    EXPECT_EQ(layer_ops(net, 3), (std::vector<std::string>{"FusedElementwise"}));
}

// Every supported op once, a shared interior value (read twice: stays a separate tree) and a graph output in the
// middle of a chain (ends a tree).
TEST(FuseElementwise, AllOpsAndTreeBoundaries) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4, 6});
    std::string y = net.add_input("y", DataType::kFloat32, {6});
    std::string t = net.add_layer("Abs", {x})[0];
    t = net.add_layer("Add", {t, scalar(net, "one", 1.f)})[0];
    t = net.add_layer("Sqrt", {t})[0];
    t = net.add_layer("Log", {t})[0];
    t = net.add_layer("Exp", {t})[0];
    t = net.add_layer("Pow", {t, scalar(net, "two", 2.f)})[0];
    t = net.add_layer("Reciprocal", {t})[0];
    t = net.add_layer("Div", {t, y})[0];
    t = net.add_layer("Max", {t, x, y})[0];
    std::string shared = net.add_layer("Neg", {t})[0];  // read twice below
    AttributeMap leaky;
    leaky.set("alpha", 0.2f);
    std::string u = net.add_layer("LeakyRelu", {shared}, leaky)[0];
    u = net.add_layer("Tanh", {u})[0];
    net.mark_output(u);  // an output ends the tree: the Erf chain below reads it as an input
    std::string v = net.add_layer("Erf", {u})[0];
    v = net.add_layer("Min", {v, shared})[0];
    v = net.add_layer("Clip", {v, scalar(net, "lo", -0.5f), scalar(net, "hi", 0.75f)})[0];
    v = net.add_layer("Relu", {v})[0];
    net.mark_output(net.add_layer("Sigmoid", {v})[0]);
    auto g = run_pass(net, &fuse_elementwise);
    EXPECT_EQ(count_op(*g, "FusedElementwise"), 3);  // ...Neg | LeakyRelu, Tanh | Erf, Min, Clip, Relu, Sigmoid
    EXPECT_EQ(g->num_nodes(), 3u);
    for (const ir::Node* n : g->nodes()) {
        std::vector<std::string> p = n->attrs.get_strings("program");
        if (p.back() == "sigmoid") {
            EXPECT_EQ(p, (std::vector<std::string>{"in0", "erf", "in1", "min", "clip:-0.5:0.75", "relu", "sigmoid"}));
        }
        if (p.back() == "tanh") {
            EXPECT_EQ(p, (std::vector<std::string>{"in0", "leaky_relu:0.200000003", "tanh"}));
        }
    }
    expect_same_outputs(net, {{"x", filled({4, 6}, 0.4f, 3.f)}, {"y", filled({6}, 0.9f, 1.f, 2.5f)}});
}

// One op is not a chain (a Cast alone included); nor is a Pow with a computed exponent fused.
TEST(FuseElementwise, LeavesShortAndUnsupportedChainsAlone) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3});
    std::string m = net.add_input("m", DataType::kInt64, {2, 3});
    AttributeMap to_float;
    to_float.set("to", int64_t{1});
    std::string mf = net.add_layer("Cast", {m}, to_float)[0];
    std::string p = net.add_layer("Pow", {x, mf})[0];
    net.mark_output(net.add_layer("Relu", {p})[0]);
    bool changed = true;
    auto g = run_pass(net, &fuse_elementwise, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(g->num_nodes(), 3u);
}

// BERT's mask: Cast -> Sub(1, m) -> Mul(-10000); the Cast to float32 is a load of the int64 input (no token), so all
// three fuse. A one-element constant of higher rank than the other inputs stays an input (inlining it would drop the
// leading 1 it adds to the output shape).
TEST(FuseElementwise, BertMaskAndRankOfScalarConstants) {
    NetworkDefinition net;
    std::string m = net.add_input("m", DataType::kInt64, {1, 8});
    AttributeMap to_float;
    to_float.set("to", int64_t{1});
    std::string mf = net.add_layer("Cast", {m}, to_float)[0];
    std::string inv = net.add_layer("Sub", {scalar(net, "one", 1.f), mf})[0];
    std::string big = net.add_constant("neg", filled({1, 1, 1}, 0.f, 0.f, -10000.f));
    net.mark_output(net.add_layer("Mul", {inv, big})[0]);
    auto g = run_pass(net, &fuse_elementwise);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = only_fused(*g);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->attrs.get_strings("program"), (std::vector<std::string>{"const:1", "in0", "sub", "in1", "mul"}));
    EXPECT_EQ(n->inputs[0]->name, "m");
    EXPECT_FALSE(n->attrs.has("out_dtype"));
    EXPECT_EQ(shape_str(n->outputs[0]->dims), "1x1x8");
    Tensor mask(DataType::kInt64, {1, 8});
    for (int i = 0; i < 8; ++i) mask.data<int64_t>()[i] = i % 3 != 0;
    expect_same_outputs(net, {{"m", mask}});
}

// Longer than one 256-element chunk and broadcast runs of many lengths: numbers only.
TEST(FuseElementwise, LargeBroadcastNumbers) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 1, 37, 41});
    std::string a = net.add_input("a", DataType::kFloat32, {5, 1, 1});
    std::string b = net.add_constant("b", filled({41}, 0.2f));
    std::string t = net.add_layer("Mul", {x, a})[0];
    t = net.add_layer("Add", {t, b})[0];
    t = net.add_layer("Tanh", {t})[0];
    net.mark_output(net.add_layer("Sub", {t, a})[0]);
    EXPECT_EQ(layer_ops(net, 3), (std::vector<std::string>{"FusedElementwise"}));
    expect_same_outputs(net, {{"x", filled({3, 1, 37, 41}, 0.1f, 2.f)}, {"a", filled({5, 1, 1}, 0.7f)}});
}

}  // namespace kiln::passes::test

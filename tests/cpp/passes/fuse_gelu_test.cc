// fuse_gelu: the erf and tanh forms of GELU, in different Mul associations, become one Gelu.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

// 0.5 * x * (1 + erf(x / sqrt2)); `assoc` picks how the two Muls are written.
std::string erf_gelu(NetworkDefinition& net, const std::string& x, int assoc) {
    std::string d = net.add_layer("Div", {x, scalar(net, "sqrt2", 1.4142135f)})[0];
    std::string e = net.add_layer("Erf", {d})[0];
    std::string one_plus = net.add_layer("Add", {e, scalar(net, "one", 1.f)})[0];
    std::string half = scalar(net, "half", 0.5f);
    if (assoc == 0) return net.add_layer("Mul", {net.add_layer("Mul", {x, half})[0], one_plus})[0];
    if (assoc == 1) return net.add_layer("Mul", {net.add_layer("Mul", {x, one_plus})[0], half})[0];
    return net.add_layer("Mul", {net.add_layer("Mul", {half, one_plus})[0], x})[0];
}

}  // namespace

class FuseGeluErf : public ::testing::TestWithParam<int> {};

TEST_P(FuseGeluErf, BecomesOneGelu) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 8});
    net.mark_output(erf_gelu(net, x, GetParam()));
    bool changed = false;
    auto g = run_pass(net, &fuse_gelu, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->nodes()[0]->op_type, "Gelu");
    EXPECT_EQ(g->nodes()[0]->fused_from.size(), 5u);
    expect_same_outputs(net, {{"x", filled({3, 8}, 0.2f, 3.f)}}, 2);
}

INSTANTIATE_TEST_SUITE_P(Associations, FuseGeluErf, ::testing::Values(0, 1, 2));

TEST(FuseGelu, TanhForm) {
    // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4, 8});
    std::string cube = net.add_layer("Pow", {x, scalar(net, "three", 3.f)})[0];
    std::string c = net.add_layer("Mul", {cube, scalar(net, "k", 0.044715f)})[0];
    std::string inner = net.add_layer("Add", {x, c})[0];
    std::string s = net.add_layer("Mul", {inner, scalar(net, "s2pi", 0.7978845608f)})[0];
    std::string t = net.add_layer("Tanh", {s})[0];
    std::string one_plus = net.add_layer("Add", {t, scalar(net, "one", 1.f)})[0];
    std::string hx = net.add_layer("Mul", {x, scalar(net, "half", 0.5f)})[0];
    net.mark_output(net.add_layer("Mul", {hx, one_plus})[0]);
    auto g = run_pass(net, &fuse_gelu);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->nodes()[0]->attrs.get_string("approximate", ""), "tanh");
    expect_same_outputs(net, {{"x", filled({4, 8}, 0.7f, 4.f)}}, 2);
}

TEST(FuseGelu, LeavesOtherUsesAlone) {
    // the Erf result is also a graph output: fusing would lose it
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    std::string y = erf_gelu(net, x, 0);
    net.mark_output(y);
    std::string erf_out;
    for (const ir::Node* n : net.graph().nodes())
        if (n->op_type == "Erf") erf_out = n->outputs[0]->name;
    net.mark_output(erf_out);
    bool changed = true;
    run_pass(net, &fuse_gelu, &changed);
    EXPECT_FALSE(changed);
}

TEST(FuseGelu, WrongConstantIsNotGelu) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    std::string d = net.add_layer("Div", {x, scalar(net, "c", 2.f)})[0];  // not sqrt(2)
    std::string e = net.add_layer("Erf", {d})[0];
    std::string one_plus = net.add_layer("Add", {e, scalar(net, "one", 1.f)})[0];
    net.mark_output(net.add_layer("Mul", {net.add_layer("Mul", {x, scalar(net, "half", 0.5f)})[0], one_plus})[0]);
    bool changed = true;
    run_pass(net, &fuse_gelu, &changed);
    EXPECT_FALSE(changed);
}

}  // namespace kiln::passes::test

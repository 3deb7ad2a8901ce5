// identity_elimination: pass-through nodes disappear; graph output names stay.
#include <gtest/gtest.h>

#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {
AttributeMap attr_int(const std::string& k, int64_t v) {
    AttributeMap a;
    a.set(k, v);
    return a;
}
AttributeMap attr_ints(const std::string& k, std::vector<int64_t> v) {
    AttributeMap a;
    a.set(k, std::move(v));
    return a;
}
}  // namespace

TEST(IdentityElimination, RemovesEveryKindOfNoOp) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3});
    std::string t = net.add_layer("Relu", {x})[0];
    t = net.add_layer("Identity", {t})[0];
    t = net.add_layer("Dropout", {t})[0];
    t = net.add_layer("Cast", {t}, attr_int("to", 1))[0];
    t = net.add_layer("Reshape", {t, net.add_constant("s", ints({2, 3}))})[0];
    t = net.add_layer("Expand", {t, net.add_constant("e", ints({1, 3}))})[0];
    t = net.add_layer("Tile", {t, net.add_constant("rep", ints({1, 1}))})[0];
    t = net.add_layer("Transpose", {t}, attr_ints("perm", {0, 1}))[0];
    net.mark_output(net.add_layer("Sigmoid", {t}, {}, 1, "y")[0]);
    auto g = run_pass(net, &identity_elimination);
    EXPECT_EQ(g->num_nodes(), 2u) << g->to_text();
    EXPECT_EQ(count_op(*g, "Relu"), 1);
    EXPECT_EQ(count_op(*g, "Sigmoid"), 1);
    expect_same_outputs(net, {{"x", filled({2, 3}, 0.3f)}});
}

TEST(IdentityElimination, KeepsRealWork) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3});
    std::string t = net.add_layer("Cast", {x}, attr_int("to", 7))[0];  // float -> int64
    std::string r = net.add_layer("Reshape", {x, net.add_constant("s", ints({3, 2}))})[0];
    std::string e = net.add_layer("Expand", {x, net.add_constant("e", ints({2, 2, 3}))})[0];
    std::string p = net.add_layer("Transpose", {x}, attr_ints("perm", {1, 0}))[0];
    for (const std::string& o : {t, r, e, p}) net.mark_output(o);
    bool changed = true;
    auto g = run_pass(net, &identity_elimination, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(g->num_nodes(), 4u);
}

TEST(IdentityElimination, GraphOutputNameIsKept) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    std::string r = net.add_layer("Relu", {x}, {}, 1, "relu")[0];
    std::string y = net.add_layer("Identity", {r}, {}, 1, "id")[0];
    net.mark_output(y);
    auto g = run_pass(net, &identity_elimination);
    ASSERT_EQ(g->num_nodes(), 1u);
    EXPECT_EQ(g->nodes()[0]->op_type, "Relu");
    EXPECT_EQ(g->outputs()[0]->name, y);
    EXPECT_EQ(g->nodes()[0]->outputs[0]->name, y);
    expect_same_outputs(net, {{"x", filled({4}, 0.1f)}});
}

TEST(IdentityElimination, IdentityFromInputToOutputStays) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    net.mark_output(net.add_layer("Identity", {x})[0]);
    net.mark_output(net.add_layer("Identity", {net.add_constant("c", filled({4}, 0.f))})[0]);
    bool changed = true;
    auto g = run_pass(net, &identity_elimination, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(g->num_nodes(), 2u);
}

TEST(IdentityElimination, DropoutWithUsedMaskStays) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    auto outs = net.add_layer("Dropout", {x}, {}, 2);
    net.mark_output(net.add_layer("Relu", {outs[0]})[0]);
    net.mark_output(outs[1]);
    bool changed = true;
    auto g = run_pass(net, &identity_elimination, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Dropout"), 1);
}

}  // namespace kiln::passes::test

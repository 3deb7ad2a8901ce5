// fuse_attention: MatMul -> scale -> mask -> Softmax -> MatMul becomes one Attention node.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

TEST(FuseAttention, AdditiveMaskAndKeyTransposeOfLastTwoAxes) {
    NetworkDefinition net;
    std::string q = net.add_input("q", DataType::kFloat32, {2, 3, 5, 4});
    std::string k = net.add_input("k", DataType::kFloat32, {2, 3, 5, 4});
    std::string v = net.add_input("v", DataType::kFloat32, {2, 3, 5, 6});
    std::string mask = net.add_input("mask", DataType::kFloat32, {2, 1, 1, 5});
    std::string kt = net.add_layer("Transpose", {k}, perm({0, 1, 3, 2}))[0];
    std::string s = net.add_layer("MatMul", {q, kt})[0];
    std::string sc = net.add_layer("Div", {s, scalar(net, "c", 2.f)})[0];
    std::string m = net.add_layer("Add", {sc, mask})[0];
    AttributeMap ax;
    ax.set("axis", int64_t{-1});
    std::string p = net.add_layer("Softmax", {m}, ax)[0];
    net.mark_output(net.add_layer("MatMul", {p, v})[0]);
    bool changed = false;
    auto g = run_pass(net, &fuse_attention, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* a = g->nodes()[0];
    EXPECT_EQ(a->op_type, "Attention");
    EXPECT_EQ(a->domain, "kiln");
    EXPECT_EQ(a->attrs.get_int("k_transposed", -1), 0);
    EXPECT_FLOAT_EQ(a->attrs.get_float("scale", 0), 0.5f);
    EXPECT_EQ(a->inputs.size(), 4u);
    EXPECT_EQ(a->fused_from.size(), 6u);
    Tensor mk = filled({2, 1, 1, 5}, 0.f, 0.f);
    mk.data<float>()[4] = -10000.f;  // mask the last key of batch 0
    expect_same_outputs(net, {{"q", filled({2, 3, 5, 4}, 0.1f)}, {"k", filled({2, 3, 5, 4}, 0.5f)},
                              {"v", filled({2, 3, 5, 6}, 0.9f)}, {"mask", mk}});
}

TEST(FuseAttention, BooleanCausalMaskWithPreTransposedKey) {
    // GPT-2 style: K given as [b, h, d, s] (PyTorch's Transpose(0,2,3,1)), Where(mask, s, -big), scale by Mul
    NetworkDefinition net;
    std::string q = net.add_input("q", DataType::kFloat32, {1, 2, 4, 8});
    std::string kt = net.add_input("kt", DataType::kFloat32, {1, 2, 8, 4});
    std::string v = net.add_input("v", DataType::kFloat32, {1, 2, 4, 8});
    Tensor causal(DataType::kBool, {1, 1, 4, 4});
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) causal.data<uint8_t>()[i * 4 + j] = j <= i;
    std::string s = net.add_layer("MatMul", {q, kt})[0];
    std::string sc = net.add_layer("Mul", {scalar(net, "c", 0.35355339f), s})[0];
    std::string w = net.add_layer("Where", {net.add_constant("causal", causal), sc, scalar(net, "neg", -3.4e38f)})[0];
    std::string p = net.add_layer("Softmax", {w})[0];
    net.mark_output(net.add_layer("MatMul", {p, v})[0]);
    auto g = run_pass(net, &fuse_attention);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* a = g->nodes()[0];
    EXPECT_EQ(a->attrs.get_int("k_transposed", -1), 1);
    EXPECT_EQ(a->attrs.get_int("mask_is_bool", 0), 1);
    expect_same_outputs(net, {{"q", filled({1, 2, 4, 8}, 0.3f)}, {"kt", filled({1, 2, 8, 4}, 0.6f)},
                              {"v", filled({1, 2, 4, 8}, 1.2f)}});
}

TEST(FuseAttention, ScalarMulsOnQueryAndKeyFoldIntoTheScale) {
    // torch's scaled_dot_product_attention export: softmax((q * a) @ (Transpose(k) * b)) @ v, a = b = sqrt(1/sqrt(d));
    // a Mul by a non-scalar stays
    for (bool scalar_b : {true, false}) {
        NetworkDefinition net;
        std::string q = net.add_input("q", DataType::kFloat32, {2, 3, 5, 4});
        std::string k = net.add_input("k", DataType::kFloat32, {2, 3, 5, 4});
        std::string v = net.add_input("v", DataType::kFloat32, {2, 3, 5, 6});
        std::string qs = net.add_layer("Mul", {q, scalar(net, "a", 0.8f)})[0];
        std::string kt = net.add_layer("Transpose", {k}, perm({0, 1, 3, 2}))[0];
        std::string b = scalar_b ? scalar(net, "b", 0.5f) : net.add_constant("b", filled({4, 1}, 1.f));
        std::string ks = net.add_layer("Mul", {b, kt})[0];
        std::string p = net.add_layer("Softmax", {net.add_layer("MatMul", {qs, ks})[0]})[0];
        net.mark_output(net.add_layer("MatMul", {p, v})[0]);
        auto g = run_pass(net, &fuse_attention);
        ASSERT_EQ(count_op(*g, "Attention"), 1);
        const ir::Node* a = g->nodes().back();
        EXPECT_EQ(count_op(*g, "Mul"), scalar_b ? 0 : 1);
        EXPECT_FLOAT_EQ(a->attrs.get_float("scale", 0), scalar_b ? 0.4f : 0.8f);
        EXPECT_EQ(a->attrs.get_int("k_transposed", -1), scalar_b ? 0 : 1);
        expect_same_outputs(net, {{"q", filled({2, 3, 5, 4}, 0.1f)}, {"k", filled({2, 3, 5, 4}, 0.5f)},
                                  {"v", filled({2, 3, 5, 6}, 0.9f)}},
                            3, "reference");
    }
}

TEST(FuseAttention, SoftmaxNotOverLastAxisIsLeftAlone) {
    NetworkDefinition net;
    std::string q = net.add_input("q", DataType::kFloat32, {2, 4, 4});
    std::string k = net.add_input("k", DataType::kFloat32, {2, 4, 4});
    std::string s = net.add_layer("MatMul", {q, k})[0];
    AttributeMap ax;
    ax.set("axis", int64_t{1});
    std::string p = net.add_layer("Softmax", {s}, ax)[0];
    net.mark_output(net.add_layer("MatMul", {p, q})[0]);
    bool changed = true;
    run_pass(net, &fuse_attention, &changed);
    EXPECT_FALSE(changed);
}

}  // namespace kiln::passes::test

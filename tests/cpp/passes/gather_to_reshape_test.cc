// gather_to_reshape: Gather with the indices 0..N-1 over an axis of size N (leading dims 1) -> Reshape.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

Tensor arange(Shape shape, int64_t start = 0) {
    Tensor t(DataType::kInt64, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = start + i;
    return t;
}

AttributeMap axis(int64_t a) {
    AttributeMap m;
    m.set("axis", a);
    return m;
}

}  // namespace

// HF's mask: data bool [B*S, 1] gathered with arange(B*S) shaped [B, 1, 1, S] -> bool [B, 1, 1, S, 1].
TEST(GatherToReshape, IdentityIndexBecomesReshape) {
    for (int64_t batch : {1, 2}) {
        NetworkDefinition net;
        std::string x = net.add_input("x", DataType::kBool, {batch * 8, 1});
        std::string idx = net.add_constant("idx", arange({batch, 1, 1, 8}));
        net.mark_output(net.add_layer("Gather", {x, idx}, {}, 1, "gather")[0]);
        bool changed = false;
        auto g = run_pass(net, &gather_to_reshape, &changed);
        EXPECT_TRUE(changed);
        ASSERT_EQ(g->num_nodes(), 1u);
        const ir::Node* n = g->nodes()[0];
        EXPECT_EQ(n->op_type, "Reshape");
        ASSERT_TRUE(n->inputs[1]->is_constant());
        EXPECT_EQ(n->inputs[1]->constant->to_i64_vector(), (std::vector<int64_t>{batch, 1, 1, 8, 1}));
        EXPECT_EQ(shape_str(n->outputs[0]->dims), shape_str(SymShape{batch, 1, 1, 8, 1}));
        EXPECT_EQ(n->outputs[0]->name, net.output_names()[0]);
        Tensor xv(DataType::kBool, {batch * 8, 1});
        for (int64_t i = 0; i < xv.numel(); ++i) xv.data<uint8_t>()[i] = i % 3 == 1;
        expect_same_outputs(net, {{"x", xv}}, 1);
    }
}

// Axis 1 with a leading 1 and a symbolic trailing dim (-1 in the shape).
TEST(GatherToReshape, InnerAxisWithLeadingOnes) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 6, Dim("n")});
    std::string idx = net.add_constant("idx", arange({2, 3}));
    net.mark_output(net.add_layer("Gather", {x, idx}, axis(1))[0]);
    auto g = run_pass(net, &gather_to_reshape);
    ASSERT_EQ(count_op(*g, "Reshape"), 1);
    EXPECT_EQ(g->nodes()[0]->inputs[1]->constant->to_i64_vector(), (std::vector<int64_t>{1, 2, 3, -1}));
    EXPECT_EQ(shape_str(g->nodes()[0]->outputs[0]->dims), "1x2x3xn");
    expect_same_outputs(net, {{"x", filled({1, 6, 5}, 0.3f)}}, 1);
}

// Not an identity: another order, a start other than 0, fewer indices than the axis, a leading dim > 1, a computed
// index.
TEST(GatherToReshape, OtherGathersStay) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {4, 3});
    std::string y = net.add_input("y", DataType::kFloat32, {2, 4});
    std::string i = net.add_input("i", DataType::kInt64, {4});
    Tensor perm = arange({4});
    std::swap(perm.data<int64_t>()[1], perm.data<int64_t>()[2]);
    net.mark_output(net.add_layer("Gather", {x, net.add_constant("perm", perm)})[0]);
    net.mark_output(net.add_layer("Gather", {x, net.add_constant("shifted", arange({3}, 1))})[0]);
    net.mark_output(net.add_layer("Gather", {x, net.add_constant("short", arange({3}))})[0]);
    net.mark_output(net.add_layer("Gather", {y, net.add_constant("lead", arange({4}))}, axis(1))[0]);
    net.mark_output(net.add_layer("Gather", {x, i})[0]);
    bool changed = true;
    auto g = run_pass(net, &gather_to_reshape, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "Gather"), 5);
}

}  // namespace kiln::passes::test

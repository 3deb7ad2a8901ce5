// hoist_reshape: reshape chains merge and move above a Cast / Not, so the elementwise ops after them can fuse.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

AttributeMap attr(const std::string& name, int64_t v) {
    AttributeMap m;
    m.set(name, v);
    return m;
}

}  // namespace

// Reshape(Reshape(Flatten(Cast<bool>(m)))) -> Cast<bool>(Reshape(m)): the mask chain of HF transformers after
// gather_to_reshape; with the And + Where after it, fuse_elementwise then makes one node.
TEST(HoistReshape, MaskChainBecomesCastOfReshape) {
    NetworkDefinition net;
    std::string m = net.add_input("m", DataType::kInt64, {2, 8});
    std::string k = net.add_input("k", DataType::kBool, {1, 1, 8, 1});
    std::string t = net.add_layer("Cast", {m}, attr("to", 9), 1, "cast")[0];
    t = net.add_layer("Flatten", {t}, attr("axis", 2), 1, "flatten")[0];  // [16, 1]
    t = net.add_layer("Reshape", {t, net.add_constant("s1", ints({2, 1, 1, 8, 1}))}, {}, 1, "gather")[0];
    t = net.add_layer("Reshape", {t, net.add_constant("s2", ints({2, 1, 1, 8}))}, {}, 1, "reshape")[0];
    t = net.add_layer("And", {k, t}, {}, 1, "and")[0];
    Tensor zero(DataType::kFloat32, {}), lo(DataType::kFloat32, {});
    *lo.data<float>() = -1e9f;
    net.mark_output(net.add_layer("Where", {t, net.add_constant("zero", zero), net.add_constant("lo", lo)})[0]);
    bool changed = false;
    auto g = run_pass(net, &hoist_reshape, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 4u);  // Reshape, Cast, And, Where
    std::vector<std::string> ops;
    for (const ir::Node* n : g->nodes()) ops.push_back(n->op_type);
    EXPECT_EQ(ops, (std::vector<std::string>{"Reshape", "Cast", "And", "Where"}));
    const ir::Node* r = g->nodes()[0];
    EXPECT_EQ(r->inputs[0]->name, "m");
    EXPECT_EQ(r->inputs[1]->constant->to_i64_vector(), (std::vector<int64_t>{2, 1, 1, 8}));
    EXPECT_EQ(r->outputs[0]->dtype, DataType::kInt64);
    EXPECT_EQ(g->nodes()[1]->outputs[0]->dtype, DataType::kBool);
    EXPECT_EQ(shape_str(g->nodes()[1]->outputs[0]->dims), "2x1x1x8");
    Tensor mv(DataType::kInt64, {2, 8});
    for (int i = 0; i < 16; ++i) mv.data<int64_t>()[i] = i % 5 != 0;
    Tensor kv(DataType::kBool, {1, 1, 8, 1});
    for (int i = 0; i < 8; ++i) kv.data<uint8_t>()[i] = i != 3;
    expect_same_outputs(net, {{"m", mv}, {"k", kv}});
    EXPECT_EQ(layer_ops(net, 3), (std::vector<std::string>{"Reshape", "FusedElementwise"}));
}

// Unsqueeze / Squeeze above a Not; a Cast read twice or a graph output stays below its reshape.
TEST(HoistReshape, NotHoistedAndSharedCastStays) {
    NetworkDefinition net;
    std::string b = net.add_input("b", DataType::kBool, {3, 4});
    std::string x = net.add_input("x", DataType::kFloat32, {3, 4});
    std::string n = net.add_layer("Not", {b})[0];
    std::string u = net.add_layer("Unsqueeze", {n, net.add_constant("ax", ints({0}))})[0];  // [1, 3, 4]
    net.mark_output(u);
    std::string c = net.add_layer("Cast", {x}, attr("to", 9))[0];  // read by the Squeeze-free Reshape and Not
    std::string r = net.add_layer("Reshape", {c, net.add_constant("s", ints({12}))})[0];
    net.mark_output(r);
    net.mark_output(net.add_layer("Not", {c})[0]);
    bool changed = false;
    auto g = run_pass(net, &hoist_reshape, &changed);
    EXPECT_TRUE(changed);
    for (const ir::Node* node : g->nodes()) {
        if (node->op_type == "Not" && node->outputs[0]->name == u) {
            ASSERT_NE(node->inputs[0]->producer, nullptr);
            EXPECT_EQ(node->inputs[0]->producer->op_type, "Reshape");  // the Unsqueeze, now a Reshape of b
        }
        if (node->op_type == "Reshape" && node->outputs[0]->name == r) EXPECT_EQ(node->inputs[0]->name, c);
    }
    Tensor bv(DataType::kBool, {3, 4});
    for (int i = 0; i < 12; ++i) bv.data<uint8_t>()[i] = i % 2;
    Tensor xv = filled({3, 4}, 0.1f);
    xv.data<float>()[5] = 0.f;
    expect_same_outputs(net, {{"b", bv}, {"x", xv}});
}

// For cuda a Cast of int64 data stays below its reshape (the backend keeps int tensors on the host); the reshapes
// still merge.
TEST(HoistReshape, CudaKeepsIntCastBelowTheReshape) {
    NetworkDefinition net;
    std::string m = net.add_input("m", DataType::kInt64, {2, 8});
    std::string t = net.add_layer("Cast", {m}, attr("to", 9), 1, "cast")[0];
    t = net.add_layer("Flatten", {t}, attr("axis", 2), 1, "flatten")[0];
    t = net.add_layer("Reshape", {t, net.add_constant("s", ints({2, 1, 1, 8}))}, {}, 1, "reshape")[0];
    net.mark_output(net.add_layer("Not", {t})[0]);
    bool changed = false;
    std::unique_ptr<ir::Graph> g = run_passes_for(net, "cuda", {&hoist_reshape}, &changed);
    EXPECT_TRUE(changed);  // the Flatten + Reshape merge
    std::vector<std::string> ops;
    for (const ir::Node* n : g->nodes()) ops.push_back(n->op_type);
    EXPECT_EQ(ops, (std::vector<std::string>{"Cast", "Reshape", "Not"}));
}

}  // namespace kiln::passes::test

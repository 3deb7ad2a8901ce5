// mark_squeeze_excite: GlobalAveragePool -> FusedConv(act) -> FusedConv(Sigmoid) -> Mul(x, gate) gets a `subgraph`
// attribute on its four nodes; the numbers do not change.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

std::string conv1x1(NetworkDefinition& net, const std::string& x, int64_t cin, int64_t cout, const std::string& name) {
    return net.add_layer("Conv",
                         {x, net.add_constant(name + ".w", filled({cout, cin, 1, 1}, 0.2f, 0.3f)),
                          net.add_constant(name + ".b", filled({cout}, 0.7f, 0.1f))},
                         {}, 1, name)[0];
}

// One SE block on x [N, C, H, W]; returns its output.
std::string se_block(NetworkDefinition& net, const std::string& x, int64_t c, const std::string& p, bool silu) {
    std::string g = net.add_layer("GlobalAveragePool", {x}, {}, 1, p + ".gap")[0];
    std::string h = conv1x1(net, g, c, 2, p + ".reduce");
    h = silu ? net.add_layer("Mul", {h, net.add_layer("Sigmoid", {h})[0]})[0] : net.add_layer("Relu", {h})[0];
    std::string s = net.add_layer("Sigmoid", {conv1x1(net, h, 2, c, p + ".expand")})[0];
    return net.add_layer("Mul", {s, x}, {}, 1, p + ".mul")[0];
}

std::unique_ptr<ir::Graph> fuse_then_mark(const NetworkDefinition& net, bool* changed) {
    auto g = run_pass(net, &fuse_conv_epilogue);
    NullLogger logger;
    PassContext ctx{logger, 3};
    *changed = mark_squeeze_excite(*g, ctx);
    return g;
}

}  // namespace

TEST(MarkSqueezeExcite, MarksTwoBlocks) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 4, 5, 5});
    std::string y = se_block(net, x, 4, "se0", true);
    y = net.add_layer("Relu", {y})[0];
    net.mark_output(se_block(net, y, 4, "se1", false));
    bool changed = false;
    auto g = fuse_then_mark(net, &changed);
    EXPECT_TRUE(changed);
    std::map<std::string, std::vector<std::string>> blocks;  // tag -> op types
    for (const ir::Node* n : g->nodes()) {
        std::string tag = n->attrs.get_string("subgraph", "");
        if (!tag.empty()) blocks[tag].push_back(n->op_type);
    }
    std::vector<std::string> want = {"GlobalAveragePool", "FusedConv", "FusedConv", "Mul"};
    ASSERT_EQ(blocks.size(), 2u);
    EXPECT_EQ(blocks["squeeze_excite:0"], want);
    EXPECT_EQ(blocks["squeeze_excite:1"], want);
    // a second run finds nothing new
    NullLogger logger;
    PassContext ctx{logger, 3};
    EXPECT_FALSE(mark_squeeze_excite(*g, ctx));
    // the reference kernels ignore the attribute: same numbers at -O3, and the layers carry it
    expect_same_outputs(net, {{"x", filled({2, 4, 5, 5}, 0.3f)}});
    NullLogger l2;
    BuilderConfig c;
    int marked = 0;
    for (const LayerInfo& li : Builder(l2).build(net, c)->layers())
        for (const auto& [k, v] : li.attributes) marked += k == "subgraph";
    EXPECT_EQ(marked, 8);
}

TEST(MarkSqueezeExcite, GateOfAnotherTensorIsNotABlock) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {1, 4, 5, 5});
    std::string z = net.add_input("z", DataType::kFloat32, {1, 4, 5, 5});
    std::string g = net.add_layer("GlobalAveragePool", {x})[0];
    std::string h = net.add_layer("Relu", {conv1x1(net, g, 4, 2, "reduce")})[0];
    std::string s = net.add_layer("Sigmoid", {conv1x1(net, h, 2, 4, "expand")})[0];
    net.mark_output(net.add_layer("Mul", {s, z})[0]);  // pools x but scales z
    bool changed = true;
    auto gr = fuse_then_mark(net, &changed);
    EXPECT_FALSE(changed);
}

}  // namespace kiln::passes::test

// fuse_elementwise with Cast, logic, comparison and Where nodes: bool / int leaves and bool outputs.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

AttributeMap cast_to(int64_t onnx_type) {
    AttributeMap a;
    a.set("to", onnx_type);
    return a;
}

const ir::Node* only_fused(const ir::Graph& g) { return only_node(g, "FusedElementwise"); }

Tensor bools(Shape shape, int period) {
    Tensor t(DataType::kBool, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = i % period != 0;
    return t;
}

}  // namespace

// HF transformers' additive mask after hoist_reshape: Where(And(k, Cast<bool>(m)), 0, min) with m int64 [1, 1, 1, S]
// and k a bool constant [1, 1, S, 1] -> one node reading m and k, float32 [1, 1, S, S].
TEST(FuseElementwiseLogic, AttentionMaskChain) {
    NetworkDefinition net;
    std::string m = net.add_input("m", DataType::kInt64, {1, 1, 1, 8});
    std::string k = net.add_constant("k", bools({1, 1, 8, 1}, 3));
    std::string mb = net.add_layer("Cast", {m}, cast_to(9), 1, "cast")[0];
    std::string both = net.add_layer("And", {k, mb}, {}, 1, "and")[0];
    std::string lo = scalar(net, "lo", std::numeric_limits<float>::lowest());
    net.mark_output(net.add_layer("Where", {both, scalar(net, "zero", 0.f), lo}, {}, 1, "where")[0]);
    bool changed = false;
    auto g = run_pass(net, &fuse_elementwise, &changed);
    EXPECT_TRUE(changed);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = only_fused(*g);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->attrs.get_strings("program"),
              (std::vector<std::string>{"in0", "in1", "to_bool", "and", "const:0", "const:-3.40282347e+38", "where"}));
    ASSERT_EQ(n->inputs.size(), 2u);
    EXPECT_EQ(n->inputs[0]->name, "k");
    EXPECT_EQ(n->inputs[1]->name, "m");
    EXPECT_FALSE(n->attrs.has("out_dtype"));
    EXPECT_EQ(n->outputs[0]->dtype, DataType::kFloat32);
    EXPECT_EQ(shape_str(n->outputs[0]->dims), "1x1x8x8");
    EXPECT_EQ(n->fused_from, (std::vector<std::string>{"cast", "and", "where"}));
    Tensor mask(DataType::kInt64, {1, 1, 1, 8});
    for (int i = 0; i < 8; ++i) mask.data<int64_t>()[i] = i < 5 ? 1 : 0;
    mask.data<int64_t>()[2] = int64_t{1} << 40;  // nonzero whatever its float value
    expect_same_outputs(net, {{"m", mask}});
    expect_same_outputs(net, {{"m", mask}}, 3, "reference");
    EXPECT_EQ(layer_ops(net, 3), (std::vector<std::string>{"FusedElementwise"}));
}

// Not(And(Less(x, y), b)) as a graph output: a bool node (out_dtype = 9); comparisons broadcast x [2, 3, 4] against
// y [4]; Or / Not / Equal / GreaterOrEqual / LessOrEqual / Greater on the way (kiln's IR has no Xor op; the
// kernels' `xor` token is checked by the backend tests).
TEST(FuseElementwiseLogic, BoolOutputAndAllLogicOps) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 3, 4});
    std::string y = net.add_input("y", DataType::kFloat32, {4});
    std::string b = net.add_input("b", DataType::kBool, {3, 1});
    std::string lt = net.add_layer("Less", {x, y})[0];
    std::string ge = net.add_layer("GreaterOrEqual", {x, scalar(net, "half", 0.5f)})[0];
    std::string le = net.add_layer("LessOrEqual", {y, scalar(net, "q", -0.25f)})[0];
    std::string gt = net.add_layer("Greater", {x, scalar(net, "nq", -0.5f)})[0];
    std::string t = net.add_layer("And", {lt, b})[0];
    t = net.add_layer("Or", {t, ge})[0];
    t = net.add_layer("And", {t, net.add_layer("Not", {le})[0]})[0];
    t = net.add_layer("Equal", {t, gt})[0];
    net.mark_output(net.add_layer("Not", {t})[0]);
    auto g = run_pass(net, &fuse_elementwise);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = only_fused(*g);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->attrs.get_strings("program"),
              (std::vector<std::string>{"in0", "in1", "lt", "in2", "and", "in0", "const:0.5", "ge", "or", "in1",
                                        "const:-0.25", "le", "not", "and", "in0", "const:-0.5", "gt", "eq", "not"}));
    EXPECT_EQ(n->attrs.get_int("out_dtype", 0), 9);
    EXPECT_EQ(n->outputs[0]->dtype, DataType::kBool);
    std::map<std::string, Tensor> feeds = {
        {"x", filled({2, 3, 4}, 0.4f, 1.f)}, {"y", filled({4}, 1.1f, 0.8f)}, {"b", bools({3, 1}, 2)}};
    expect_same_outputs(net, feeds);
    expect_same_outputs(net, feeds, 3, "reference");
}

// Cast int32 -> float32 is a load; Cast float32 -> bool is `to_bool`; Where picks between computed floats.
TEST(FuseElementwiseLogic, IntCastsAndWhereOfComputedValues) {
    NetworkDefinition net;
    std::string i = net.add_input("i", DataType::kInt32, {5});
    std::string x = net.add_input("x", DataType::kFloat32, {3, 5});
    std::string f = net.add_layer("Cast", {i}, cast_to(1))[0];
    std::string p = net.add_layer("Mul", {f, x})[0];
    std::string c = net.add_layer("Cast", {x}, cast_to(9))[0];  // x != 0 (NaN: true)
    std::string neg = net.add_layer("Neg", {x})[0];
    net.mark_output(net.add_layer("Where", {c, p, neg})[0]);
    auto g = run_pass(net, &fuse_elementwise);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = only_fused(*g);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->attrs.get_strings("program"),
              (std::vector<std::string>{"in0", "to_bool", "in1", "in0", "mul", "in0", "neg", "where"}));
    Tensor iv(DataType::kInt32, {5});
    for (int k = 0; k < 5; ++k) iv.data<int32_t>()[k] = (k - 2) * 123457;
    Tensor xv = filled({3, 5}, 0.2f);
    xv.data<float>()[3] = 0.f;
    xv.data<float>()[7] = 0.f;
    expect_same_outputs(net, {{"i", iv}, {"x", xv}});
    expect_same_outputs(net, {{"i", iv}, {"x", xv}}, 3, "reference");
}

// Comparisons on integers are not fused (int64 -> float could merge distinct values); a Cast to int32 is not fusable
// either; an int leaf reaches the kernel only through a Cast.
TEST(FuseElementwiseLogic, IntegerComparisonsStay) {
    NetworkDefinition net;
    std::string a = net.add_input("a", DataType::kInt64, {4});
    std::string b = net.add_input("b", DataType::kInt64, {4});
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    std::string lt = net.add_layer("Less", {a, b})[0];
    std::string w = net.add_layer("Where", {lt, x, scalar(net, "z", 0.f)})[0];
    std::string xi = net.add_layer("Cast", {w}, cast_to(6))[0];
    net.mark_output(net.add_layer("Cast", {xi}, cast_to(1))[0]);
    bool changed = true;
    auto g = run_pass(net, &fuse_elementwise, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(count_op(*g, "FusedElementwise"), 0);
}

// The kernels on programs written by hand (opt level 0 runs them as given): `xor` (no ONNX Xor op in kiln's IR yet),
// `where` picking between a float32 and an int64 input, a bool output and an int32 leaf feeding a comparison token.
TEST(FuseElementwiseLogic, HandWrittenProgramsOnEveryHostBackend) {
    NetworkDefinition net;
    std::string a = net.add_input("a", DataType::kBool, {4});
    std::string b = net.add_input("b", DataType::kBool, {2, 1});
    std::string x = net.add_input("x", DataType::kFloat32, {4});
    std::string i = net.add_input("i", DataType::kInt64, {4});
    AttributeMap pick, flags;
    pick.set("program", std::vector<std::string>{"in0", "in1", "xor", "in2", "in3", "where"});
    flags.set("program", std::vector<std::string>{"in0", "in1", "xor", "not", "in2", "const:0", "ge", "and"});
    flags.set("out_dtype", int64_t{9});
    net.mark_output(net.add_layer("FusedElementwise", {a, b, x, i}, pick, 1, "pick")[0]);
    net.mark_output(net.add_layer("FusedElementwise", {a, b, x}, flags, 1, "flags")[0]);
    Tensor av = bools({4}, 2), bv = bools({2, 1}, 2), xv = filled({4}, 0.5f), iv(DataType::kInt64, {4});
    for (int k = 0; k < 4; ++k) iv.data<int64_t>()[k] = (int64_t{1} << 40) + k;
    for (const char* backend : {"reference", "cpu"}) {
        NullLogger logger;
        BuilderConfig c;
        c.opt_level = 0;
        c.backend = backend;
        auto out = Builder(logger).build(net, c)->create_context()->run({{"a", av}, {"b", bv}, {"x", xv}, {"i", iv}});
        const Tensor& p = out.at(net.output_names()[0]);
        const Tensor& f = out.at(net.output_names()[1]);
        ASSERT_EQ(p.dtype(), DataType::kFloat32);
        ASSERT_EQ(f.dtype(), DataType::kBool);
        ASSERT_EQ(p.shape(), (Shape{2, 4}));
        for (int r = 0; r < 2; ++r)
            for (int k = 0; k < 4; ++k) {
                const bool t = (av.data<uint8_t>()[k] != 0) != (bv.data<uint8_t>()[r] != 0);
                const float want = t ? xv.data<float>()[k] : static_cast<float>(iv.data<int64_t>()[k]);
                EXPECT_EQ(p.data<float>()[r * 4 + k], want) << backend << " " << r << "," << k;
                EXPECT_EQ(f.data<uint8_t>()[r * 4 + k], !t && xv.data<float>()[k] >= 0.f) << backend;
            }
    }
}

// One-element bool and int64 constants are inlined like float32 ones (int64 -> float32 directly, as the kernels
// load it).
TEST(FuseElementwiseLogic, BoolAndIntScalarsAreInlined) {
    NetworkDefinition net;
    std::string b = net.add_input("b", DataType::kBool, {2, 3});
    std::string x = net.add_input("x", DataType::kFloat32, {3});
    Tensor yes(DataType::kBool, {}), big(DataType::kInt64, {1});
    *yes.data<uint8_t>() = 1;
    *big.data<int64_t>() = (int64_t{1} << 40) + 1;
    std::string t = net.add_layer("And", {b, net.add_constant("yes", yes)})[0];
    t = net.add_layer("Not", {t})[0];
    std::string f = net.add_layer("Cast", {net.add_constant("big", big)}, cast_to(1))[0];
    net.mark_output(net.add_layer("Where", {t, x, f})[0]);
    auto g = run_pass(net, &fuse_elementwise);
    ASSERT_EQ(g->num_nodes(), 1u);
    const ir::Node* n = only_fused(*g);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->attrs.get_strings("program"),
              (std::vector<std::string>{"in0", "const:1", "and", "not", "in1", "const:1.09951163e+12", "where"}));
    EXPECT_EQ(n->inputs.size(), 2u);
    Tensor bv = bools({2, 3}, 2);
    const std::map<std::string, Tensor> feeds = {{"b", bv}, {"x", filled({3}, 0.3f)}};
    expect_same_outputs(net, feeds);  // (constant_folding folds the Cast first in a full build)
    expect_same_outputs(net, feeds, 3, "reference");
}

}  // namespace kiln::passes::test

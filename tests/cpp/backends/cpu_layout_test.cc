// The cpu backend keeps activations in nChw16c between layout-aware nodes (convolutions, pooling, elementwise ops,
// the squeeze-excite Mul). These networks have static shapes (the planner blocks values only then) and odd channel
// counts (padding), strides, dilations, batches > 1 and broadcasting; each must match the reference backend and
// must actually have run on blocked values.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "tests/cpp/backends/test_util.h"
#include "src/common/strings.h"
#include "src/plan/plan_model.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct Case {
    int64_t batch, channels, height, width, stride, dilation;
};

std::string conv(NetworkDefinition& net, const std::string& x, int64_t in, int64_t out, int64_t k, uint32_t seed,
                 int64_t group = 1, int64_t stride = 1, int64_t dilation = 1) {
    AttributeMap a;
    int64_t pad = (k / 2) * dilation;
    a.set("kernel_shape", std::vector<int64_t>{k, k});
    a.set("pads", std::vector<int64_t>{pad, pad, pad, pad});
    a.set("strides", std::vector<int64_t>{stride, stride});
    a.set("dilations", std::vector<int64_t>{dilation, dilation});
    a.set("group", group);
    return net.add_layer("Conv", {x, net.add_constant(cat("w", seed), random_tensor({out, in / group, k, k}, seed)),
                                  net.add_constant(cat("b", seed), random_tensor({out}, seed + 1))},
                         a)[0];
}

// x -> conv3x3(stride, dilation) + relu -> depthwise 3x3 + HardSigmoid (non-zero at 0: the padding must be zeroed)
//   -> MaxPool -> Tanh -> squeeze-excite (GAP, 1x1 conv + relu, 1x1 conv + sigmoid, Mul) -> Add(SE, pool)
//   -> 1x1 conv + the pool as residual -> Sub of a per-channel constant -> conv3x3 to 7 channels (graph output)
void make_net(NetworkDefinition& net, const Case& c) {
    const int64_t C = c.channels;
    std::string x = net.add_input("x", DataType::kFloat32, {c.batch, 5, c.height, c.width});
    std::string c1 = net.add_layer("Relu", {conv(net, x, 5, C, 3, 1, 1, c.stride, c.dilation)})[0];
    AttributeMap hs;
    hs.set("alpha", 0.3f);
    hs.set("beta", 0.4f);
    std::string dw = net.add_layer("HardSigmoid", {conv(net, c1, C, C, 3, 3, C)}, hs)[0];
    AttributeMap mp;
    mp.set("kernel_shape", std::vector<int64_t>{3, 3});
    mp.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    std::string pool = net.add_layer("Tanh", {net.add_layer("MaxPool", {dw}, mp)[0]})[0];
    std::string g = net.add_layer("GlobalAveragePool", {pool})[0];
    std::string s1 = net.add_layer("Relu", {conv(net, g, C, 4, 1, 5)})[0];
    std::string s2 = net.add_layer("Sigmoid", {conv(net, s1, 4, C, 1, 7)})[0];
    std::string se = net.add_layer("Mul", {pool, s2})[0];
    std::string t = net.add_layer("Add", {se, pool})[0];
    std::string pw = net.add_layer("Add", {conv(net, t, C, C, 1, 9), pool})[0];
    std::string sub = net.add_layer("Sub", {pw, net.add_constant("shift", random_tensor({1, C, 1, 1}, 11))})[0];
    net.mark_output(conv(net, sub, C, 7, 3, 13));
}

int blocked_values(const Engine& e) {
    int n = 0;
    for (const plan::PlanValue& v : e.plan_model().values) n += v.layout == Layout::kNChw16c;
    return n;
}

}  // namespace

class CpuLayout : public ::testing::TestWithParam<Case> {};

TEST_P(CpuLayout, BlockedChainsMatchTheReference) {
    const Case c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    // all but the input, the SE values and the output (unless the padding would exceed half the channels)
    EXPECT_GE(blocked_values(*cpu), 2 * padded_channels(c.channels) > 3 * c.channels ? 0 : 7);
    EXPECT_EQ(blocked_values(*ref), 0);
    // the residual 1x1 convolution writes its output over the pool value it accumulates onto (which dies there)
    const plan::PlanModel& m = cpu->plan_model();
    int in_place = 0;
    for (const plan::PlanNode& n : m.nodes)
        if (n.op_type == "FusedConv" && n.inputs.size() > 3 && n.inputs[3] >= 0)
            in_place += m.memory.offsets[n.inputs[3]] == m.memory.offsets[n.outputs[0]];
    EXPECT_EQ(in_place, 1);
    for (int threads : {1, 2}) {
        auto ctx = cpu->create_context();
        ctx->set_num_threads(threads);
        auto ref_ctx = ref->create_context();
        for (uint32_t seed : {21u, 22u}) {  // twice: the arena is reused, stale padding must not leak
            Tensor x = random_tensor({c.batch, 5, c.height, c.width}, seed);
            Tensor y = ctx->run({{"x", x}}).begin()->second;
            Tensor e = ref_ctx->run({{"x", x}}).begin()->second;
            ASSERT_EQ(y.shape(), e.shape());
            float max_err = 0.f;
            for (int64_t i = 0; i < y.numel(); ++i) {
                ASSERT_TRUE(std::isfinite(y.data<float>()[i])) << "element " << i;
                max_err = std::max(max_err, std::fabs(y.data<float>()[i] - e.data<float>()[i]));
            }
            EXPECT_LT(max_err, 1e-4f) << "threads " << threads;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuLayout,
                         ::testing::Values(Case{1, 32, 12, 11, 1, 1},   // channels a multiple of 16
                                           Case{1, 24, 13, 10, 2, 1},   // padded to 32, stride 2
                                           Case{3, 24, 9, 14, 1, 2},    // batch 3, dilation 2
                                           Case{2, 40, 15, 15, 2, 2},   // padded to 48
                                           Case{1, 11, 8, 9, 1, 1}));   // fewer channels than one block

TEST(CpuLayout, SymbolicShapesStayPlain) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 5, 8, 8});
    std::string c1 = net.add_layer("Relu", {conv(net, x, 5, 16, 3, 1)})[0];
    net.mark_output(conv(net, c1, 16, 16, 3, 3));
    EXPECT_EQ(blocked_values(*build(net, "cpu")), 0);
}

}  // namespace kiln

namespace kiln {

// A static-shaped engine reuses the shapes it inferred on its first run (ExecutionContext): later runs with new data
// still match the reference, and an input of another shape is still rejected.
TEST(CpuLayout, StaticShapesAreInferredOnceAndStillChecked) {
    NetworkDefinition net;
    make_net(net, Case{1, 24, 13, 10, 2, 1});
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    auto ctx = cpu->create_context();
    auto ref_ctx = ref->create_context();
    for (uint32_t seed : {41u, 42u, 43u}) {
        Tensor x = random_tensor({1, 5, 13, 10}, seed);
        Tensor y = ctx->run({{"x", x}}).begin()->second;
        Tensor e = ref_ctx->run({{"x", x}}).begin()->second;
        ASSERT_EQ(y.shape(), e.shape());
        for (int64_t i = 0; i < y.numel(); ++i) ASSERT_NEAR(y.data<float>()[i], e.data<float>()[i], 1e-4f);
    }
    try {
        ctx->run({{"x", random_tensor({1, 5, 14, 10}, 44)}});
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
}

}  // namespace kiln

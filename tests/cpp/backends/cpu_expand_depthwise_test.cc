// kiln's fused 1x1 expand + depthwise kernel (FusedExpandDepthwise, conv_expand_depthwise.cc) on nChw16c values:
// 3x3 and 5x5, stride 1 and 2, symmetric and SAME_UPPER padding, Relu / Clip / Silu / no activation, channel counts
// that are and are not multiples of 16, rows narrower than, equal to and wider than the 8-pixel tile, images smaller
// than the window, with and without a projection + residual after it, batch 1 to 3, one and two threads. Each must
// match the reference backend (which runs the unfused graph) and must have run on that kernel; with
// KILN_CPU_EXPAND_DW=0 the graph keeps its two convolutions. With a squeeze-excite block after the depthwise
// convolution (EfficientNet) the block goes into the fused node (odd channel and reduced-channel counts, 3x3 / 5x5,
// stride 1 / 2, batch 1-3, the plain-input fallback); KILN_CPU_EXPAND_DW_SE=0 keeps its four nodes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "kiln/kiln.h"
#include "src/common/strings.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct IrbCase {
    int64_t batch, in_ch, mid_ch, height, width, k, stride;
    std::string act;   // "", Relu, Clip (Relu6), Silu: after the expand and after the depthwise convolution
    bool residual;     // 1x1 projection back to in_ch + Add(x) (stride 1 only)
    std::string pads;  // "sym" or "same" (auto_pad SAME_UPPER)
    bool stem = true;  // a 3x3 convolution first (its output nChw16c); false: the block reads the graph input
    int64_t se = 0;    // > 0: a squeeze-excite block with this many reduced channels after the depthwise convolution
};

std::string scalar(NetworkDefinition& net, const std::string& name, float v) {
    Tensor t(DataType::kFloat32, {});
    t.data<float>()[0] = v;
    return net.add_constant(name, t);
}

std::string act(NetworkDefinition& net, const std::string& x, const std::string& a, const std::string& tag) {
    if (a == "Relu") return net.add_layer("Relu", {x})[0];
    if (a == "Clip") return net.add_layer("Clip", {x, scalar(net, "lo" + tag, 0.f), scalar(net, "hi" + tag, 6.f)})[0];
    if (a == "Silu") return net.add_layer("Mul", {x, net.add_layer("Sigmoid", {x})[0]})[0];
    return x;
}

std::string conv(NetworkDefinition& net, const std::string& x, int64_t in, int64_t out, int64_t k, uint32_t seed,
                 float scale = 1.f) {
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{k, k});
    a.set("pads", std::vector<int64_t>{k / 2, k / 2, k / 2, k / 2});
    Tensor w = random_tensor({out, in, k, k}, seed);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= scale;
    return net.add_layer(
        "Conv",
        {x, net.add_constant(cat("w", seed), w), net.add_constant(cat("b", seed), random_tensor({out}, seed + 1))},
        a)[0];
}

// (The planner keeps values plain whose padding would exceed half their channels, e.g. 8 or 20: in_ch avoids those.)
// x -> [3x3 conv + Relu] -> 1x1 expand + act -> depthwise + act -> [1x1 project + residual] -> 1x1 conv to 7 (plain)
void make_net(NetworkDefinition& net, const IrbCase& c) {
    std::string x = net.add_input("x", DataType::kFloat32, {c.batch, 5, c.height, c.width});
    std::string h = c.stem ? net.add_layer("Relu", {conv(net, x, 5, c.in_ch, 3, 1)})[0] : x;
    const int64_t in = c.stem ? c.in_ch : 5;
    std::string m = act(net, conv(net, h, in, c.mid_ch, 1, 11, 3.f), c.act, "e");
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{c.k, c.k});
    a.set("strides", std::vector<int64_t>{c.stride, c.stride});
    a.set("group", c.mid_ch);
    if (c.pads == "same")
        a.set("auto_pad", std::string("SAME_UPPER"));
    else
        a.set("pads", std::vector<int64_t>{c.k / 2, c.k / 2, c.k / 2, c.k / 2});
    Tensor w = random_tensor({c.mid_ch, 1, c.k, c.k}, 3);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 2.f;  // reach Relu6's upper bound and Silu's tails
    std::string d = net.add_layer(
        "Conv", {m, net.add_constant("dw", w), net.add_constant("dwb", random_tensor({c.mid_ch}, 4))}, a)[0];
    d = act(net, d, c.act, "d");
    if (c.se > 0) {  // EfficientNet's: GlobalAveragePool -> 1x1 conv + Silu -> 1x1 conv + Sigmoid -> Mul
        std::string p = net.add_layer("GlobalAveragePool", {d})[0];
        std::string r = act(net, conv(net, p, c.mid_ch, c.se, 1, 21, 2.f), "Silu", "r");
        std::string e = net.add_layer("Sigmoid", {conv(net, r, c.se, c.mid_ch, 1, 23, 2.f)})[0];
        d = net.add_layer("Mul", {d, e})[0];
    }
    if (c.residual) d = net.add_layer("Add", {conv(net, d, c.mid_ch, in, 1, 13), h})[0];
    net.mark_output(conv(net, d, c.residual ? in : c.mid_ch, 7, 1, 5));
}

int fused_layers(const Engine& e) {
    int n = 0;
    for (const LayerInfo& l : e.layers()) n += l.kernel.rfind("expand1x1_dwconv", 0) == 0;
    return n;
}

int se_layers(const Engine& e) {
    int n = 0;
    for (const LayerInfo& l : e.layers())
        n += l.kernel.rfind("expand1x1_dwconv", 0) == 0 && l.kernel.find("_se_") != std::string::npos;
    return n;
}

}  // namespace

class CpuExpandDepthwise : public ::testing::TestWithParam<IrbCase> {};

TEST_P(CpuExpandDepthwise, MatchesTheReference) {
    const IrbCase c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    int fused = 0, se = 0;
    for (const LayerInfo& l : cpu->layers()) {
        fused += l.op_type == "FusedExpandDepthwise";
        se += l.op_type == "GlobalAveragePool" || l.op_type == "Mul";
    }
    EXPECT_EQ(fused, 1);
    EXPECT_EQ(se, 0);  // the squeeze-excite block (if any) is inside the fused node
    if (c.stem && c.se > 0) EXPECT_EQ(se_layers(*cpu), 1);
    if (c.stem) EXPECT_EQ(fused_layers(*cpu), 1);  // on nChw16c values: the AVX-512 kernel
    for (const LayerInfo& l : cpu->layers())       // else two convolutions, M blocked: kiln's depthwise kernel
        if (!c.stem && l.op_type == "FusedExpandDepthwise")
            EXPECT_NE(l.kernel.find("+dwconv"), std::string::npos) << l.kernel;
    test_util::expect_matches_reference(*cpu, *ref, {c.batch, 5, c.height, c.width});
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuExpandDepthwise,
    ::testing::Values(IrbCase{1, 16, 96, 12, 11, 3, 1, "Clip", true, "sym"},   // MobileNetV2 with residual
                      IrbCase{1, 24, 40, 13, 10, 3, 2, "Silu", false, "sym"},  // 40 -> 48 padded, stride 2
                      IrbCase{3, 22, 72, 9, 14, 5, 1, "Silu", true, "sym"},    // 5x5, batch 3, 22 input channels
                      IrbCase{2, 12, 36, 15, 15, 5, 2, "Relu", false, "sym"},  // 5x5 stride 2
                      IrbCase{1, 11, 13, 8, 9, 3, 1, "", false, "sym"},  // fewer channels than a block, plain Convs
                      IrbCase{1, 16, 48, 30, 37, 3, 1, "Clip", true, "sym"},        // several tiles and a 5-pixel tail
                      IrbCase{1, 16, 32, 3, 2, 5, 1, "Relu", false, "sym"},         // image smaller than the window
                      IrbCase{2, 24, 144, 7, 7, 3, 1, "Clip", true, "sym"},         // 7x7: tail tiles only, 9 blocks
                      IrbCase{2, 12, 40, 10, 13, 5, 2, "Silu", false, "same"},      // auto_pad SAME_UPPER
                      IrbCase{1, 16, 64, 6, 5, 3, 1, "Clip", false, "sym", false},  // plain input: two convs
                      // with squeeze-excite (EfficientNet): odd channel counts, 5x5, stride 2, batch 3, tails
                      IrbCase{1, 16, 96, 12, 11, 3, 1, "Silu", true, "sym", true, 4},
                      IrbCase{3, 22, 40, 9, 14, 5, 1, "Silu", true, "sym", true, 10},  // 40 -> 48 padded
                      IrbCase{2, 12, 36, 15, 15, 5, 2, "Silu", false, "same", true, 9},
                      IrbCase{1, 24, 144, 7, 7, 3, 1, "Relu", true, "sym", true, 6},     // 7x7, 9 blocks
                      IrbCase{2, 16, 48, 30, 37, 3, 2, "Silu", false, "sym", true, 12},  // many rows per thread
                      IrbCase{1, 16, 64, 6, 5, 3, 1, "Silu", false, "sym", false, 8},    // plain input: fallback
                      IrbCase{2, 11, 13, 8, 9, 3, 1, "", false, "sym", true, 3}));       // plain values, scalar SE

// Both ways of splitting the work over threads (by rows of every block, by blocks) on every shape above.
TEST(CpuExpandDepthwiseSplit, RowsAndBlocksMatchTheReference) {
    for (const char* split : {"1", "0"}) {
        ::setenv("KILN_CPU_EXPAND_DW_ROW_SPLIT", split, 1);
        for (const IrbCase& c : {IrbCase{1, 16, 96, 12, 11, 3, 1, "Clip", true, "sym"},
                                 IrbCase{3, 22, 72, 9, 14, 5, 1, "Silu", true, "sym"},
                                 IrbCase{2, 12, 36, 15, 15, 5, 2, "Relu", false, "sym"},
                                 IrbCase{1, 16, 32, 3, 2, 5, 1, "Relu", false, "sym"},
                                 IrbCase{3, 22, 40, 9, 14, 5, 1, "Silu", true, "sym", true, 10},
                                 IrbCase{2, 16, 48, 30, 37, 3, 2, "Silu", false, "sym", true, 12}}) {
            NetworkDefinition net;
            make_net(net, c);
            std::shared_ptr<Engine> cpu = build(net, "cpu");
            std::shared_ptr<Engine> ref = build(net, "reference");
            EXPECT_EQ(fused_layers(*cpu), 1);
            test_util::expect_matches_reference(*cpu, *ref, {c.batch, 5, c.height, c.width});
        }
    }
    ::unsetenv("KILN_CPU_EXPAND_DW_ROW_SPLIT");
}

TEST(CpuExpandDepthwiseSwitch, SeEnvZeroKeepsTheSqueezeExciteNodes) {
    NetworkDefinition net;
    make_net(net, IrbCase{1, 16, 96, 12, 11, 3, 1, "Silu", true, "sym", true, 4});
    ::setenv("KILN_CPU_EXPAND_DW_SE", "0", 1);
    std::shared_ptr<Engine> off = build(net, "cpu");
    ::unsetenv("KILN_CPU_EXPAND_DW_SE");
    EXPECT_EQ(fused_layers(*off), 1);
    EXPECT_EQ(se_layers(*off), 0);
    int pools = 0;
    for (const LayerInfo& l : off->layers()) pools += l.op_type == "GlobalAveragePool";
    EXPECT_EQ(pools, 1);
}

TEST(CpuExpandDepthwiseSwitch, EnvZeroKeepsTwoConvolutions) {
    NetworkDefinition net;
    make_net(net, IrbCase{1, 16, 96, 12, 11, 3, 1, "Clip", true, "sym"});
    ::setenv("KILN_CPU_EXPAND_DW", "0", 1);
    std::shared_ptr<Engine> off = build(net, "cpu");
    ::unsetenv("KILN_CPU_EXPAND_DW");
    EXPECT_EQ(fused_layers(*off), 0);
    int dw = 0;
    for (const LayerInfo& l : off->layers()) dw += l.kernel.rfind("dwconv", 0) == 0;
    EXPECT_EQ(dw, 1);
}

}  // namespace kiln

// kiln's 1x1 convolution on small nChw16c images (conv1x1_small.cc: head convolutions, 7x7 projections):
// 3x3 conv (to nChw16c) -> 1x1 conv + activation (+ residual) -> 1x1 conv to 7 channels (plain output). Input and
// output channels that are and are not multiples of 16 (the 256-bit last block at <= 8 left), Relu / Clip / Silu /
// none, a residual (in place) with and without activation, images of 1 x 9 to 8 x 8 pixels, batch 1 to 3, one and
// two threads, against the reference backend (with and without the prefetch of the next weights); stride 2,
// images above the pixel limit and KILN_CPU_CONV1X1_SMALL=0 stay on oneDNN.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kiln/kiln.h"
#include "src/common/strings.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct SmallCase {
    int64_t batch, in_ch, out_ch, height, width;
    std::string act;  // "", "Relu", "Clip", "Silu"
    bool residual;    // + the 1x1 conv's input (in_ch == out_ch)
    int64_t stride;
    bool small;  // expected on kiln's kernel
};

std::string conv(NetworkDefinition& net, const std::string& x, int64_t in, int64_t out, int64_t k, int64_t stride,
                 uint32_t seed) {
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{k, k});
    a.set("pads", std::vector<int64_t>{k / 2, k / 2, k / 2, k / 2});
    a.set("strides", std::vector<int64_t>{stride, stride});
    return net.add_layer("Conv",
                         {x, net.add_constant(cat("w", seed), random_tensor({out, in, k, k}, seed)),
                          net.add_constant(cat("b", seed), random_tensor({out}, seed + 1))},
                         a)[0];
}

void make_net(NetworkDefinition& net, const SmallCase& c) {
    std::string x = net.add_input("x", DataType::kFloat32, {c.batch, 5, c.height, c.width});
    std::string h = net.add_layer("Relu", {conv(net, x, 5, c.in_ch, 3, 1, 1)})[0];
    std::string y = conv(net, h, c.in_ch, c.out_ch, 1, c.stride, 3);
    if (c.residual) y = net.add_layer("Add", {y, h})[0];
    if (c.act == "Clip") {
        Tensor lo(DataType::kFloat32, {}), hi(DataType::kFloat32, {});
        lo.data<float>()[0] = 0.f;
        hi.data<float>()[0] = 0.3f;  // most values clipped at one end or the other
        y = net.add_layer("Clip", {y, net.add_constant("lo", lo), net.add_constant("hi", hi)})[0];
    } else if (c.act == "Silu") {
        y = net.add_layer("Mul", {y, net.add_layer("Sigmoid", {y})[0]})[0];
    } else if (!c.act.empty()) {
        y = net.add_layer(c.act, {y})[0];
    }
    net.mark_output(conv(net, y, c.out_ch, 7, 1, 1, 5));
}

int small_layers(const Engine& e) {
    int n = 0;
    for (const LayerInfo& l : e.layers()) n += l.kernel.rfind("conv1x1_small", 0) == 0;
    return n;
}

}  // namespace

class CpuConv1x1Small : public ::testing::TestWithParam<SmallCase> {};

TEST_P(CpuConv1x1Small, MatchesTheReference) {
    const SmallCase c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    EXPECT_EQ(small_layers(*cpu), c.small ? 1 : 0);
    for (const LayerInfo& l : cpu->layers())
        if (l.kernel.rfind("conv1x1_small", 0) == 0)
            EXPECT_EQ(l.kernel.find("_residual") != std::string::npos, c.residual) << l.kernel;
    test_util::expect_matches_reference(*cpu, *ref, {c.batch, 5, c.height, c.width});
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuConv1x1Small,
    ::testing::Values(SmallCase{1, 320, 1280, 7, 7, "Clip", false, 1, true},  // MobileNetV2's head
                      SmallCase{3, 24, 40, 7, 7, "Relu", false, 1, true},     // C of 1.5 blocks, 256-bit last block
                      SmallCase{2, 37, 13, 5, 3, "Silu", false, 1, true},     // one partial block, 15 pixels
                      SmallCase{2, 24, 24, 8, 8, "", true, 1, true},          // residual, 64 pixels, half block
                      SmallCase{1, 100, 100, 7, 7, "Relu", true, 1, true},    // residual + Relu, 7 blocks
                      SmallCase{1, 16, 16, 1, 9, "", false, 1, true},         // one row, one block per thread
                      SmallCase{2, 32, 48, 7, 7, "Relu", false, 2, false},    // stride 2: oneDNN
                      SmallCase{1, 32, 48, 9, 9, "Relu", false, 1, false}));  // 81 pixels: oneDNN

TEST(CpuConv1x1SmallSwitch, OffLeavesThemToOneDnn) {
    const SmallCase c{1, 320, 1280, 7, 7, "Clip", false, 1, true};
    NetworkDefinition net;
    make_net(net, c);
    ::setenv("KILN_CPU_CONV1X1_SMALL", "0", 1);
    std::shared_ptr<Engine> off = build(net, "cpu");
    ::setenv("KILN_CPU_CONV1X1_SMALL", "81", 1);  // the limit moves: the 9 x 9 case of the table
    const SmallCase big{1, 32, 48, 9, 9, "Relu", false, 1, true};
    NetworkDefinition big_net;
    make_net(big_net, big);
    std::shared_ptr<Engine> raised = build(big_net, "cpu");
    ::unsetenv("KILN_CPU_CONV1X1_SMALL");
    EXPECT_EQ(small_layers(*off), 0);
    EXPECT_EQ(small_layers(*raised), 1);
    test_util::expect_matches_reference(*off, *build(net, "reference"), {1, 5, 7, 7});
    test_util::expect_matches_reference(*raised, *build(big_net, "reference"), {1, 5, 9, 9});
}


// The head shape, a residual one and a 3-group one without the software prefetch of the next group's weights
// (KILN_CPU_CONV1X1_PREFETCH=0, read when the kernel is made): the same results.
TEST(CpuConv1x1SmallSwitch, WithoutPrefetch) {
    for (const SmallCase& c : {SmallCase{1, 320, 1280, 7, 7, "Clip", false, 1, true},
                               SmallCase{2, 100, 100, 7, 7, "Relu", true, 1, true},
                               SmallCase{1, 48, 150, 4, 4, "Silu", false, 1, true}}) {
        NetworkDefinition net;
        make_net(net, c);
        ::setenv("KILN_CPU_CONV1X1_PREFETCH", "0", 1);
        std::shared_ptr<Engine> cpu = build(net, "cpu");
        ::unsetenv("KILN_CPU_CONV1X1_PREFETCH");
        EXPECT_EQ(small_layers(*cpu), 1);
        test_util::expect_matches_reference(*cpu, *build(net, "reference"), {c.batch, 5, c.height, c.width});
    }
}

}  // namespace kiln

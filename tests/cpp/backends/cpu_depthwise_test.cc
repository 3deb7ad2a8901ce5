// kiln's AVX-512 depthwise convolution on nChw16c values (conv_depthwise.cc): 3x3 and 5x5, stride 1 and 2,
// symmetric, one-sided and SAME_UPPER padding, every fused activation it takes, channel counts that are and are not
// multiples of 16, odd image sizes, batch 1 and 3, one and two threads; each must match the reference backend and
// must have run on that kernel.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "src/common/strings.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct DwCase {
    int64_t batch, channels, height, width, k, stride;
    std::string pads;  // "sym": k/2 on every side; "end": (k-1) after only; "same": auto_pad SAME_UPPER
    std::string act;   // "", Relu, Clip (Relu6), Silu (x * sigmoid(x))
};

std::string scalar(NetworkDefinition& net, const std::string& name, float v) {
    Tensor t(DataType::kFloat32, {});
    t.data<float>()[0] = v;
    return net.add_constant(name, t);
}

std::string conv(NetworkDefinition& net, const std::string& x, int64_t in, int64_t out, int64_t k, uint32_t seed) {
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{k, k});
    a.set("pads", std::vector<int64_t>{k / 2, k / 2, k / 2, k / 2});
    return net.add_layer("Conv", {x, net.add_constant(cat("w", seed), random_tensor({out, in, k, k}, seed)),
                                  net.add_constant(cat("b", seed), random_tensor({out}, seed + 1))},
                         a)[0];
}

// x -> conv3x3 + relu (nChw16c) -> depthwise (the case) -> 1x1 conv to 7 channels (plain graph output)
void make_net(NetworkDefinition& net, const DwCase& c) {
    const int64_t C = c.channels;
    std::string x = net.add_input("x", DataType::kFloat32, {c.batch, 5, c.height, c.width});
    std::string h = net.add_layer("Relu", {conv(net, x, 5, C, 3, 1)})[0];
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{c.k, c.k});
    a.set("strides", std::vector<int64_t>{c.stride, c.stride});
    a.set("group", C);
    if (c.pads == "same")
        a.set("auto_pad", std::string("SAME_UPPER"));
    else if (c.pads == "end")
        a.set("pads", std::vector<int64_t>{0, 0, c.k - 1, c.k - 1});
    else
        a.set("pads", std::vector<int64_t>{c.k / 2, c.k / 2, c.k / 2, c.k / 2});
    Tensor w = random_tensor({C, 1, c.k, c.k}, 3);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= 4.f;  // reach Relu6's upper bound and Silu's tails
    std::string d = net.add_layer("Conv", {h, net.add_constant("dw", w),
                                           net.add_constant("dwb", random_tensor({C}, 4))}, a)[0];
    if (c.act == "Relu") d = net.add_layer("Relu", {d})[0];
    if (c.act == "Clip") d = net.add_layer("Clip", {d, scalar(net, "lo", 0.f), scalar(net, "hi", 6.f)})[0];
    if (c.act == "Silu") d = net.add_layer("Mul", {d, net.add_layer("Sigmoid", {d})[0]})[0];
    net.mark_output(conv(net, d, C, 7, 1, 5));
}

}  // namespace

class CpuDepthwise : public ::testing::TestWithParam<DwCase> {};

TEST_P(CpuDepthwise, MatchesTheReference) {
    const DwCase c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    int dw = 0;
    for (const LayerInfo& l : cpu->layers()) dw += l.kernel.rfind("dwconv", 0) == 0;
    EXPECT_EQ(dw, 1);
    test_util::expect_matches_reference(*cpu, *ref, {c.batch, 5, c.height, c.width});
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuDepthwise,
                         ::testing::Values(DwCase{1, 32, 12, 11, 3, 1, "sym", "Clip"},   // MobileNetV2
                                           DwCase{1, 24, 13, 10, 3, 2, "sym", "Silu"},   // padded to 32, stride 2
                                           DwCase{3, 40, 9, 14, 5, 1, "sym", "Silu"},    // 5x5, batch 3
                                           DwCase{2, 48, 15, 15, 5, 2, "sym", "Relu"},   // 5x5 stride 2
                                           DwCase{1, 11, 8, 9, 3, 1, "sym", ""},         // fewer channels than a block
                                           DwCase{1, 32, 11, 11, 3, 2, "end", "Clip"},   // TF-style one-sided pads
                                           DwCase{2, 24, 10, 13, 5, 2, "same", "Silu"},  // auto_pad SAME_UPPER
                                           DwCase{1, 16, 30, 37, 3, 1, "sym", "Silu"},   // several 8-pixel blocks
                                           DwCase{1, 16, 3, 2, 5, 1, "sym", "Relu"}));   // image smaller than the window

}  // namespace kiln

namespace kiln {

// A dense convolution with a Silu epilogue takes the activation out of oneDNN (silu_inplace after the primitive):
// blocked and plain outputs, odd channels, a residual, batch 2.
TEST(CpuConvSilu, SiluAfterThePrimitiveMatchesTheReference) {
    for (bool residual : {false, true}) {
        NetworkDefinition net;
        std::string x = net.add_input("x", DataType::kFloat32, {2, 5, 9, 11});
        std::string c = conv(net, x, 5, 21, 3, 1);
        if (residual) c = net.add_layer("Add", {c, conv(net, x, 5, 21, 1, 7)})[0];
        std::string s = net.add_layer("Mul", {c, net.add_layer("Sigmoid", {c})[0]})[0];
        std::string t = conv(net, s, 21, 3, 3, 3);  // plain output (graph output): Silu there too
        net.mark_output(net.add_layer("Mul", {t, net.add_layer("Sigmoid", {t})[0]})[0]);
        std::shared_ptr<Engine> cpu = build(net, "cpu");
        std::shared_ptr<Engine> ref = build(net, "reference");
        int silu = 0;
        for (const LayerInfo& l : cpu->layers()) silu += l.kernel.find("silu_avx512") != std::string::npos;
        EXPECT_EQ(silu, 2);
        for (int threads : {1, 2}) {
            auto ctx = cpu->create_context();
            ctx->set_num_threads(threads);
            Tensor in = random_tensor({2, 5, 9, 11}, 31);
            for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] *= 20.f;  // Silu's tails
            Tensor y = ctx->run({{"x", in}}).begin()->second;
            Tensor e = ref->create_context()->run({{"x", in}}).begin()->second;
            for (int64_t i = 0; i < y.numel(); ++i)
                ASSERT_NEAR(y.data<float>()[i], e.data<float>()[i], 1e-4f * (1.f + std::fabs(e.data<float>()[i])))
                    << "element " << i << " threads " << threads << " residual " << residual;
        }
    }
}

}  // namespace kiln

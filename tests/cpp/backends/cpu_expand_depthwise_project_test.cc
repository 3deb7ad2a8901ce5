// The projection inside FusedExpandDepthwise (inputs 9-11: the whole inverted-residual block in one kernel,
// conv_expand_depthwise.cc): 1x1 expand + act -> depthwise + act -> 1x1 projection (+ the block's input as residual).
// Every shape runs with rows split over the threads (the rows two bands share expanded once, or by both threads)
// and in two phases: 3x3 / 5x5, stride 1 / 2, output channels that are a multiple of 16, that leave at most 8 in
// the last block (24, 40: its 256-bit path) and more than 8 (13, 29), 1 to 5 output blocks, rows narrower than,
// equal to and wider than the 8-pixel tile, batch 1 to 3, one and two threads, all against the reference backend
// (which runs the unfused graph). Also: the plain-input fallback (three ordinary convolutions),
// KILN_CPU_EXPAND_DW_PROJECT_MIN_ROWS, KILN_CPU_EXPAND_DW_PROJECT=0, and the reference kernel's projection against a
// hand computation on top of the unprojected node.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "kiln/kiln.h"
#include "src/backends/backend.h"
#include "src/common/strings.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct ProjCase {
    int64_t batch, in_ch, mid_ch, out_ch, height, width, k, stride;
    bool residual;     // + Add(block input) (stride 1 and out_ch == in_ch only)
    bool stem = true;  // a 3x3 convolution first (nChw16c); false: the block reads the plain graph input
};

std::string conv(NetworkDefinition& net, const std::string& x, int64_t in, int64_t out, int64_t k, int64_t stride,
                 int64_t group, uint32_t seed, float scale = 1.f) {
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{k, k});
    a.set("pads", std::vector<int64_t>{k / 2, k / 2, k / 2, k / 2});
    a.set("strides", std::vector<int64_t>{stride, stride});
    a.set("group", group);
    Tensor w = random_tensor({out, in / group, k, k}, seed);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= scale;
    return net.add_layer(
        "Conv",
        {x, net.add_constant(cat("w", seed), w), net.add_constant(cat("b", seed), random_tensor({out}, seed + 1))},
        a)[0];
}

std::string relu6(NetworkDefinition& net, const std::string& x, const std::string& tag) {
    Tensor lo(DataType::kFloat32, {}), hi(DataType::kFloat32, {});
    lo.data<float>()[0] = 0.f;
    hi.data<float>()[0] = 6.f;
    return net.add_layer("Clip", {x, net.add_constant("lo" + tag, lo), net.add_constant("hi" + tag, hi)})[0];
}

// x -> [3x3 conv + Relu] -> 1x1 expand + Relu6 -> depthwise + Relu6 -> 1x1 projection [+ residual] -> 1x1 conv to 7
void make_net(NetworkDefinition& net, const ProjCase& c) {
    std::string x = net.add_input("x", DataType::kFloat32, {c.batch, 5, c.height, c.width});
    std::string h = c.stem ? net.add_layer("Relu", {conv(net, x, 5, c.in_ch, 3, 1, 1, 1)})[0] : x;
    const int64_t in = c.stem ? c.in_ch : 5;
    std::string m = relu6(net, conv(net, h, in, c.mid_ch, 1, 1, 1, 11, 3.f), "e");
    std::string d = relu6(net, conv(net, m, c.mid_ch, c.mid_ch, c.k, c.stride, c.mid_ch, 3, 2.f), "d");
    std::string p = conv(net, d, c.mid_ch, c.out_ch, 1, 1, 1, 13);
    if (c.residual) p = net.add_layer("Add", {p, h})[0];
    net.mark_output(conv(net, p, c.out_ch, 7, 1, 1, 1, 5));
}

// (fused layers, of which with the projection inside)
std::pair<int, int> fused_layers(const Engine& e) {
    int n = 0, p = 0;
    for (const LayerInfo& l : e.layers()) {
        n += l.op_type == "FusedExpandDepthwise";
        p += l.op_type == "FusedExpandDepthwise" && l.kernel.find("_project") != std::string::npos;
    }
    return {n, p};
}

int layers(const Engine& e) { return static_cast<int>(e.layers().size()); }

// The cpu engine of case c: one fused node with the projection inside (on nChw16c values), matching the reference.
void check(const NetworkDefinition& net, Engine& cpu_engine, const ProjCase& c) {
    Engine* cpu = &cpu_engine;
    std::shared_ptr<Engine> ref = build(net, "reference");
    // stem conv, the whole block, the last conv (the plain-input case: the block and the last conv)
    EXPECT_EQ(layers(*cpu), c.stem ? 3 : 2);
    const auto [fused, projected] = fused_layers(*cpu);
    EXPECT_EQ(fused, 1);
    if (c.stem) {
        EXPECT_EQ(projected, 1);  // nChw16c values: the AVX-512 kernel with the projection inside
    } else {
        for (const LayerInfo& l : cpu->layers())  // plain values: three ordinary convolutions (the projection on a
                                                   // small image: conv1x1_small)
            if (l.op_type == "FusedExpandDepthwise") EXPECT_NE(l.kernel.find("+conv"), std::string::npos) << l.kernel;
    }
    test_util::expect_matches_reference(*cpu, *ref, {c.batch, 5, c.height, c.width});
}

}  // namespace

class CpuExpandDepthwiseProject : public ::testing::TestWithParam<ProjCase> {};

// Every shape under the ways of running the projection: rows split over the threads (images of at least
// KILN_CPU_EXPAND_DW_PROJECT_ROWS rows; 1: always), with the rows two bands share expanded once (default) or by
// both (KILN_CPU_EXPAND_DW_HALO=0), and two phases with a barrier (99: always).
TEST_P(CpuExpandDepthwiseProject, MatchesTheReference) {
    const ProjCase c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    for (const char* mode : {"rows", "rows, halo expanded twice", "phases"}) {
        ::setenv("KILN_CPU_EXPAND_DW_PROJECT_ROWS", mode[0] == 'p' ? "99" : "1", 1);
        if (std::string(mode).find("twice") != std::string::npos) ::setenv("KILN_CPU_EXPAND_DW_HALO", "0", 1);
        std::shared_ptr<Engine> cpu = build(net, "cpu");
        ::unsetenv("KILN_CPU_EXPAND_DW_PROJECT_ROWS");
        ::unsetenv("KILN_CPU_EXPAND_DW_HALO");
        SCOPED_TRACE(mode);
        check(net, *cpu, c);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuExpandDepthwiseProject,
    ::testing::Values(ProjCase{1, 24, 144, 24, 12, 11, 3, 1, true},  // MobileNetV2's 24 channels: the half block
                      ProjCase{1, 16, 96, 24, 13, 10, 3, 2, false},  // stride 2, 24 out, no residual
                      ProjCase{2, 32, 192, 32, 9, 14, 3, 1, true},   // 2 full blocks, batch 2, a 6-pixel tail
                      ProjCase{1, 40, 96, 40, 16, 17, 5, 1, true},   // 5x5, 40 (2 + a half block)
                      ProjCase{3, 13, 40, 13, 8, 9, 3, 1, true},     // 13: one block with 13 real channels
                      ProjCase{1, 16, 48, 29, 30, 37, 3, 1, false},  // 29: 2 blocks, 37-pixel rows
                      ProjCase{2, 24, 72, 64, 15, 15, 5, 2, false},  // 4 blocks: 2 + 2
                      ProjCase{1, 32, 64, 80, 7, 7, 3, 1, false},    // 5 blocks: 3 + 2, 7x7 (tail tiles only)
                      ProjCase{1, 16, 32, 16, 3, 2, 5, 1, true},     // image smaller than the window
                      ProjCase{1, 16, 64, 16, 40, 33, 3, 1, true},   // more rows than 2 threads x the window
                      ProjCase{2, 16, 64, 24, 6, 5, 3, 1, false, false}));  // plain input: three convolutions

// More threads than the two of the dev machine: bands of a few rows, each sharing halo rows with both neighbours
// (5x5 stride 1: 4 rows per overlap), and phases with more threads than output blocks.
TEST(CpuExpandDepthwiseProjectThreads, ThreeToSevenThreadsMatchTheReference) {
    for (const ProjCase& c :
         {ProjCase{1, 16, 64, 16, 40, 33, 3, 1, true}, ProjCase{2, 40, 96, 40, 16, 17, 5, 1, true},
          ProjCase{1, 32, 64, 80, 7, 7, 3, 1, false}, ProjCase{1, 16, 96, 24, 13, 10, 3, 2, false}}) {
        NetworkDefinition net;
        make_net(net, c);
        std::shared_ptr<Engine> cpu = build(net, "cpu");
        std::shared_ptr<Engine> ref = build(net, "reference");
        auto ref_ctx = ref->create_context();
        Tensor x = random_tensor({c.batch, 5, c.height, c.width}, 31);
        Tensor e = ref_ctx->run({{"x", x}}).begin()->second;
        float scale = 0.f;
        for (int64_t i = 0; i < e.numel(); ++i) scale = std::max(scale, std::fabs(e.data<float>()[i]));
        for (int threads : {3, 4, 5, 7}) {
            auto ctx = cpu->create_context();
            ctx->set_num_threads(threads);
            Tensor y = ctx->run({{"x", x}}).begin()->second;
            ASSERT_EQ(y.shape(), e.shape());
            float max_err = 0.f;
            for (int64_t i = 0; i < y.numel(); ++i)
                max_err = std::max(max_err, std::fabs(y.data<float>()[i] - e.data<float>()[i]));
            EXPECT_LT(max_err, 1e-5f * std::max(1.f, scale)) << "threads " << threads << ", " << c.height << " rows";
        }
    }
}

// KILN_CPU_EXPAND_DW_PROJECT_MIN_ROWS=N leaves the projection out of nodes with fewer output rows;
// KILN_CPU_EXPAND_DW_PROJECT=0 keeps it a separate convolution everywhere.
TEST(CpuExpandDepthwiseProjectSwitch, MinRowsAndEnvZero) {
    NetworkDefinition small, large;
    make_net(small, ProjCase{1, 24, 144, 24, 13, 14, 3, 1, true});
    make_net(large, ProjCase{1, 24, 144, 24, 28, 28, 3, 1, true});
    ::setenv("KILN_CPU_EXPAND_DW_PROJECT_MIN_ROWS", "14", 1);
    EXPECT_EQ(fused_layers(*build(small, "cpu")), std::make_pair(1, 0));
    EXPECT_EQ(fused_layers(*build(large, "cpu")), std::make_pair(1, 1));
    ::unsetenv("KILN_CPU_EXPAND_DW_PROJECT_MIN_ROWS");
    EXPECT_EQ(fused_layers(*build(small, "cpu")), std::make_pair(1, 1));
    std::shared_ptr<Engine> on = build(large, "cpu");
    EXPECT_EQ(fused_layers(*on), std::make_pair(1, 1));
    EXPECT_EQ(layers(*on), 3);
    test_util::expect_matches_reference(*on, *build(large, "reference"), {1, 5, 28, 28});
    ::setenv("KILN_CPU_EXPAND_DW_PROJECT", "0", 1);
    std::shared_ptr<Engine> off = build(large, "cpu");
    ::unsetenv("KILN_CPU_EXPAND_DW_PROJECT");
    EXPECT_EQ(fused_layers(*off), std::make_pair(1, 0));
    EXPECT_EQ(layers(*off), 4);
}

// The reference kernel with Wp, Bp, Z against the same node without them plus y = Bp + Wp d + Z in double.
TEST(CpuExpandDepthwiseProjectReference, ProjectionOnTopOfTheBlock) {
    const int64_t n = 2, cin = 5, c = 12, cout = 5, h = 6, w = 7;
    Tensor x = random_tensor({n, cin, h, w}, 1), w1 = random_tensor({c, cin, 1, 1}, 2), b1 = random_tensor({c}, 3);
    Tensor w2 = random_tensor({c, 1, 3, 3}, 4), b2 = random_tensor({c}, 5), wp = random_tensor({cout, c, 1, 1}, 6);
    Tensor bp = random_tensor({cout}, 7), z = random_tensor({n, cout, h, w}, 8);
    auto info = [](const Tensor& t, bool constant) {
        ops::TensorInfo i;
        i.dims.assign(t.shape().begin(), t.shape().end());
        if (constant) i.value = &t;
        return i;
    };
    ops::TensorInfo absent;
    absent.present = false;
    AttributeMap attrs;
    attrs.set("kernel_shape", std::vector<int64_t>{3, 3});
    attrs.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    attrs.set("group", c);
    attrs.set("activation", std::string("Relu"));
    attrs.set("expand_activation", std::string("Relu"));
    Tensor d(DataType::kFloat32, {n, c, h, w}), y(DataType::kFloat32, {n, cout, h, w});
    const std::vector<ops::TensorInfo> block = {info(x, false), info(w1, true), info(b1, true), info(w2, true),
                                                info(b2, true)};
    backends::KernelNode plain{"blk", "FusedExpandDepthwise", attrs, block, {info(d, false)}};
    backends::KernelNode proj{"blk", "FusedExpandDepthwise", attrs, block, {info(y, false)}};
    proj.inputs.insert(proj.inputs.end(), {absent, absent, absent, absent, info(wp, true), info(bp, true),
                                           info(z, false)});
    auto ref = backends::make_backend("reference");
    ASSERT_TRUE(ref->supports(proj));
    ref->create_kernel(plain)->execute({{&x, &w1, &b1, &w2, &b2}, {&d}, 1});
    ref->create_kernel(proj)->execute(
        {{&x, &w1, &b1, &w2, &b2, nullptr, nullptr, nullptr, nullptr, &wp, &bp, &z}, {&y}, 1});
    for (int64_t i = 0; i < n; ++i)
        for (int64_t o = 0; o < cout; ++o)
            for (int64_t p = 0; p < h * w; ++p) {
                double want = bp.data<float>()[o] + z.data<float>()[(i * cout + o) * h * w + p];
                for (int64_t j = 0; j < c; ++j)
                    want += double(wp.data<float>()[o * c + j]) * d.data<float>()[(i * c + j) * h * w + p];
                EXPECT_NEAR(y.data<float>()[(i * cout + o) * h * w + p], want, 1e-5 * (1 + std::fabs(want)));
            }
}

}  // namespace kiln

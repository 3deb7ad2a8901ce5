// --bf16 keeps activations bf16 (nChw16c_bf16) between bf16 layers: convolutions (src, residual Z, dst), MaxPool
// and the input of GlobalAveragePool. A small ResNet (stem conv + MaxPool, two bottlenecks, one with a projection
// shortcut, GAP, classifier) with odd channel counts, batch > 1 and residual sums must stay within the bf16
// tolerance of docs/PERFORMANCE.md (cosine >= 0.999, relative L2 <= 2e-2) against the reference backend in fp32,
// and must actually have run on bf16 values; a value read by a layer that cannot take bf16 stays fp32.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "src/backends/cpu/bf16.h"
#include "src/common/strings.h"
#include "src/plan/plan_model.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::random_tensor;

struct Case {
    int64_t batch, channels, mid, height, width;  // the bottlenecks: channels -> mid -> 2 * channels
};

// conv k x k (+ relu) with weights scaled to keep activations of order 1 through the network
std::string conv(NetworkDefinition& net, const std::string& x, int64_t in, int64_t out, int64_t k, uint32_t seed,
                 int64_t stride = 1, bool relu = true) {
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{k, k});
    a.set("pads", std::vector<int64_t>{k / 2, k / 2, k / 2, k / 2});
    a.set("strides", std::vector<int64_t>{stride, stride});
    Tensor w = random_tensor({out, in, k, k}, seed);
    const float scale = 2.f / std::sqrt(static_cast<float>(in * k * k));
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] *= scale;
    std::string y = net.add_layer("Conv", {x, net.add_constant(cat("w", seed), w),
                                           net.add_constant(cat("b", seed), random_tensor({out}, seed + 1))},
                                  a, 1, cat("conv", seed))[0];
    return relu ? net.add_layer("Relu", {y})[0] : y;
}

// bottleneck: relu(conv1x1(relu(conv3x3(relu(conv1x1(x))))) + shortcut), shortcut = x or a 1x1 projection
std::string bottleneck(NetworkDefinition& net, const std::string& x, int64_t in, int64_t mid, int64_t out,
                       uint32_t seed) {
    std::string a = conv(net, x, in, mid, 1, seed);
    std::string b = conv(net, a, mid, mid, 3, seed + 10);
    std::string c = conv(net, b, mid, out, 1, seed + 20, 1, false);
    std::string s = in == out ? x : conv(net, x, in, out, 1, seed + 30, 1, false);
    return net.add_layer("Relu", {net.add_layer("Add", {c, s})[0]})[0];
}

// stem conv 3x3 stride 2 -> MaxPool -> bottleneck (projection) -> bottleneck (identity) -> `tail` -> GAP -> MatMul.
// `tail`: a per-channel Mul before the GAP (kiln's elementwise kernels take fp32 only: that value stays fp32).
void make_net(NetworkDefinition& net, const Case& c, bool tail) {
    const int64_t C = c.channels;
    std::string x = net.add_input("x", DataType::kFloat32, {c.batch, 3, c.height, c.width});
    std::string s = conv(net, x, 3, C, 3, 1, 2);
    AttributeMap mp;
    mp.set("kernel_shape", std::vector<int64_t>{3, 3});
    mp.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    mp.set("strides", std::vector<int64_t>{2, 2});
    std::string p = net.add_layer("MaxPool", {s}, mp)[0];
    std::string b1 = bottleneck(net, p, C, c.mid, 2 * C, 100);
    std::string b2 = bottleneck(net, b1, 2 * C, c.mid, 2 * C, 200);
    if (tail) {
        Tensor scale = random_tensor({1, 2 * C, 1, 1}, 9);
        for (int64_t i = 0; i < scale.numel(); ++i) scale.data<float>()[i] += 1.f;
        b2 = net.add_layer("Mul", {b2, net.add_constant("scale", scale)})[0];
    }
    AttributeMap flat;
    flat.set("axis", int64_t{1});
    std::string f = net.add_layer("Flatten", {net.add_layer("GlobalAveragePool", {b2})[0]}, flat)[0];
    net.mark_output(
        net.add_layer("MatMul", {f, net.add_constant("fc", random_tensor({2 * C, 10}, 7))}, {}, 1, "classifier")[0]);
}

std::shared_ptr<Engine> build(const NetworkDefinition& net, const std::string& backend, const std::string& precision,
                              std::map<std::string, std::string> layers = {}) {
    StderrLogger logger(Severity::kWarning);
    BuilderConfig config;
    config.backend = backend;
    config.precision = precision;
    config.layer_precision = std::move(layers);
    return Builder(logger).build(net, config);
}

int values_in(const Engine& e, Layout l) {
    int n = 0;
    for (const plan::PlanValue& v : e.plan_model().values) n += v.layout == l;
    return n;
}

// cosine similarity and relative L2 error of `got` against `want`
void compare(const Tensor& got, const Tensor& want, double* cosine, double* rel_l2) {
    double dot = 0, gg = 0, ww = 0, diff = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
        double g = got.data<float>()[i], w = want.data<float>()[i];
        dot += g * w, gg += g * g, ww += w * w, diff += (g - w) * (g - w);
    }
    *cosine = dot / std::sqrt(gg * ww);
    *rel_l2 = std::sqrt(diff / ww);
}

void expect_within_tolerance(Engine& bf16, Engine& ref, const Case& c) {
    auto ref_ctx = ref.create_context();
    for (int threads : {1, 2}) {
        auto ctx = bf16.create_context();
        ctx->set_num_threads(threads);
        for (uint32_t seed : {31u, 32u}) {  // twice: the arena is reused
            Tensor x = random_tensor({c.batch, 3, c.height, c.width}, seed);
            Tensor got = ctx->run({{"x", x}}).begin()->second;
            Tensor want = ref_ctx->run({{"x", x}}).begin()->second;
            ASSERT_EQ(got.shape(), want.shape());
            for (int64_t i = 0; i < got.numel(); ++i) ASSERT_TRUE(std::isfinite(got.data<float>()[i])) << i;
            double cosine = 0, rel_l2 = 0;
            compare(got, want, &cosine, &rel_l2);
            EXPECT_GE(cosine, 0.999) << "threads " << threads << ", seed " << seed;
            EXPECT_LE(rel_l2, 2e-2) << "threads " << threads << ", seed " << seed;
        }
    }
}

}  // namespace

class CpuBf16Layout : public ::testing::TestWithParam<Case> {};

TEST_P(CpuBf16Layout, Bf16ChainsMatchTheReference) {
    if (!backends::cpu::cpu_has_bf16()) GTEST_SKIP() << "no AVX512-BF16 here";
    const Case c = GetParam();
    NetworkDefinition net;
    make_net(net, c, false);
    std::shared_ptr<Engine> bf16 = build(net, "cpu", "bf16");
    std::shared_ptr<Engine> fp32 = build(net, "cpu", "fp32");
    std::shared_ptr<Engine> ref = build(net, "reference", "fp32");
    // every activation between the stem and the GAP: stem, pool, 3 + 1 + 3 convolutions (the Add + Relu fuse into
    // the last conv of each bottleneck as a residual sum)
    EXPECT_EQ(values_in(*bf16, Layout::kNChw16cBf16), 9);
    EXPECT_EQ(values_in(*fp32, Layout::kNChw16cBf16), 0);
    EXPECT_GE(values_in(*fp32, Layout::kNChw16c), 9);
    // oneDNN 2.6 has no bf16 3x3 kernel for channels that are not a multiple of 16: those layers fall back to fp32
    // and convert their bf16 src / Z / dst (the reorder paths)
    const bool full_blocks = c.channels % 16 == 0 && c.mid % 16 == 0;
    bool pool_bf16 = false;
    int fallbacks = 0;
    for (const LayerInfo& l : bf16->layers()) {
        if (l.op_type == "MaxPool") pool_bf16 = l.kernel.find("bf16") != std::string::npos;
        if (l.op_type == "FusedConv" || l.op_type == "Conv")
            fallbacks += l.kernel.find("fp32_fallback") != std::string::npos;
    }
    if (full_blocks) EXPECT_EQ(fallbacks, 0);
    EXPECT_TRUE(pool_bf16);
    // the identity bottleneck's residual sum still runs in place over its bf16 input
    const plan::PlanModel& m = bf16->plan_model();
    int in_place = 0;
    for (const plan::PlanNode& n : m.nodes)
        if (n.op_type == "FusedConv" && n.inputs.size() > 3 && n.inputs[3] >= 0 &&
            m.values[n.inputs[3]].layout == Layout::kNChw16cBf16)
            in_place += m.memory.offsets[n.inputs[3]] == m.memory.offsets[n.outputs[0]];
    EXPECT_GE(in_place, 1);
    expect_within_tolerance(*bf16, *ref, c);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuBf16Layout,
                         ::testing::Values(Case{1, 32, 16, 28, 28},   // channels a multiple of 16
                                           Case{1, 24, 24, 23, 19},   // padded to 32, odd sizes
                                           Case{3, 40, 15, 17, 30},   // batch 3, padded to 48 and 16
                                           Case{2, 16, 32, 12, 12}));

// A layer that cannot take bf16 (an elementwise Mul) or is pinned to fp32 keeps its neighbouring values fp32; the
// result is the same within the tolerance.
TEST(CpuBf16Layout, NonBf16ReadersKeepFp32) {
    if (!backends::cpu::cpu_has_bf16()) GTEST_SKIP() << "no AVX512-BF16 here";
    const Case c{2, 24, 32, 20, 20};
    NetworkDefinition net;
    make_net(net, c, true);
    std::shared_ptr<Engine> ref = build(net, "reference", "fp32");
    std::shared_ptr<Engine> mul = build(net, "cpu", "bf16");
    EXPECT_EQ(values_in(*mul, Layout::kNChw16cBf16), 8);  // the last bottleneck's output feeds the Mul
    {
        SCOPED_TRACE("Mul reader");
        expect_within_tolerance(*mul, *ref, c);
    }
    // conv210 (the identity bottleneck's 3x3) in fp32: its input and output stay fp32 nChw16c
    NetworkDefinition net2;
    make_net(net2, c, false);
    std::shared_ptr<Engine> pinned = build(net2, "cpu", "bf16", {{"conv210", "fp32"}});
    std::shared_ptr<Engine> ref2 = build(net2, "reference", "fp32");
    EXPECT_EQ(values_in(*pinned, Layout::kNChw16cBf16), 7);
    for (const LayerInfo& l : pinned->layers()) {
        bool is_pinned = l.name == "conv210";
        for (const std::string& f : l.fused_from) is_pinned |= f == "conv210";
        if (is_pinned) EXPECT_NE(l.kernel.find("conv2d_f32_nChw16c_nChw16c"), std::string::npos) << l.kernel;
    }
    {
        SCOPED_TRACE("conv210 in fp32");
        expect_within_tolerance(*pinned, *ref2, c);
    }
}

}  // namespace kiln

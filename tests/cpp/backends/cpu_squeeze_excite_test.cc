// The squeeze-excite path of the cpu backend: 1x1 convolutions of a 1x1 image run as a matrix-vector product per
// image (conv_matvec.cc), with every fused activation, with and without bias, odd channel counts, batch 1 and 3
// and a symbolic batch; each must match the reference backend.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "src/common/strings.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct MatVecCase {
    int64_t batch, in, out;
    std::string act;  // "", Relu, Sigmoid, Silu (x * sigmoid(x)), Clip
    bool bias;
    bool symbolic_batch;
};

std::string scalar(NetworkDefinition& net, const std::string& name, float v) {
    Tensor t(DataType::kFloat32, {});
    t.data<float>()[0] = v;
    return net.add_constant(name, t);
}

void make_net(NetworkDefinition& net, const MatVecCase& c) {
    SymShape xs = {c.symbolic_batch ? Dim("batch") : Dim(c.batch), c.in, 1, 1};
    std::string x = net.add_input("x", DataType::kFloat32, xs);
    AttributeMap a;
    a.set("kernel_shape", std::vector<int64_t>{1, 1});
    std::vector<std::string> ins = {x, net.add_constant("w", random_tensor({c.out, c.in, 1, 1}, 3))};
    if (c.bias) ins.push_back(net.add_constant("b", random_tensor({c.out}, 4)));
    std::string y = net.add_layer("Conv", ins, a)[0];
    if (c.act == "Relu" || c.act == "Sigmoid") y = net.add_layer(c.act, {y})[0];
    if (c.act == "Silu") y = net.add_layer("Mul", {y, net.add_layer("Sigmoid", {y})[0]})[0];
    if (c.act == "Clip") y = net.add_layer("Clip", {y, scalar(net, "lo", 0.f), scalar(net, "hi", 0.1f)})[0];
    net.mark_output(y);
}

}  // namespace

class CpuConvMatVec : public ::testing::TestWithParam<MatVecCase> {};

TEST_P(CpuConvMatVec, MatchesTheReference) {
    const MatVecCase c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    int matvec = 0;
    for (const LayerInfo& l : cpu->layers()) matvec += l.kernel.find("matvec") != std::string::npos;
    EXPECT_EQ(matvec, 1);
    auto ctx = cpu->create_context();
    auto ref_ctx = ref->create_context();
    for (uint32_t seed : {21u, 22u}) {
        Tensor x = random_tensor({c.batch, c.in, 1, 1}, seed);
        for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] *= 8.f;  // reach the activations' tails
        Tensor y = ctx->run({{"x", x}}).begin()->second;
        Tensor e = ref_ctx->run({{"x", x}}).begin()->second;
        ASSERT_EQ(y.shape(), e.shape());
        for (int64_t i = 0; i < y.numel(); ++i)
            ASSERT_NEAR(y.data<float>()[i], e.data<float>()[i], 1e-5f * (1.f + std::fabs(e.data<float>()[i])))
                << "element " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuConvMatVec,
                         ::testing::Values(MatVecCase{1, 32, 8, "Silu", true, false},     // EfficientNet's reduce
                                           MatVecCase{1, 8, 32, "Sigmoid", true, false},  // ... and expand
                                           MatVecCase{3, 37, 50, "Relu", true, false},    // odd sizes, batch 3
                                           MatVecCase{3, 5, 3, "", false, false},         // no bias, no activation
                                           MatVecCase{2, 16, 17, "Clip", true, true},     // symbolic batch
                                           MatVecCase{1, 1152, 48, "Silu", true, true},
                                           MatVecCase{3, 48, 1152, "Sigmoid", false, false}));

}  // namespace kiln

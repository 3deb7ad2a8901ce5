// kiln's gemv kernel (matmul_gemv.cc) for matmuls with a constant B and at most 4 rows of A: Gemm with transB (the
// classifier form, FusedMatMul trans_b after gemm_to_matmul), MatMul + bias + Relu, a residual (in place), column
// counts that are and are not multiples of the 16-column panel and of the 4-panel group, 1 to 4 rows (and 6:
// oneDNN), one and two threads. Each must match the reference backend and must have run on the kernel it should.
#include <gtest/gtest.h>

#include <cstdlib>

#include "kiln/kiln.h"
#include "src/common/strings.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

struct GemvCase {
    Shape x;           // A's shape (the last dim is K)
    int64_t n;         // columns
    std::string form;  // "gemm": Gemm(transB=1) + bias; "relu": MatMul + bias + Relu; "residual": two MatMuls, the
                       // second adding the first's output
    bool gemv;         // expected on kiln's gemv kernel
};

void make_net(NetworkDefinition& net, const GemvCase& c) {
    std::string x = net.add_input("x", DataType::kFloat32, to_sym(c.x));
    const int64_t k = c.x.back();
    if (c.form == "gemm") {
        AttributeMap a;
        a.set("transB", int64_t{1});
        net.mark_output(net.add_layer(
            "Gemm",
            {x, net.add_constant("w", random_tensor({c.n, k}, 1)), net.add_constant("b", random_tensor({c.n}, 2))},
            a)[0]);
        return;
    }
    std::string h = net.add_layer("MatMul", {x, net.add_constant("w", random_tensor({k, c.n}, 3))})[0];
    h = net.add_layer("Add", {h, net.add_constant("b", random_tensor({c.n}, 4))})[0];
    if (c.form == "relu") {
        net.mark_output(net.add_layer("Relu", {h})[0]);
        return;
    }
    std::string g = net.add_layer("MatMul", {h, net.add_constant("w2", random_tensor({c.n, c.n}, 5))})[0];
    net.mark_output(net.add_layer("Add", {g, h})[0]);
}

int gemv_layers(const Engine& e) {
    int n = 0;
    for (const LayerInfo& l : e.layers()) n += l.kernel.rfind("gemv_f32", 0) == 0;
    return n;
}

}  // namespace

class CpuGemv : public ::testing::TestWithParam<GemvCase> {};

TEST_P(CpuGemv, MatchesTheReference) {
    const GemvCase c = GetParam();
    NetworkDefinition net;
    make_net(net, c);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    const int matmuls = c.form == "residual" ? 2 : 1;
    EXPECT_EQ(gemv_layers(*cpu), c.gemv ? matmuls : 0);
    test_util::expect_matches_reference(*cpu, *ref, c.x);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuGemv,
                         ::testing::Values(GemvCase{{1, 1280}, 1000, "gemm", true},     // the classifier: 63 panels
                                           GemvCase{{1, 37}, 19, "gemm", true},         // partial panels, odd K
                                           GemvCase{{2, 64}, 64, "gemm", true},         // one whole group, 2 rows
                                           GemvCase{{3, 40}, 70, "relu", true},         // MatMul + bias + Relu
                                           GemvCase{{1, 4, 33}, 100, "relu", true},     // 4 rows in leading dims
                                           GemvCase{{1, 1, 48}, 80, "residual", true},  // Z added (in place)
                                           GemvCase{{4, 7}, 5, "residual", true},       // fewer columns than a panel
                                           GemvCase{{6, 40}, 70, "relu", false}));      // 6 rows: oneDNN

TEST(CpuGemvSwitch, EnvZeroUsesOneDnn) {
    NetworkDefinition net;
    make_net(net, GemvCase{{1, 1280}, 1000, "gemm", true});
    ::setenv("KILN_CPU_GEMV", "0", 1);
    std::shared_ptr<Engine> off = build(net, "cpu");
    ::unsetenv("KILN_CPU_GEMV");
    EXPECT_EQ(gemv_layers(*off), 0);
}

}  // namespace kiln

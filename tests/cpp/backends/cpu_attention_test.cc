// The cpu backend's fused Attention (register-blocked Q K^T and P V, AVX-512) against the reference backend on odd
// sizes: query rows not a multiple of the 6-row block or the 32-row task, key lengths and head sizes not multiples
// of 16, K given transposed or not, additive and boolean masks broadcast over heads / rows, batch broadcast of K/V;
// in fp32 (within 1e-4) and with --bf16 (bf16 operands, fp32 accumulation: relative L2 error within 1e-2).
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"
#include "src/backends/cpu/bf16.h"

namespace kiln {

namespace {

Tensor random_tensor(Shape shape, uint32_t seed, DataType dtype = DataType::kFloat32) {
    Tensor t(dtype, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) {
        seed = seed * 1664525u + 1013904223u;
        float u = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24);
        if (dtype == DataType::kBool)
            t.data<uint8_t>()[i] = u > 0.3f || i % 7 == 0;  // never a fully masked row
        else
            t.data<float>()[i] = 4.f * (u - 0.5f);
    }
    return t;
}

struct Case {
    Shape q, k, v, mask;
    bool k_transposed = false, mask_bool = false;
};

void check(const Case& c, int threads, const std::string& precision = "fp32") {
    NetworkDefinition net;
    std::string q = net.add_input("q", DataType::kFloat32, to_sym(c.q));
    std::string k = net.add_input("k", DataType::kFloat32, to_sym(c.k));
    std::string v = net.add_input("v", DataType::kFloat32, to_sym(c.v));
    std::vector<std::string> ins = {q, k, v};
    DataType mdt = c.mask_bool ? DataType::kBool : DataType::kFloat32;
    if (!c.mask.empty()) ins.push_back(net.add_input("m", mdt, to_sym(c.mask)));
    AttributeMap a;
    a.set("k_transposed", int64_t{c.k_transposed});
    a.set("mask_is_bool", int64_t{c.mask_bool});
    net.mark_output(net.add_layer("Attention", ins, a)[0]);
    std::map<std::string, Tensor> feeds = {{"q", random_tensor(c.q, 1)}, {"k", random_tensor(c.k, 2)},
                                           {"v", random_tensor(c.v, 3)}};
    if (!c.mask.empty()) feeds["m"] = random_tensor(c.mask, 4, mdt);
    NullLogger logger;
    BuilderConfig cpu, ref;
    cpu.backend = "cpu";
    cpu.precision = precision;
    ref.backend = "reference";
    auto engine = Builder(logger).build(net, cpu);
    ASSERT_EQ(engine->layers()[0].backend, "cpu");
    EXPECT_NE(engine->layers()[0].kernel.find(precision == "bf16" ? "bf16" : "f32"), std::string::npos);
    auto ctx = engine->create_context();
    ctx->set_num_threads(threads);
    Tensor got = ctx->run(feeds).begin()->second;
    Tensor want = Builder(logger).build(net, ref)->create_context()->run(feeds).begin()->second;
    ASSERT_EQ(got.shape(), want.shape());
    if (precision == "fp32") {
        for (int64_t i = 0; i < want.numel(); ++i)
            ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-4f) << "element " << i;
        return;
    }
    double err = 0, norm = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
        double w = want.data<float>()[i], g = got.data<float>()[i];
        err += (g - w) * (g - w);
        norm += w * w;
    }
    EXPECT_LE(std::sqrt(err / norm), 1e-2) << shape_str(c.q) << " x " << shape_str(c.k);
    EXPECT_GT(err, 0.0);
}

}  // namespace

TEST(CpuAttention, OddSizesMatchTheReference) {
    const std::vector<Case> cases = {
        {{2, 3, 37, 24}, {2, 3, 45, 24}, {2, 3, 45, 20}, {}},
        {{1, 2, 7, 16}, {1, 2, 16, 9}, {1, 2, 9, 70}, {1, 1, 7, 9}, true},
        {{2, 4, 33, 8}, {2, 1, 130, 8}, {2, 1, 130, 8}, {2, 1, 1, 130}},          // K/V broadcast over heads
        {{1, 2, 65, 12}, {1, 2, 65, 12}, {1, 2, 65, 12}, {65, 65}, false, true},  // boolean mask over rows
        {{5, 1, 3}, {5, 200, 3}, {5, 200, 1}, {5, 1, 200}},
    };
    for (const Case& c : cases) {
        for (int threads : {1, 2}) {
            check(c, threads);
            if (backends::cpu::cpu_has_bf16()) check(c, threads, "bf16");
        }
    }
}

}  // namespace kiln

// --backend cuda without a GPU (CI: CUDA compiled in, no device; or a kiln built without CUDA): building an engine
// fails cleanly with kUnsupported and a message that says why, never a crash. On a GPU machine the same network
// builds and runs, and matches the host result.
#include <gtest/gtest.h>

#include <cmath>

#include "kiln/kiln.h"

namespace kiln {

namespace {

struct Net {
    Tensor w{DataType::kFloat32, {5, 3}};
    NetworkDefinition net;
    Net() {
        for (int i = 0; i < 15; ++i) w.data<float>()[i] = 0.1f * (i - 7);
        std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 5});
        std::string mm = net.add_layer("MatMul", {x, net.add_constant("w", w)})[0];
        net.mark_output(net.add_layer("Relu", {mm}, {}, 1, "relu")[0]);
    }
};

}  // namespace

TEST(CudaBackend, WithoutAGpuTheBuildFailsCleanlyWithUnsupported) {
    Net n;
    NullLogger logger;
    BuilderConfig config;
    config.backend = "cuda";
    std::shared_ptr<Engine> engine;
    try {
        engine = Builder(logger).build(n.net, config);
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
        std::string msg = e.what();
        EXPECT_TRUE(msg.find("no CUDA device found") != std::string::npos ||
                    msg.find("without the CUDA backend") != std::string::npos)
            << msg;
        return;
    }
    // a GPU is present: the engine runs and matches the reference
    Tensor x(DataType::kFloat32, {3, 5});
    for (int i = 0; i < 15; ++i) x.data<float>()[i] = std::sin(0.3f * i);
    auto out = engine->create_context()->run({{"x", x}});
    const Tensor& y = out.begin()->second;
    ASSERT_EQ(y.numel(), 9);
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) {
            float acc = 0.f;
            for (int k = 0; k < 5; ++k) acc += x.data<float>()[r * 5 + k] * n.w.data<float>()[k * 3 + c];
            EXPECT_NEAR(y.data<float>()[r * 3 + c], std::max(acc, 0.f), 1e-5f);
        }
}

// The error code of a build that must fail (kInternal when it does not).
ErrorCode build_error(const NetworkDefinition& net, const BuilderConfig& config, std::string* msg = nullptr) {
    NullLogger logger;
    try {
        Builder(logger).build(net, config);
    } catch (const Error& e) {
        if (msg) *msg = e.what();
        return e.code();
    }
    ADD_FAILURE() << "the build succeeded";
    return ErrorCode::kInternal;
}

TEST(CudaBackend, PrecisionIsValidatedAndStored) {
    Net n;
    BuilderConfig config;
    config.precision = "int4";
    EXPECT_EQ(build_error(n.net, config), ErrorCode::kInvalidArgument);
    std::string msg;
    config.precision = "fp16";  // a CUDA precision
    config.backend = "cpu";
    EXPECT_EQ(build_error(n.net, config, &msg), ErrorCode::kUnsupported);
    EXPECT_NE(msg.find("--backend cuda"), std::string::npos) << msg;
    config.precision = "bf16";
    config.backend = "reference";
    EXPECT_EQ(build_error(n.net, config), ErrorCode::kUnsupported);
    config.precision = "fp32";
    config.backend = "cpu";
    config.tf32 = true;
    EXPECT_EQ(build_error(n.net, config), ErrorCode::kUnsupported);
    config.tf32 = false;
    config.backend = "reference";
    config.layer_precision = {{"no_such_layer", "fp32"}};
    EXPECT_EQ(build_error(n.net, config, &msg), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("no_such_layer"), std::string::npos) << msg;
    config.layer_precision = {{"relu", "fp16x"}};
    EXPECT_EQ(build_error(n.net, config), ErrorCode::kInvalidArgument);
    config.layer_precision = {{"relu", "fp32"}};  // resolved against the optimised graph (relu is fused: -O3)
    NullLogger logger;
    auto engine = Builder(logger).build(n.net, config);
    EXPECT_EQ(engine->metadata().at("precision"), "fp32");
    const std::string lp = engine->metadata().at("layer_precision");
    EXPECT_NE(lp.find("=fp32"), std::string::npos) << lp;
}

}  // namespace kiln

namespace kiln {

// FusedMatMul(A, W, bias, trans_b=1) from fuse_matmul_transpose (W shared with a Gather, over constant folding's
// limit, as GPT-2's tied embedding): cuBLASLt's transposed B, in fp32 and fp16, against the reference backend.
TEST(CudaBackend, TransposedWeightMatMulMatchesTheReference) {
    const int64_t vocab = 40000, hidden = 16;
    Tensor w(DataType::kFloat32, {vocab, hidden}), b(DataType::kFloat32, {vocab});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 0.2f * std::sin(0.37f * i);
    for (int64_t i = 0; i < b.numel(); ++i) b.data<float>()[i] = 0.1f * std::cos(0.11f * i);
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 3, hidden});
    std::string ids = net.add_input("ids", DataType::kInt64, {2});
    std::string wv = net.add_constant("wte", w);
    net.mark_output(net.add_layer("Gather", {wv, ids})[0]);
    AttributeMap perm;
    perm.set("perm", std::vector<int64_t>{1, 0});
    std::string mm = net.add_layer("MatMul", {x, net.add_layer("Transpose", {wv}, perm)[0]})[0];
    net.mark_output(net.add_layer("Add", {mm, net.add_constant("b", b)}, {}, 1, "logits")[0]);
    Tensor xt(DataType::kFloat32, {2, 3, hidden}), it(DataType::kInt64, {2});
    for (int64_t i = 0; i < xt.numel(); ++i) xt.data<float>()[i] = std::sin(0.7f * i);
    it.data<int64_t>()[0] = 5;
    it.data<int64_t>()[1] = vocab - 1;
    NullLogger logger;
    BuilderConfig ref;
    ref.backend = "reference";
    auto want = Builder(logger).build(net, ref)->create_context()->run({{"x", xt}, {"ids", it}});
    for (const char* precision : {"fp32", "fp16"}) {
        BuilderConfig config;
        config.backend = "cuda";
        config.precision = precision;
        std::shared_ptr<Engine> engine;
        try {
            engine = Builder(logger).build(net, config);
        } catch (const Error& e) {
            GTEST_SKIP() << "no CUDA backend or device here: " << e.what();
        }
        bool trans_b = false;
        for (const LayerInfo& l : engine->layers())
            for (const auto& [k, v] : l.attributes)
                trans_b |= l.op_type == "FusedMatMul" && k == "trans_b" && v == "1";
        EXPECT_TRUE(trans_b);
        auto got = engine->create_context()->run({{"x", xt}, {"ids", it}});
        const float tol = std::string(precision) == "fp16" ? 5e-3f : 1e-4f;
        for (const auto& [name, t] : want) {
            const Tensor& g = got.at(name);
            ASSERT_EQ(g.shape(), t.shape()) << name;
            for (int64_t i = 0; i < t.numel(); ++i)
                ASSERT_NEAR(g.data<float>()[i], t.data<float>()[i], tol)
                    << precision << " " << name << "[" << i << "]";
        }
    }
}

}  // namespace kiln

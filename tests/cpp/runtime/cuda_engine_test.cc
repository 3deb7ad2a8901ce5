// CUDA engines on a GPU (skipped without one): device buffers + enqueue match run(); CUDA-graph replays give the
// same results as eager launches for changing input data; the plan records the GPU architecture and refuses another
// one in plain words; the timing cache is written and read back; a user stream is honoured.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "kiln/kiln.h"
#include "src/plan/plan_model.h"

namespace kiln {

namespace {

// MatMul -> Relu -> MatMul -> Softmax on a fixed [4, 16] input.
struct SmallNet {
    NetworkDefinition net;
    SmallNet() {
    Tensor w1(DataType::kFloat32, {16, 32}), w2(DataType::kFloat32, {32, 8});
    for (int i = 0; i < w1.numel(); ++i) w1.data<float>()[i] = std::cos(0.37f * i) * 0.3f;
    for (int i = 0; i < w2.numel(); ++i) w2.data<float>()[i] = std::sin(0.11f * i) * 0.3f;
    std::string x = net.add_input("x", DataType::kFloat32, {4, 16});
    std::string h = net.add_layer("MatMul", {x, net.add_constant("w1", w1)})[0];
    h = net.add_layer("Relu", {h})[0];
    h = net.add_layer("MatMul", {h, net.add_constant("w2", w2)})[0];
    net.mark_output(net.add_layer("Softmax", {h}, {}, 1, "probs")[0]);
    }
};

Tensor input(int seed) {
    Tensor x(DataType::kFloat32, {4, 16});
    for (int i = 0; i < 64; ++i) x.data<float>()[i] = std::sin(0.3f * i + seed);
    return x;
}

bool have_gpu() { return cuda_device_count() > 0; }

}  // namespace

TEST(CudaEngine, GraphReplaysAndDeviceBuffersMatchTheHost) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
    NullLogger logger;
    SmallNet small;
    const NetworkDefinition& net = small.net;
    BuilderConfig hc;
    hc.backend = "reference";
    auto host = Builder(logger).build(net, hc);
    BuilderConfig cc;
    cc.backend = "cuda";
    auto gpu = Builder(logger).build(net, cc);
    ASSERT_TRUE(gpu->on_device());
    auto hctx = host->create_context();
    auto gctx = gpu->create_context();
    const std::string y = gpu->outputs()[0].name;
    for (int seed = 0; seed < 5; ++seed) {  // eager, capture, then replays with new data each time
        Tensor x = input(seed);
        Tensor want = hctx->run({{"x", x}}).at(y);
        Tensor got = gctx->run({{"x", x}}).at(y);
        for (int i = 0; i < want.numel(); ++i) EXPECT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-5f);
        EXPECT_GT(gctx->last_gpu_ms(), 0.0);
    }
    // device buffers, with and without graphs
    DeviceBuffer in(64 * 4), out(32 * 4);
    gctx->set_tensor_address("x", in.data());
    gctx->set_tensor_address(y, out.data());
    EXPECT_EQ(gctx->output_shape(y), (Shape{4, 8}));
    for (bool graphs : {true, false}) {
        gctx->set_cuda_graphs(graphs);
        for (int seed = 10; seed < 14; ++seed) {
            Tensor x = input(seed);
            in.upload(x.raw(), x.bytes());
            gctx->enqueue();
            std::vector<float> got(32);
            out.download(got.data(), got.size() * 4);
            Tensor want = hctx->run({{"x", x}}).at(y);
            for (int i = 0; i < 32; ++i) EXPECT_NEAR(got[i], want.data<float>()[i], 1e-5f) << graphs;
        }
    }
}

TEST(CudaEngine, PlanRecordsTheArchitectureAndRefusesAnother) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
    NullLogger logger;
    BuilderConfig cc;
    cc.backend = "cuda";
    auto gpu = Builder(logger).build(SmallNet().net, cc);
    ASSERT_TRUE(gpu->metadata().count("cuda_arch"));
    EXPECT_EQ(gpu->metadata().at("cuda_arch").rfind("sm_", 0), 0u);
    EXPECT_FALSE(gpu->metadata().at("cuda_tactics").empty());  // tuned at build time (static shapes)
    std::vector<uint8_t> bytes = gpu->serialize();
    auto again = Runtime(logger).deserialize(bytes, "small.plan");  // same GPU: loads, reuses the tactics
    EXPECT_EQ(again->metadata().at("cuda_tactics"), gpu->metadata().at("cuda_tactics"));
    plan::PlanModel m = plan::deserialize(bytes.data(), bytes.size(), "small.plan");
    m.metadata["cuda_arch"] = "sm_10";
    m.metadata["cuda_device"] = "Imaginary GPU";
    std::vector<uint8_t> other = plan::serialize(m);
    try {
        Runtime(logger).deserialize(other, "other.plan");
        FAIL() << "expected kVersionMismatch";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kVersionMismatch);
        EXPECT_NE(std::string(e.what()).find("sm_10"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("rebuild"), std::string::npos) << e.what();
    }
}

TEST(CudaEngine, TimingCacheIsWrittenAndReused) {
    if (!have_gpu()) GTEST_SKIP() << "no CUDA device";
    NullLogger logger;
    auto path = std::filesystem::temp_directory_path() / "kiln_timing_cache_test.txt";
    std::filesystem::remove(path);
    BuilderConfig cc;
    cc.backend = "cuda";
    cc.timing_cache = path.string();
    auto first = Builder(logger).build(SmallNet().net, cc);
    ASSERT_TRUE(std::filesystem::exists(path));
    std::ifstream f(path);
    std::string header;
    std::getline(f, header);
    EXPECT_EQ(header.rfind("kiln-timing-cache 1 sm_", 0), 0u) << header;
    auto second = Builder(logger).build(SmallNet().net, cc);
    EXPECT_EQ(second->metadata().at("cuda_tactics"), first->metadata().at("cuda_tactics"));
    std::filesystem::remove(path);
}

}  // namespace kiln

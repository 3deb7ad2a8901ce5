// The caller-owned-buffer API (set_input_shape / set_tensor_address / output_shape / enqueue) on a host engine:
// host pointers, same results as run(), and clear errors for missing or unknown bindings.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/kiln.h"

namespace kiln {

namespace {

std::shared_ptr<Engine> mlp(Logger& logger) {
    NetworkDefinition net;
    Tensor w(DataType::kFloat32, {4, 3});
    for (int i = 0; i < 12; ++i) w.data<float>()[i] = 0.25f * (i - 6);
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 4});
    std::string mm = net.add_layer("MatMul", {x, net.add_constant("w", w)})[0];
    net.mark_output(net.add_layer("Relu", {mm}, {}, 1, "y")[0]);
    BuilderConfig config;
    config.backend = "reference";  // every kiln has it (GPU machines may lack oneDNN)
    return Builder(logger).build(net, config);
}

ErrorCode error_of(const std::function<void()>& f, std::string* msg) {
    try {
        f();
    } catch (const Error& e) {
        *msg = e.what();
        return e.code();
    }
    ADD_FAILURE() << "no error";
    return ErrorCode::kInternal;
}

}  // namespace

TEST(Enqueue, HostBuffersGiveTheSameResultsAsRun) {
    NullLogger logger;
    auto engine = mlp(logger);
    EXPECT_FALSE(engine->on_device());
    auto ctx = engine->create_context();
    Tensor x(DataType::kFloat32, {5, 4});
    for (int i = 0; i < 20; ++i) x.data<float>()[i] = std::sin(0.7f * i);
    Tensor expected = ctx->run({{"x", x}}).at(engine->outputs()[0].name);
    const std::string y = engine->outputs()[0].name;
    ctx->set_input_shape("x", {5, 4});
    EXPECT_EQ(ctx->output_shape(y), (Shape{5, 3}));
    std::vector<float> out(15, -1.f);
    ctx->set_tensor_address("x", x.raw());
    ctx->set_tensor_address(y, out.data());
    ctx->enqueue();
    for (int i = 0; i < 15; ++i) EXPECT_FLOAT_EQ(out[i], expected.data<float>()[i]);
    EXPECT_EQ(ctx->last_gpu_ms(), 0.0);
}

TEST(Enqueue, MissingAndUnknownBindingsAreClearErrors) {
    NullLogger logger;
    auto engine = mlp(logger);
    auto ctx = engine->create_context();
    std::string msg;
    EXPECT_EQ(error_of([&] { ctx->set_input_shape("nope", {1, 4}); }, &msg), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("'nope'"), std::string::npos) << msg;
    EXPECT_EQ(error_of([&] { ctx->set_tensor_address("nope", &msg); }, &msg), ErrorCode::kInvalidArgument);
    EXPECT_EQ(error_of([&] { ctx->set_tensor_address("x", nullptr); }, &msg), ErrorCode::kInvalidArgument);
    // symbolic batch and no shape yet
    EXPECT_EQ(error_of([&] { ctx->output_shape(engine->outputs()[0].name); }, &msg), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("set_input_shape"), std::string::npos) << msg;
    std::vector<float> x(8, 1.f);
    ctx->set_input_shape("x", {2, 4});
    ctx->set_tensor_address("x", x.data());
    EXPECT_EQ(error_of([&] { ctx->enqueue(); }, &msg), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("has no address"), std::string::npos) << msg;
    ctx->set_input_shape("x", {2, 5});  // wrong static dim: the same check as run()
    std::vector<float> y(10);
    ctx->set_tensor_address(engine->outputs()[0].name, y.data());
    EXPECT_EQ(error_of([&] { ctx->enqueue(); }, &msg), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("dimension 1 must be 4"), std::string::npos) << msg;
}

TEST(Enqueue, DeviceBufferWithoutAGpuIsUnsupported) {
    if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
    std::string msg;
    EXPECT_EQ(error_of([&] { DeviceBuffer b(16); }, &msg), ErrorCode::kUnsupported);
}

}  // namespace kiln

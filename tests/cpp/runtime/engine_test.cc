// The C++ API end to end on a network built in code: build, run, serialise/deserialise, share an engine across
// threads, and the run-time input checks.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "kiln/kiln.h"

namespace kiln {

namespace {

// y = relu(x @ w + b), x [batch, 4], w [4, 3], b [3]
struct Mlp {
    Tensor w{DataType::kFloat32, {4, 3}}, b{DataType::kFloat32, {3}};
    NetworkDefinition net;
    Mlp() {
        for (int i = 0; i < 12; ++i) w.data<float>()[i] = 0.1f * (i - 6);
        for (int i = 0; i < 3; ++i) b.data<float>()[i] = 0.05f * i;
        std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 4});
        std::string mm = net.add_layer("MatMul", {x, net.add_constant("w", w)})[0];
        std::string add = net.add_layer("Add", {mm, net.add_constant("b", b)})[0];
        net.mark_output(net.add_layer("Relu", {add}, {}, 1, "relu")[0]);
    }
    std::vector<float> expected(const Tensor& x) const {
        int64_t n = x.dim(0);
        std::vector<float> y(n * 3);
        for (int64_t r = 0; r < n; ++r)
            for (int c = 0; c < 3; ++c) {
                float acc = b.data<float>()[c];
                for (int k = 0; k < 4; ++k) acc += x.data<float>()[r * 4 + k] * w.data<float>()[k * 3 + c];
                y[r * 3 + c] = std::max(acc, 0.f);
            }
        return y;
    }
};

Tensor make_x(int64_t batch, float seed) {
    Tensor x(DataType::kFloat32, {batch, 4});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::sin(seed + 0.7f * i);
    return x;
}

void expect_near(const Tensor& got, const std::vector<float>& want) {
    ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.data<float>()[i], want[i], 1e-6f) << i;
}

}  // namespace

TEST(Engine, BuildsAndRunsANetworkDefinedInCode) {
    Mlp m;
    NullLogger logger;
    auto engine = Builder(logger).build(m.net, BuilderConfig{});
    ASSERT_EQ(engine->inputs().size(), 1u);
    EXPECT_EQ(engine->inputs()[0].dims[0].symbol, "batch");
    auto ctx = engine->create_context();
    for (int64_t batch : {1, 5}) {
        Tensor x = make_x(batch, 0.3f);
        auto out = ctx->run({{"x", x}});
        ASSERT_EQ(out.size(), 1u);
        const Tensor& y = out.begin()->second;
        EXPECT_EQ(y.shape(), (Shape{batch, 3}));
        expect_near(y, m.expected(x));
    }
    EXPECT_EQ(m.net.num_layers(), 3u);  // the builder does not modify the network
}

TEST(Engine, SerialisedPlanRunsIdentically) {
    Mlp m;
    NullLogger logger;
    auto engine = Builder(logger).build(m.net, BuilderConfig{});
    std::vector<uint8_t> bytes = engine->serialize();
    auto loaded = Runtime(logger).deserialize(bytes, "mlp.plan");
    Tensor x = make_x(3, 1.f);
    auto a = engine->create_context()->run({{"x", x}});
    auto b = loaded->create_context()->run({{"x", x}});
    EXPECT_EQ(a.begin()->second, b.begin()->second);
    EXPECT_EQ(loaded->layers().size(), engine->layers().size());
}

TEST(Engine, OneEngineManyThreads) {
    Mlp m;
    NullLogger logger;
    std::shared_ptr<const Engine> engine = Builder(logger).build(m.net, BuilderConfig{});
    std::vector<std::thread> threads;
    std::vector<int> failures(4, 0);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            auto ctx = engine->create_context();
            for (int i = 0; i < 50; ++i) {
                Tensor x = make_x(1 + (i + t) % 4, static_cast<float>(t * 100 + i));
                Tensor y = ctx->run({{"x", x}}).begin()->second;
                std::vector<float> want = m.expected(x);
                for (size_t k = 0; k < want.size(); ++k)
                    if (std::fabs(y.data<float>()[k] - want[k]) > 1e-6f) ++failures[t];
            }
        });
    }
    for (auto& th : threads) th.join();
    for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(Engine, RejectsBadInputsWithClearErrors) {
    Mlp m;
    NullLogger logger;
    auto ctx = Builder(logger).build(m.net, BuilderConfig{})->create_context();
    auto expect_error = [&](const std::map<std::string, Tensor>& in, const std::string& needle) {
        try {
            ctx->run(in);
            ADD_FAILURE() << "no error for " << needle;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    expect_error({}, "missing input 'x'");
    expect_error({{"y", make_x(1, 0)}}, "unknown input 'y'");
    expect_error({{"x", Tensor(DataType::kFloat32, {2, 5})}}, "dimension 1 must be 4");
    expect_error({{"x", Tensor(DataType::kFloat32, {4})}}, "rank");
    expect_error({{"x", Tensor(DataType::kInt64, {2, 4})}}, "dtype int64, expected float32");
}

TEST(Engine, FixedInputShapesAtBuildTime) {
    Mlp m;
    NullLogger logger;
    BuilderConfig c;
    c.input_shapes["x"] = {2, 4};
    auto engine = Builder(logger).build(m.net, c);
    EXPECT_EQ(shape_str(engine->outputs()[0].dims), "2x3");
    c.input_shapes["x"] = {2, 5};
    EXPECT_THROW(Builder(logger).build(m.net, c), Error);
    c.input_shapes.clear();
    c.input_shapes["nope"] = {1};
    EXPECT_THROW(Builder(logger).build(m.net, c), Error);
}

TEST(Engine, LoggerReceivesVerboseBuildMessages) {
    struct Capture : Logger {
        std::vector<std::string> lines;
        void log(Severity, const std::string& m) override { lines.push_back(m); }
    } logger;
    Mlp m;
    Builder(logger).build(m.net, BuilderConfig{});
    EXPECT_FALSE(logger.lines.empty());
}

}  // namespace kiln

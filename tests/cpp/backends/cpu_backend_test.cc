// The cpu backend's kernels are created once per engine and executed from several ExecutionContexts at once, with
// different thread counts and batch sizes (primitives are prepared per shape and thread count): every result must
// match the reference backend's.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "kiln/kiln.h"
#include "src/common/strings.h"
#include "src/plan/plan_model.h"
#include "tests/cpp/backends/test_util.h"

namespace kiln {

namespace {

using test_util::build;
using test_util::random_tensor;

// y = relu(conv3x3(x) + b + x) -> global average pool -> gemm; x [batch, 24, 10, 9]
void make_cnn(NetworkDefinition& net) {
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 24, 10, 9});
    AttributeMap conv;
    conv.set("kernel_shape", std::vector<int64_t>{3, 3});
    conv.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    std::string c = net.add_layer("Conv", {x, net.add_constant("w", random_tensor({24, 24, 3, 3}, 1)),
                                           net.add_constant("b", random_tensor({24}, 2))}, conv)[0];
    std::string r = net.add_layer("Relu", {net.add_layer("Add", {c, x})[0]})[0];
    std::string g = net.add_layer("GlobalAveragePool", {r})[0];
    AttributeMap flat;
    flat.set("axis", int64_t{1});
    std::string f = net.add_layer("Flatten", {g}, flat)[0];
    AttributeMap gemm;
    gemm.set("transB", int64_t{1});
    net.mark_output(net.add_layer("Gemm", {f, net.add_constant("fc", random_tensor({7, 24}, 3)),
                                           net.add_constant("fcb", random_tensor({7}, 4))}, gemm)[0]);
}

}  // namespace

TEST(CpuBackend, ConcurrentContextsMatchTheReference) {
    NetworkDefinition net;
    make_cnn(net);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    std::vector<std::thread> threads;
    std::vector<float> max_err(6, 0.f);
    for (int t = 0; t < 6; ++t)
        threads.emplace_back([&, t] {
            auto ctx = cpu->create_context();
            ctx->set_num_threads(1 + t % 3);
            auto ref_ctx = ref->create_context();
            for (int it = 0; it < 4; ++it) {
                Tensor x = random_tensor({1 + (t + it) % 3, 24, 10, 9}, 10 + t * 7 + it);
                Tensor y = ctx->run({{"x", x}}).begin()->second;
                Tensor e = ref_ctx->run({{"x", x}}).begin()->second;
                ASSERT_EQ(y.shape(), e.shape());
                for (int64_t i = 0; i < y.numel(); ++i)
                    max_err[t] = std::max(max_err[t], std::fabs(y.data<float>()[i] - e.data<float>()[i]));
            }
        });
    for (auto& th : threads) th.join();
    for (float err : max_err) EXPECT_LT(err, 1e-4f);
}

TEST(CpuBackend, ResidualMatMulWritesOverItsResidualWhenItDies) {
    // h = x W1 + b1; g = h W2 + b2; y = g W3 + b3 + h (h dies there: in place); z = y W4 + b4 + y (y is also
    // the MatMul's A and is read again by the Mul: a copy)
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 5, 16});
    auto dense = [&](const std::string& in, int seed) {
        return net.add_layer("Add", {net.add_layer("MatMul", {in, net.add_constant(cat("w", seed),
                                                               random_tensor({16, 16}, seed))})[0],
                                     net.add_constant(cat("b", seed), random_tensor({16}, seed + 1))})[0];
    };
    std::string h = dense(x, 1);
    std::string y = net.add_layer("Add", {dense(dense(h, 3), 5), h})[0];
    std::string z = net.add_layer("Add", {dense(y, 7), y})[0];
    net.mark_output(net.add_layer("Mul", {z, y})[0]);
    std::shared_ptr<Engine> cpu = build(net, "cpu");
    std::shared_ptr<Engine> ref = build(net, "reference");
    const plan::PlanModel& m = cpu->plan_model();
    int residual = 0, in_place = 0;
    for (const plan::PlanNode& n : m.nodes) {
        if (n.op_type != "FusedMatMul" || n.inputs.size() < 4 || n.inputs[3] < 0) continue;
        ++residual;
        in_place += m.memory.offsets[n.inputs[3]] == m.memory.offsets[n.outputs[0]];
    }
    EXPECT_EQ(residual, 2);
    EXPECT_EQ(in_place, 1);  // y over h
    Tensor in = random_tensor({2, 5, 16}, 9);
    Tensor want = ref->create_context()->run({{"x", in}}).begin()->second;
    for (int threads : {1, 2}) {
        auto ctx = cpu->create_context();
        ctx->set_num_threads(threads);
        for (int it = 0; it < 2; ++it) {  // twice: the arena is reused
            Tensor got = ctx->run({{"x", in}}).begin()->second;
            for (int64_t i = 0; i < want.numel(); ++i)
                ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-4f) << i;
        }
    }
}

TEST(CpuBackend, UnknownBackendNameIsAnInvalidArgument) {
    NetworkDefinition net;
    make_cnn(net);
    try {
        build(net, "tpu");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
}

}  // namespace kiln

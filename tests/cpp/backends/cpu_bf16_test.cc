// --bf16 on the cpu backend: convolutions and matmuls with constant weights run in bf16 (fp32 accumulation and
// outputs), everything else in fp32. Results must stay within the bf16 tolerance of docs/PERFORMANCE.md (cosine
// similarity >= 0.999 and relative L2 error <= 2e-2 against fp32); on a CPU without AVX512-BF16 the build fails
// with kUnsupported.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kiln/kiln.h"
#include "src/backends/cpu/bf16.h"

namespace kiln {

namespace {

Tensor random_tensor(Shape shape, uint32_t seed, float scale = 1.f) {
    Tensor t(DataType::kFloat32, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) {
        seed = seed * 1664525u + 1013904223u;
        t.data<float>()[i] = scale * (static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) - 0.5f);
    }
    return t;
}

// conv3x3 + bias + residual + relu -> 1x1 conv -> flatten -> matmul + bias -> gelu -> matmul(x, W^T) (trans_b)
void make_net(NetworkDefinition& net) {
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 32, 6, 6});
    AttributeMap conv;
    conv.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    std::string c = net.add_layer("Conv", {x, net.add_constant("w", random_tensor({32, 32, 3, 3}, 1, 0.2f)),
                                           net.add_constant("b", random_tensor({32}, 2))}, conv, 1, "conv3x3")[0];
    std::string r = net.add_layer("Relu", {net.add_layer("Add", {c, x})[0]})[0];
    std::string p = net.add_layer("Conv", {r, net.add_constant("pw", random_tensor({16, 32, 1, 1}, 3, 0.3f))}, {},
                                  1, "conv1x1")[0];
    AttributeMap flat;
    flat.set("axis", int64_t{1});
    std::string f = net.add_layer("Flatten", {p}, flat)[0];
    std::string h = net.add_layer("MatMul", {f, net.add_constant("fc", random_tensor({576, 64}, 4, 0.1f))}, {}, 1,
                                  "fc1")[0];
    std::string hb = net.add_layer("Add", {h, net.add_constant("fcb", random_tensor({64}, 5))})[0];
    std::string g = net.add_layer("Gelu", {hb})[0];
    AttributeMap tr;
    tr.set("perm", std::vector<int64_t>{1, 0});
    std::string wt = net.add_layer("Transpose", {net.add_constant("head", random_tensor({40, 64}, 6, 0.3f))}, tr)[0];
    net.mark_output(net.add_layer("MatMul", {g, wt}, {}, 1, "head")[0]);
}

std::shared_ptr<Engine> build(const NetworkDefinition& net, const std::string& precision,
                              std::map<std::string, std::string> layers = {}) {
    StderrLogger logger(Severity::kWarning);
    BuilderConfig config;
    config.backend = "cpu";
    config.precision = precision;
    config.layer_precision = std::move(layers);
    return Builder(logger).build(net, config);
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

}  // namespace

TEST(CpuBf16, WithinToleranceOfFp32) {
    NetworkDefinition net;
    make_net(net);
    if (!backends::cpu::cpu_has_bf16()) {
        try {
            build(net, "bf16");
            FAIL() << "expected kUnsupported on a CPU without AVX512-BF16";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
            EXPECT_NE(std::string(e.what()).find("AVX512-BF16"), std::string::npos) << e.what();
        }
        GTEST_SKIP() << "no AVX512-BF16 here: checked the error only";
    }
    std::shared_ptr<Engine> fp32 = build(net, "fp32");
    std::shared_ptr<Engine> bf16 = build(net, "bf16");
    for (const LayerInfo& l : bf16->layers()) {
        if (l.op_type == "FusedConv" || l.op_type == "FusedMatMul" || l.op_type == "Conv")
            EXPECT_NE(l.kernel.find("bf16"), std::string::npos) << l.name << ": " << l.kernel;
    }
    auto ctx32 = fp32->create_context();
    for (int batch : {1, 3}) {
        for (int threads : {1, 2}) {
            auto ctx16 = bf16->create_context();
            ctx16->set_num_threads(threads);
            Tensor x = random_tensor({batch, 32, 6, 6}, 100 + batch * 10 + threads);
            Tensor want = ctx32->run({{"x", x}}).begin()->second;
            Tensor got = ctx16->run({{"x", x}}).begin()->second;
            ASSERT_EQ(got.shape(), want.shape());
            double cosine = 0, rel_l2 = 0;
            compare(got, want, &cosine, &rel_l2);
            EXPECT_GE(cosine, 0.999) << "batch " << batch << ", threads " << threads;
            EXPECT_LE(rel_l2, 2e-2) << "batch " << batch << ", threads " << threads;
            EXPECT_GT(rel_l2, 0.0) << "bf16 should not be bit-identical to fp32";
        }
    }
}

TEST(CpuBf16, LayerPrecisionKeepsALayerInFp32) {
    if (!backends::cpu::cpu_has_bf16()) GTEST_SKIP() << "no AVX512-BF16 here";
    NetworkDefinition net;
    make_net(net);
    std::shared_ptr<Engine> e = build(net, "bf16", {{"fc1", "fp32"}});
    std::string fc1, conv;
    for (const LayerInfo& l : e->layers()) {
        std::vector<std::string> names = l.fused_from;
        names.push_back(l.name);
        for (const std::string& f : names) {
            if (f == "fc1") fc1 = l.kernel;
            if (f == "conv3x3") conv = l.kernel;
        }
    }
    EXPECT_NE(fc1.find("matmul_f32"), std::string::npos) << fc1;
    EXPECT_NE(conv.find("bf16"), std::string::npos) << conv;
}

TEST(CpuBf16, Fp16IsRejectedOnTheCpu) {
    NetworkDefinition net;
    make_net(net);
    try {
        build(net, "fp16");
        FAIL() << "expected kUnsupported";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    }
}

}  // namespace kiln

// The cpu backend's fused Attention (register-blocked Q K^T and P V, AVX-512) against the reference backend on odd
// sizes: query rows not a multiple of the 6-row block or the 32-row task, key lengths and head sizes not multiples
// of 16, K given transposed or not, additive and boolean masks broadcast over heads / rows, batch broadcast of K/V;
// in fp32 (within 1e-4) and with --bf16 (bf16 operands, fp32 accumulation: relative L2 error within 1e-2). The
// head-packed layout (`num_heads`, batch-first or `seq_first`) is checked against the classic one with the heads
// split and merged by hand.
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

// Head-packed layout (`num_heads`): Q/K/V rows [b, s, width] with the heads' columns from an offset on.
struct PackedCase {
    int64_t b, sq, sk, h, d, dv;
    int64_t wq, wk, wv;      // row widths (>= offset + h * head dim)
    int64_t oq, ok, ov;      // column offsets
    Shape mask;              // broadcast to [b, h, sq, sk]; empty: none
    bool mask_bool = false;
    bool one_tensor = false;  // Q, K and V are the same [b, s, wq] tensor (a fused QKV projection)
    bool seq_first = false;   // rows [s, b, width] (torch nn.MultiheadAttention) instead of [b, s, width]
};

// [n0, n1, w] -> [n1, n0, w]
Tensor swap01(const Tensor& x) {
    const int64_t n0 = x.dim(0), n1 = x.dim(1), w = x.dim(2);
    Tensor y(x.dtype(), {n1, n0, w});
    for (int64_t i = 0; i < n0; ++i)
        for (int64_t j = 0; j < n1; ++j)
            for (int64_t c = 0; c < w; ++c)
                y.data<float>()[(j * n0 + i) * w + c] = x.data<float>()[(i * n1 + j) * w + c];
    return y;
}

// the shape of a [b, s, w] operand in the case's layout
Shape rows(const PackedCase& c, int64_t s, int64_t w) { return c.seq_first ? Shape{s, c.b, w} : Shape{c.b, s, w}; }

// x [b, s, w] -> [b, h, s, hd] (the columns [off + i hd, off + (i + 1) hd) of head i)
Tensor split_heads(const Tensor& x, int64_t h, int64_t hd, int64_t off) {
    const int64_t b = x.dim(0), s = x.dim(1), w = x.dim(2);
    Tensor y(DataType::kFloat32, {b, h, s, hd});
    for (int64_t n = 0; n < b; ++n)
        for (int64_t i = 0; i < h; ++i)
            for (int64_t r = 0; r < s; ++r)
                for (int64_t c = 0; c < hd; ++c)
                    y.data<float>()[((n * h + i) * s + r) * hd + c] = x.data<float>()[(n * s + r) * w + off + i * hd + c];
    return y;
}

// [b, h, s, dv] -> [b, s, h * dv]
Tensor merge_heads(const Tensor& o) {
    const int64_t b = o.dim(0), h = o.dim(1), s = o.dim(2), dv = o.dim(3);
    Tensor y(DataType::kFloat32, {b, s, h * dv});
    for (int64_t n = 0; n < b; ++n)
        for (int64_t i = 0; i < h; ++i)
            for (int64_t r = 0; r < s; ++r)
                for (int64_t c = 0; c < dv; ++c)
                    y.data<float>()[(n * s + r) * h * dv + i * dv + c] = o.data<float>()[((n * h + i) * s + r) * dv + c];
    return y;
}

void check_packed(const PackedCase& c, int threads, const std::string& precision) {
    NetworkDefinition net;
    DataType mdt = c.mask_bool ? DataType::kBool : DataType::kFloat32;
    std::map<std::string, Tensor> feeds;
    std::vector<std::string> ins;
    if (c.one_tensor) {
        std::string x = net.add_input("x", DataType::kFloat32, to_sym(rows(c, c.sq, c.wq)));
        ins = {x, x, x};
        feeds["x"] = random_tensor(rows(c, c.sq, c.wq), 11);
    } else {
        ins = {net.add_input("q", DataType::kFloat32, to_sym(rows(c, c.sq, c.wq))),
               net.add_input("k", DataType::kFloat32, to_sym(rows(c, c.sk, c.wk))),
               net.add_input("v", DataType::kFloat32, to_sym(rows(c, c.sk, c.wv)))};
        feeds["q"] = random_tensor(rows(c, c.sq, c.wq), 12);
        feeds["k"] = random_tensor(rows(c, c.sk, c.wk), 13);
        feeds["v"] = random_tensor(rows(c, c.sk, c.wv), 14);
    }
    if (!c.mask.empty()) {
        ins.push_back(net.add_input("m", mdt, to_sym(c.mask)));
        feeds["m"] = random_tensor(c.mask, 15, mdt);
    }
    AttributeMap a;
    a.set("mask_is_bool", int64_t{c.mask_bool});
    a.set("num_heads", c.h);
    a.set("head_dim", c.d);
    a.set("v_head_dim", c.dv);
    a.set("qkv_offsets", std::vector<int64_t>{c.oq, c.ok, c.ov});
    if (c.seq_first) a.set("seq_first", int64_t{1});
    net.mark_output(net.add_layer("Attention", ins, a)[0]);
    NullLogger logger;
    BuilderConfig cpu, ref;
    cpu.backend = "cpu";
    cpu.precision = precision;
    ref.backend = "reference";
    auto engine = Builder(logger).build(net, cpu);
    ASSERT_EQ(engine->layers()[0].backend, "cpu");
    auto ctx = engine->create_context();
    ctx->set_num_threads(threads);
    Tensor got = ctx->run(feeds).begin()->second;
    Tensor want = Builder(logger).build(net, ref)->create_context()->run(feeds).begin()->second;
    ASSERT_EQ(got.shape(), rows(c, c.sq, c.h * c.dv));
    ASSERT_EQ(want.shape(), got.shape());

    // the oracle of both: the classic layout on the reference backend, heads split and merged here
    auto batch_first = [&](const char* name) { return c.seq_first ? swap01(feeds.at(name)) : feeds.at(name); };
    const Tensor xq = batch_first(c.one_tensor ? "x" : "q");
    const Tensor xk = batch_first(c.one_tensor ? "x" : "k");
    const Tensor xv = batch_first(c.one_tensor ? "x" : "v");
    NetworkDefinition cls;
    std::vector<std::string> cins = {cls.add_input("q", DataType::kFloat32, to_sym({c.b, c.h, c.sq, c.d})),
                                     cls.add_input("k", DataType::kFloat32, to_sym({c.b, c.h, c.sk, c.d})),
                                     cls.add_input("v", DataType::kFloat32, to_sym({c.b, c.h, c.sk, c.dv}))};
    std::map<std::string, Tensor> cfeeds = {{"q", split_heads(xq, c.h, c.d, c.oq)},
                                            {"k", split_heads(xk, c.h, c.d, c.ok)},
                                            {"v", split_heads(xv, c.h, c.dv, c.ov)}};
    if (!c.mask.empty()) {
        cins.push_back(cls.add_input("m", mdt, to_sym(c.mask)));
        cfeeds["m"] = feeds.at("m");
    }
    AttributeMap ca;
    ca.set("mask_is_bool", int64_t{c.mask_bool});
    cls.mark_output(cls.add_layer("Attention", cins, ca)[0]);
    Tensor oracle = merge_heads(Builder(logger).build(cls, ref)->create_context()->run(cfeeds).begin()->second);
    if (c.seq_first) oracle = swap01(oracle);
    ASSERT_EQ(oracle.shape(), want.shape());
    for (int64_t i = 0; i < want.numel(); ++i)
        ASSERT_NEAR(want.data<float>()[i], oracle.data<float>()[i], 1e-5f) << "reference, element " << i;
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
    EXPECT_LE(std::sqrt(err / norm), 1e-2);
}

}  // namespace

TEST(CpuAttention, HeadPackedLayoutMatchesTheClassicOne) {
    const std::vector<PackedCase> cases = {
        // BERT-like: [b, s, h*d] rows, additive mask over keys, batch 2; odd sizes (d 12, dv 20, 37 / 45 rows)
        {2, 37, 45, 3, 12, 20, 36, 36, 60, 0, 0, 0, {2, 1, 1, 45}},
        // rows wider than the heads, nonzero offsets, boolean mask over [sq, sk], head dim not a multiple of 16
        {1, 33, 70, 2, 9, 9, 25, 30, 21, 5, 11, 2, {33, 70}, true},
        // GPT-2-like fused QKV [b, s, 3*h*d] read at three offsets, causal-shaped boolean mask, batch 3
        {3, 65, 65, 4, 16, 16, 192, 192, 192, 0, 64, 128, {1, 1, 65, 65}, true, true},
        // per-head additive mask [h, sq, sk], one query row
        {2, 1, 7, 2, 8, 4, 16, 16, 8, 0, 0, 0, {2, 1, 7}},
        // seq-first rows [s, b, w] (torch nn.MultiheadAttention): batch 2, additive mask over keys, odd sizes
        {2, 37, 45, 3, 12, 20, 36, 36, 60, 0, 0, 0, {2, 1, 1, 45}, false, false, true},
        // seq-first, wider rows at offsets, boolean mask over [sq, sk], batch 3
        {3, 33, 70, 2, 9, 9, 25, 30, 21, 5, 11, 2, {33, 70}, true, false, true},
        // seq-first packed in-projection [s, b, 3E] read at three offsets (ViT), batch 2, no mask
        {2, 50, 50, 4, 16, 16, 192, 192, 192, 0, 64, 128, {}, false, true, true},
        // seq-first, batch 1, per-head additive mask [h, sq, sk], one query row
        {1, 1, 7, 2, 8, 4, 16, 16, 8, 0, 0, 0, {2, 1, 7}, false, false, true},
    };
    for (const PackedCase& c : cases) {
        for (int threads : {1, 2}) {
            check_packed(c, threads, "fp32");
            if (backends::cpu::cpu_has_bf16()) check_packed(c, threads, "bf16");
        }
    }
}

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

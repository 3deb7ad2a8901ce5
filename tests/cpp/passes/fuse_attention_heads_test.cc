// fuse_attention_heads: the head split (Reshape + Transpose) and merge (Transpose + Reshape) around an Attention
// fold into it (num_heads); with a Split of a fused QKV projection the Split goes too.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

// Transpose(Reshape(x, [b, s, h, d]), perm)
std::string heads(NetworkDefinition& net, const std::string& x, std::vector<int64_t> shape, std::vector<int64_t> p) {
    static int n = 0;
    std::string r = net.add_layer("Reshape", {x, net.add_constant("shape" + std::to_string(n++), ints(shape))})[0];
    return net.add_layer("Transpose", {r}, perm(p))[0];
}

// The BERT / GPT-2 block around softmax(q k^T / c + mask) v, exported from PyTorch: K as Transpose(0, 2, 3, 1).
// `fused`: q, k, v = Split(x, 3, axis=-1) of one [b, s, 3 h d] input. Adds it to `net`, with output y.
void attention_block(NetworkDefinition& net, int64_t b, int64_t s, int64_t h, int64_t d, bool fused, bool causal) {
    std::string xq, xk, xv;
    if (fused) {
        std::string x = net.add_input("x", DataType::kFloat32, {b, s, 3 * h * d});
        AttributeMap ax;
        ax.set("axis", int64_t{-1});
        std::vector<std::string> qkv =
            net.add_layer("Split", {x, net.add_constant("sizes", ints({h * d, h * d, h * d}))}, ax, 3);
        xq = qkv[0], xk = qkv[1], xv = qkv[2];
    } else {
        xq = net.add_input("xq", DataType::kFloat32, {b, s, h * d});
        xk = net.add_input("xk", DataType::kFloat32, {b, s, h * d});
        xv = net.add_input("xv", DataType::kFloat32, {b, s, h * d});
    }
    std::string q = heads(net, xq, {b, s, h, d}, {0, 2, 1, 3});
    std::string kt = heads(net, xk, {b, s, h, d}, {0, 2, 3, 1});
    std::string v = heads(net, xv, {b, s, h, d}, {0, 2, 1, 3});
    std::string sc = net.add_layer("Div", {net.add_layer("MatMul", {q, kt})[0], scalar(net, "c", 3.f)})[0];
    if (causal) {
        Tensor m(DataType::kBool, {1, 1, s, s});
        for (int64_t i = 0; i < s; ++i)
            for (int64_t j = 0; j < s; ++j) m.data<uint8_t>()[i * s + j] = j <= i;
        sc = net.add_layer("Where", {net.add_constant("causal", m), sc, scalar(net, "neg", -3.4e38f)})[0];
    } else {
        sc = net.add_layer("Add", {sc, net.add_input("mask", DataType::kFloat32, {b, 1, 1, s})})[0];
    }
    std::string o = net.add_layer("MatMul", {net.add_layer("Softmax", {sc})[0], v})[0];
    std::string t = net.add_layer("Transpose", {o}, perm({0, 2, 1, 3}))[0];
    std::string y = net.add_layer("Reshape", {t, net.add_constant("y_shape", ints({b, s, h * d}))})[0];
    net.mark_output(y);
}

std::string axes_const(NetworkDefinition& net, int64_t axis) {
    static int n = 0;
    return net.add_constant("axes" + std::to_string(n++), ints({axis}, {1}));
}

// torch nn.MultiheadAttention's seq-first block as torch.onnx exports it (need_weights=False, i.e. through
// scaled_dot_product_attention), on rows [s, b, E]: with `packed` the three chunks of one in-projection X [s, b, 3E]
//   Xi = Gather(Squeeze(Transpose(Unsqueeze(Reshape(X, [s, b, 3, E]), 0), [3, 1, 2, 0, 4]), 3), i)
// (else three inputs xq, xk, xv, or the caller's `xs`), heads Reshape(Transpose(Reshape(Xi, [s, b*h, d]), [1, 0, 2]), [b, h, s, d]),
// Q and K^T scaled by sqrt(1/sqrt(d)) each, an optional additive mask [b, 1, 1, s], merge Transpose(o, [2, 0, 1, 3])
// and Reshape to [s*b, E]. Returns the [s*b, E] value.
std::string seq_first_attention(NetworkDefinition& net, const std::string& x, int64_t b, int64_t s, int64_t h,
                                int64_t d, bool packed, bool masked, std::vector<std::string> xs = {}) {
    const int64_t e = h * d;
    if (!xs.empty()) {  // the caller's Xq, Xk, Xv
    } else if (packed) {
        std::string r = net.add_layer("Reshape", {x, net.add_constant("x_shape", ints({s, b, 3, e}))})[0];
        std::string u = net.add_layer("Unsqueeze", {r, axes_const(net, 0)})[0];
        std::string t = net.add_layer("Transpose", {u}, perm({3, 1, 2, 0, 4}))[0];
        std::string sq = net.add_layer("Squeeze", {t, axes_const(net, 3)})[0];
        AttributeMap ax;
        ax.set("axis", int64_t{0});
        for (int64_t i = 0; i < 3; ++i)
            xs.push_back(net.add_layer("Gather", {sq, net.add_constant("i" + std::to_string(i), ints({i}))}, ax)[0]);
    } else {
        for (const char* n : {"xq", "xk", "xv"}) xs.push_back(net.add_input(n, DataType::kFloat32, {s, b, e}));
    }
    std::vector<std::string> hd;
    for (const std::string& xi : xs) {
        std::string r3 = net.add_layer("Reshape", {xi, net.add_constant(xi + "_s3", ints({s, b * h, d}))})[0];
        std::string t = net.add_layer("Transpose", {r3}, perm({1, 0, 2}))[0];
        hd.push_back(net.add_layer("Reshape", {t, net.add_constant(xi + "_s4", ints({b, h, s, d}))})[0]);
    }
    const float c = std::sqrt(1.f / std::sqrt(static_cast<float>(d)));
    std::string q = net.add_layer("Mul", {hd[0], scalar(net, "cq", c)})[0];
    std::string kt = net.add_layer("Transpose", {hd[1]}, perm({0, 1, 3, 2}))[0];
    kt = net.add_layer("Mul", {kt, scalar(net, "ck", c)})[0];
    std::string sc = net.add_layer("MatMul", {q, kt})[0];
    if (masked) sc = net.add_layer("Add", {sc, net.add_input("mask", DataType::kFloat32, {b, 1, 1, s})})[0];
    std::string o = net.add_layer("MatMul", {net.add_layer("Softmax", {sc})[0], hd[2]})[0];
    std::string t = net.add_layer("Transpose", {o}, perm({2, 0, 1, 3}))[0];
    return net.add_layer("Reshape", {t, net.add_constant("o_shape", ints({s * b, e}))})[0];
}

bool attention_then_heads(ir::Graph& g, PassContext& ctx) {
    bool a = fuse_attention(g, ctx);
    g.topological_sort();
    g.infer_shapes();
    return fuse_attention_heads(g, ctx) && a;
}

}  // namespace

TEST(FuseAttentionHeads, SeparateProjectionsWithAdditiveMask) {
    NetworkDefinition net;
    attention_block(net, 2, 5, 3, 4, false, false);
    bool changed = false;
    auto g = run_pass(net, &attention_then_heads, &changed);
    EXPECT_TRUE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    EXPECT_EQ(count_op(*g, "Reshape"), 0);
    ASSERT_EQ(count_op(*g, "Attention"), 1);
    const ir::Node* a = g->nodes().back();
    EXPECT_EQ(a->attrs.get_int("num_heads", 0), 3);
    EXPECT_EQ(a->attrs.get_int("head_dim", 0), 4);
    EXPECT_EQ(a->attrs.get_int("k_transposed", -1), 0);
    EXPECT_EQ(a->attrs.get_ints("qkv_offsets"), (std::vector<int64_t>{0, 0, 0}));
    Tensor mask = filled({2, 1, 1, 5}, 0.f, 0.f);
    mask.data<float>()[3] = -10000.f;
    expect_same_outputs(net, {{"xq", filled({2, 5, 12}, 0.1f)}, {"xk", filled({2, 5, 12}, 0.5f)},
                              {"xv", filled({2, 5, 12}, 0.9f)}, {"mask", mask}});
    EXPECT_EQ(layer_ops(net, 3), std::vector<std::string>{"Attention"});
}

TEST(FuseAttentionHeads, FusedQkvSplitAndCausalMask) {
    NetworkDefinition net;
    attention_block(net, 1, 7, 2, 8, true, true);
    auto g = run_pass(net, &attention_then_heads);
    EXPECT_EQ(count_op(*g, "Split"), 0);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    ASSERT_EQ(count_op(*g, "Attention"), 1);
    const ir::Node* a = g->nodes().back();
    EXPECT_EQ(a->attrs.get_ints("qkv_offsets"), (std::vector<int64_t>{0, 16, 32}));
    EXPECT_EQ(a->input(0), a->input(1));
    EXPECT_EQ(a->attrs.get_int("mask_is_bool", 0), 1);
    expect_same_outputs(net, {{"x", filled({1, 7, 48}, 0.3f)}});
}

TEST(FuseAttentionHeads, OtherPermutationsAndOtherBackendsAreLeftAlone) {
    // the output merged with another permutation: not the [b, s, h*d] rows the packed layout writes
    NetworkDefinition net;
    std::string xq = net.add_input("xq", DataType::kFloat32, {1, 4, 6});
    std::string q = heads(net, xq, {1, 4, 2, 3}, {0, 2, 1, 3});
    std::string kt = heads(net, xq, {1, 4, 2, 3}, {0, 2, 3, 1});
    std::string v = heads(net, xq, {1, 4, 2, 3}, {0, 2, 1, 3});
    std::string o = net.add_layer("MatMul", {net.add_layer("Softmax", {net.add_layer("MatMul", {q, kt})[0]})[0], v})[0];
    net.mark_output(net.add_layer("Transpose", {o}, perm({0, 1, 3, 2}))[0]);
    bool changed = true;
    auto g = run_pass(net, &attention_then_heads, &changed);
    EXPECT_FALSE(changed);
    EXPECT_EQ(g->nodes().size(), 8u);  // 3 x (Reshape, Transpose), Attention, Transpose

    NetworkDefinition block;
    attention_block(block, 1, 4, 2, 4, false, false);
    std::unique_ptr<ir::Graph> cg = block.graph().clone();
    cg->topological_sort();
    cg->infer_shapes();
    NullLogger logger;
    PassContext cuda{logger, 3, "cuda"};  // the CUDA Attention reads the packed layout too
    EXPECT_TRUE(fuse_attention(*cg, cuda));
    cg->topological_sort();
    cg->infer_shapes();
    EXPECT_TRUE(fuse_attention_heads(*cg, cuda));
    PassContext other{logger, 3, "some_backend"};  // a backend without a packed-layout kernel keeps the classic form
    std::unique_ptr<ir::Graph> og = block.graph().clone();
    og->topological_sort();
    og->infer_shapes();
    EXPECT_TRUE(fuse_attention(*og, other));
    og->topological_sort();
    og->infer_shapes();
    EXPECT_FALSE(fuse_attention_heads(*og, other));
}

TEST(FuseAttentionHeads, SeqFirstPackedProjectionChunks) {
    for (int64_t b : {1, 2}) {
        NetworkDefinition net;
        std::string x = net.add_input("x", DataType::kFloat32, {5, b, 3 * 2 * 8});
        net.mark_output(seq_first_attention(net, x, b, 5, 2, 8, true, false));
        bool changed = false;
        auto g = run_pass(net, &attention_then_heads, &changed);
        EXPECT_TRUE(changed);
        for (const char* op : {"Transpose", "Gather", "Squeeze", "Unsqueeze", "Mul"})
            EXPECT_EQ(count_op(*g, op), 0) << op;
        EXPECT_EQ(count_op(*g, "Reshape"), 1);  // [s, b, E] rows -> [s*b, E], an alias
        ASSERT_EQ(count_op(*g, "Attention"), 1);
        const ir::Node* a = nullptr;
        for (const ir::Node* n : g->nodes())
            if (n->op_type == "Attention") a = n;
        EXPECT_EQ(a->attrs.get_int("seq_first", 0), 1);
        EXPECT_EQ(a->attrs.get_int("num_heads", 0), 2);
        EXPECT_EQ(a->attrs.get_int("head_dim", 0), 8);
        EXPECT_EQ(a->attrs.get_ints("qkv_offsets"), (std::vector<int64_t>{0, 16, 32}));
        EXPECT_NEAR(a->attrs.get_float("scale", 0.f), 1.f / std::sqrt(8.f), 1e-6f);  // the two Muls, folded
        EXPECT_EQ(a->input(0), a->input(1));
        EXPECT_EQ(a->input(0)->name, "x");
        for (const char* backend : {"reference", "cpu"})
            expect_same_outputs(net, {{"x", filled({5, b, 48}, 0.3f)}}, 3, backend);
        EXPECT_EQ(layer_ops(net, 3, "reference"), (std::vector<std::string>{"Attention", "Reshape"}));

        // for cuda too: its kernels read the layout through the same geometry (AttentionDims strides)
        std::unique_ptr<ir::Graph> cg = net.graph().clone();
        cg->topological_sort();
        cg->infer_shapes();
        NullLogger logger;
        PassContext cuda{logger, 3, "cuda"};
        EXPECT_TRUE(fuse_attention(*cg, cuda));
        cg->topological_sort();
        cg->infer_shapes();
        EXPECT_TRUE(fuse_attention_heads(*cg, cuda));
        EXPECT_EQ(count_op(*cg, "Gather"), 0);
    }
}

TEST(FuseAttentionHeads, SeqFirstSeparateProjectionsWithMask) {
    NetworkDefinition net;
    net.mark_output(seq_first_attention(net, "", 3, 6, 4, 4, false, true));
    bool changed = false;
    auto g = run_pass(net, &attention_then_heads, &changed);
    EXPECT_TRUE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    ASSERT_EQ(count_op(*g, "Attention"), 1);
    Tensor mask = filled({3, 1, 1, 6}, 0.f, 0.f);
    mask.data<float>()[2] = mask.data<float>()[6 + 5] = -10000.f;
    for (const char* backend : {"reference", "cpu"})
        expect_same_outputs(net, {{"xq", filled({6, 3, 16}, 0.1f)}, {"xk", filled({6, 3, 16}, 0.5f)},
                                  {"xv", filled({6, 3, 16}, 0.9f)}, {"mask", mask}},
                            3, backend);
}

namespace {

// a full torch encoder-block attention (nn.MultiheadAttention with batch_first=True): x [b, s, E] -> Transpose ->
// in-projection -> attention -> out-projection -> Transpose back (-> + x, the residual, with `residual`). At -O3:
// one FusedMatMul, the Attention, one FusedMatMul; transpose_optimization moves the two Transposes below the
// projections, the Attention absorbs them (seq_first=0) and the residual Add fuses into the out-projection.
std::string encoder_attention(NetworkDefinition& net, int64_t b, int64_t s, int64_t h, int64_t d, bool masked,
                              bool residual) {
    const int64_t e = h * d;
    std::string x = net.add_input("x", DataType::kFloat32, {b, s, e});
    std::string xt = net.add_layer("Transpose", {x}, perm({1, 0, 2}))[0];
    std::string proj = net.add_layer("MatMul", {xt, net.add_constant("w_in", filled({e, 3 * e}, 1.f, 0.3f))})[0];
    proj = net.add_layer("Add", {net.add_constant("b_in", filled({3 * e}, 2.f, 0.1f)), proj})[0];
    std::string o = seq_first_attention(net, proj, b, s, h, d, true, masked);
    AttributeMap gemm;
    gemm.set("transB", int64_t{1});
    o = net.add_layer("Gemm", {o, net.add_constant("w_out", filled({e, e}, 3.f, 0.3f)),
                               net.add_constant("b_out", filled({e}, 4.f, 0.1f))},
                      gemm)[0];
    o = net.add_layer("Reshape", {o, net.add_constant("o3", ints({s, b, e}))})[0];
    o = net.add_layer("Transpose", {o}, perm({1, 0, 2}))[0];
    return residual ? net.add_layer("Add", {o, x})[0] : o;
}

std::map<std::string, Tensor> encoder_inputs(int64_t b, int64_t s, int64_t e, bool masked) {
    std::map<std::string, Tensor> in = {{"x", filled({b, s, e}, 0.7f)}};
    if (masked) {
        Tensor mask = filled({b, 1, 1, s}, 0.f, 0.f);
        mask.data<float>()[1] = mask.data<float>()[(b - 1) * s + s - 1] = -10000.f;
        in["mask"] = mask;
    }
    return in;
}

bool encoder_passes(ir::Graph& g, PassContext& ctx) {
    for (PassFn p : {&fuse_attention, &fuse_attention_heads, &gemm_to_matmul, &transpose_optimization}) {
        p(g, ctx);
        g.topological_sort();
        g.infer_shapes();
    }
    return true;
}

}  // namespace

TEST(FuseAttentionHeads, SeqFirstEncoderBlockAtO3) {
    for (int64_t b : {1, 2}) {
        for (bool residual : {false, true}) {
            const int64_t s = 7, h = 2, d = 8, e = h * d;
            NetworkDefinition net;
            net.mark_output(encoder_attention(net, b, s, h, d, false, residual));
            for (const char* backend : {"reference", "cpu"}) {
                std::vector<std::string> ops = layer_ops(net, 3, backend);
                EXPECT_EQ(ops, (std::vector<std::string>{"FusedMatMul", "Attention", "FusedMatMul"})) << backend;
                expect_same_outputs(net, encoder_inputs(b, s, e, false), 3, backend);
            }
        }
    }
}

// transpose_optimization turns the seq-first Attention batch-first: at batch 2, with a mask [b, 1, 1, s], the
// Attention reads the in-projection of x itself and writes [b, s, E] rows; no Transpose is left
TEST(FuseAttentionHeads, SeqFirstAttentionBecomesBatchFirstWithMask) {
    const int64_t b = 2, s = 5, h = 2, d = 4, e = h * d;
    NetworkDefinition net;
    net.mark_output(encoder_attention(net, b, s, h, d, true, true));
    auto g = run_pass(net, &encoder_passes);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);
    EXPECT_EQ(count_op(*g, "Reshape"), 0);
    const ir::Node* a = nullptr;
    for (const ir::Node* n : g->nodes())
        if (n->op_type == "Attention") a = n;
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attrs.get_int("seq_first", 0), 0);
    EXPECT_EQ(a->attrs.get_int("num_heads", 0), 2);
    EXPECT_EQ(a->attrs.get_ints("qkv_offsets"), (std::vector<int64_t>{0, 8, 16}));
    EXPECT_EQ(a->input(3)->name, "mask");
    EXPECT_EQ(shape_str(a->input(0)->dims), "2x5x24");
    EXPECT_EQ(shape_str(a->outputs[0]->dims), "2x5x8");
    for (const ir::Node* n : g->nodes())  // the in-projection (+ its bias Add) reads x, not a transposed copy
        if (n->op_type == "MatMul") EXPECT_EQ(n->input(0)->name, "x");
    EXPECT_EQ(count_op(*g, "MatMul"), 1);
    for (const char* backend : {"reference", "cpu"}) {
        expect_same_outputs(net, encoder_inputs(b, s, e, true), 3, backend);
        EXPECT_EQ(layer_ops(net, 3, backend), (std::vector<std::string>{"FusedMatMul", "Attention", "FusedMatMul"}));
    }
}

// only Q comes through the Transpose (K and V are seq-first inputs): the Attention keeps its layout and the
// Transpose stays
TEST(FuseAttentionHeads, SeqFirstAttentionWithOneTransposedOperandStays) {
    const int64_t b = 2, s = 5, h = 2, d = 4, e = h * d;
    NetworkDefinition net;
    std::string xb = net.add_input("xb", DataType::kFloat32, {b, s, e});
    std::string xq = net.add_layer("Transpose", {xb}, perm({1, 0, 2}))[0];
    std::string xk = net.add_input("xk", DataType::kFloat32, {s, b, e});
    std::string xv = net.add_input("xv", DataType::kFloat32, {s, b, e});
    net.mark_output(seq_first_attention(net, "", b, s, h, d, false, false, {xq, xk, xv}));
    auto g = run_pass(net, &encoder_passes);
    EXPECT_EQ(count_op(*g, "Transpose"), 1);
    const ir::Node* a = nullptr;
    for (const ir::Node* n : g->nodes())
        if (n->op_type == "Attention") a = n;
    ASSERT_TRUE(a);
    EXPECT_EQ(a->attrs.get_int("seq_first", 0), 1);
    expect_same_outputs(net, {{"xb", filled({b, s, e}, 0.1f)}, {"xk", filled({s, b, e}, 0.5f)},
                              {"xv", filled({s, b, e}, 0.9f)}});
}

// separate projections, all three transposed from batch-first inputs: batch-first; when another node reads one of
// the Transposes too (here a graph output), the layout stays, as the Transpose would stay anyway
TEST(FuseAttentionHeads, SeqFirstAttentionOfThreeTransposedInputs) {
    const int64_t b = 2, s = 5, h = 2, d = 4, e = h * d;
    for (bool shared : {false, true}) {
        NetworkDefinition net;
        std::vector<std::string> xs;
        for (const char* n : {"xq", "xk", "xv"})
            xs.push_back(net.add_layer("Transpose", {net.add_input(n, DataType::kFloat32, {b, s, e})},
                                       perm({1, 0, 2}))[0]);
        net.mark_output(seq_first_attention(net, "", b, s, h, d, false, true, xs));
        if (shared) net.mark_output(xs[1]);
        auto g = run_pass(net, &encoder_passes);
        const ir::Node* a = nullptr;
        for (const ir::Node* n : g->nodes())
            if (n->op_type == "Attention") a = n;
        ASSERT_TRUE(a);
        EXPECT_EQ(a->attrs.get_int("seq_first", 0), shared ? 1 : 0);
        EXPECT_EQ(count_op(*g, "Transpose"), shared ? 3 : 1);  // batch-first: one Transpose of the output
        Tensor mask = filled({b, 1, 1, s}, 0.f, 0.f);
        mask.data<float>()[s + 2] = -10000.f;
        for (const char* backend : {"reference", "cpu"})
            expect_same_outputs(net, {{"xq", filled({b, s, e}, 0.1f)}, {"xk", filled({b, s, e}, 0.5f)},
                                      {"xv", filled({b, s, e}, 0.9f)}, {"mask", mask}},
                                3, backend);
    }
}

}  // namespace kiln::passes::test

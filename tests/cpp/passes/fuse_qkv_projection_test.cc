// fuse_qkv_projection: the Q, K and V projections of a head-packed Attention become one FusedMatMul over the
// concatenated weights and biases, read at three column offsets (cuda only).
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

// x [1, s, w] -> q/k/v = x W_i + b_i -> Transpose(Reshape(., [1, s, h, d])) -> softmax(q k^T) v -> [1, s, w]
void projected_attention(NetworkDefinition& net, int64_t s, int64_t h, int64_t d, bool second_user) {
    const int64_t w = h * d;
    std::string x = net.add_input("x", DataType::kFloat32, {1, s, w});
    std::string hv[3];
    const std::vector<int64_t> perms[3] = {{0, 2, 1, 3}, {0, 2, 3, 1}, {0, 2, 1, 3}};
    for (int i = 0; i < 3; ++i) {
        std::string n = std::to_string(i);
        std::string mm = net.add_layer("MatMul", {x, net.add_constant("w" + n, filled({w, w}, 1.f + i, 0.3f))})[0];
        std::string p = net.add_layer("Add", {mm, net.add_constant("b" + n, filled({w}, 5.f + i, 0.1f))})[0];
        if (second_user && i == 2) net.mark_output(p);
        std::string r = net.add_layer("Reshape", {p, net.add_constant("s" + n, ints({1, s, h, d}))})[0];
        hv[i] = net.add_layer("Transpose", {r}, perm(perms[i]))[0];
    }
    std::string o = net.add_layer("MatMul", {net.add_layer("Softmax", {net.add_layer("MatMul", {hv[0], hv[1]})[0]})[0],
                                             hv[2]})[0];
    std::string t = net.add_layer("Transpose", {o}, perm({0, 2, 1, 3}))[0];
    net.mark_output(net.add_layer("Reshape", {t, net.add_constant("ys", ints({1, s, w}))})[0]);
}

std::unique_ptr<ir::Graph> optimise_for(const NetworkDefinition& net, const std::string& backend, bool* merged) {
    std::unique_ptr<ir::Graph> g = net.graph().clone();
    NullLogger logger;
    PassContext ctx{logger, 3, backend};
    for (PassFn p : {&fuse_attention, &fuse_attention_heads, &fuse_matmul_epilogue, &fuse_qkv_projection}) {
        g->topological_sort();
        g->infer_shapes();
        bool c = p(*g, ctx);
        if (p == &fuse_qkv_projection) *merged = c;
    }
    g->topological_sort();
    g->infer_shapes();
    g->verify();
    return g;
}

}  // namespace

TEST(FuseQkvProjection, ThreeProjectionsBecomeOneGemmReadAtOffsets) {
    NetworkDefinition net;
    projected_attention(net, 5, 2, 4, false);
    bool merged = false;
    auto g = optimise_for(net, "cuda", &merged);
    ASSERT_TRUE(merged);
    ASSERT_EQ(count_op(*g, "FusedMatMul"), 1);
    const ir::Node* mm = nullptr;
    const ir::Node* att = nullptr;
    for (const ir::Node* n : g->nodes()) {
        if (n->op_type == "FusedMatMul") mm = n;
        if (n->op_type == "Attention") att = n;
    }
    ASSERT_TRUE(mm && att);
    EXPECT_EQ(att->input(0), mm->outputs[0]);
    EXPECT_EQ(att->input(1), mm->outputs[0]);
    EXPECT_EQ(att->input(2), mm->outputs[0]);
    EXPECT_EQ(att->attrs.get_ints("qkv_offsets"), (std::vector<int64_t>{0, 8, 16}));
    // columns [8 i, 8 i + 8) of the merged weight and bias are projection i's
    const Tensor& w = *mm->input(1)->constant;
    const Tensor& b = *mm->input(2)->constant;
    ASSERT_EQ(w.shape(), (Shape{8, 24}));
    ASSERT_EQ(b.shape(), (Shape{24}));
    for (int i = 0; i < 3; ++i) {
        Tensor wi = filled({8, 8}, 1.f + i, 0.3f), bi = filled({8}, 5.f + i, 0.1f);
        for (int r = 0; r < 8; ++r)
            for (int c = 0; c < 8; ++c) EXPECT_EQ(w.data<float>()[r * 24 + 8 * i + c], wi.data<float>()[r * 8 + c]);
        for (int c = 0; c < 8; ++c) EXPECT_EQ(b.data<float>()[8 * i + c], bi.data<float>()[c]);
    }
    EXPECT_EQ(mm->outputs[0]->dims.back().value, 24);
}

TEST(FuseQkvProjection, OnlyForCudaAndOnlyUnsharedProjections) {
    NetworkDefinition net;
    projected_attention(net, 5, 2, 4, false);
    bool merged = true;
    optimise_for(net, "cpu", &merged);
    EXPECT_FALSE(merged);
    NetworkDefinition shared;  // V's projection is also a graph output: left alone
    projected_attention(shared, 5, 2, 4, true);
    optimise_for(shared, "cuda", &merged);
    EXPECT_FALSE(merged);
}

}  // namespace kiln::passes::test

// fuse_matmul_transpose: MatMul(A, Transpose(W)) with a constant W becomes FusedMatMul(A, W, trans_b=1); with a
// shared W (GPT-2's tied embedding) the Transpose stays for its other readers.
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

std::string transpose(NetworkDefinition& net, const std::string& x, std::vector<int64_t> perm) {
    AttributeMap a;
    if (!perm.empty()) a.set("perm", perm);
    return net.add_layer("Transpose", {x}, a)[0];
}

// Outputs of `net` built at -O0 on the reference backend and at -O3 on `backend`, within 1e-5 (relative to the
// largest magnitude).
void expect_same_on(const NetworkDefinition& net, const std::map<std::string, Tensor>& inputs,
                    const std::string& backend) {
    NullLogger logger;
    BuilderConfig base, opt;
    base.opt_level = 0;
    base.backend = "reference";
    opt.backend = backend;
    auto want = Builder(logger).build(net, base)->create_context()->run(inputs);
    auto got = Builder(logger).build(net, opt)->create_context()->run(inputs);
    for (const auto& [name, w] : want) {
        const Tensor& g = got.at(name);
        ASSERT_EQ(g.shape(), w.shape()) << name;
        double scale = 1e-30;
        for (int64_t i = 0; i < w.numel(); ++i) scale = std::max(scale, std::fabs(w.get_f64(i)));
        for (int64_t i = 0; i < w.numel(); ++i)
            EXPECT_LE(std::fabs(g.get_f64(i) - w.get_f64(i)), 1e-5 * scale)
                << backend << " " << name << "[" << i << "]";
    }
}

}  // namespace

TEST(FuseMatMulTranspose, TiedEmbeddingKeepsTheTransposeForTheGather) {
    NetworkDefinition net;
    std::string ids = net.add_input("ids", DataType::kInt64, {1, 5});
    std::string x = net.add_input("x", DataType::kFloat32, {Dim("batch"), 5, 8});
    std::string wte = net.add_constant("wte", filled({11, 8}, 0.3f, 0.5f));  // [vocab, hidden]
    std::string emb = net.add_layer("Gather", {wte, ids})[0];
    std::string h = net.add_layer("Add", {x, emb})[0];
    std::string wt = transpose(net, wte, {1, 0});
    net.mark_output(net.add_layer("MatMul", {h, wt}, {}, 1, "lm_head")[0]);
    net.mark_output(net.add_layer("Relu", {wt})[0]);  // a second reader of the transposed weight
    bool changed = false;
    auto g = run_pass(net, &fuse_matmul_transpose, &changed);
    EXPECT_TRUE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 1);
    EXPECT_EQ(count_op(*g, "MatMul"), 0);
    const ir::Node* mm = nullptr;
    for (const ir::Node* n : g->nodes())
        if (n->op_type == "FusedMatMul") mm = n;
    ASSERT_NE(mm, nullptr);
    EXPECT_EQ(mm->domain, "kiln");
    EXPECT_EQ(mm->attrs.get_int("trans_b", 0), 1);
    EXPECT_EQ(mm->input(1)->name, "wte");
    EXPECT_EQ(mm->outputs[0]->dims, (SymShape{Dim("batch"), 5, 11}));
    Tensor id(DataType::kInt64, {1, 5});
    for (int i = 0; i < 5; ++i) id.data<int64_t>()[i] = (3 * i + 1) % 11;
    std::map<std::string, Tensor> in = {{"ids", id}, {"x", filled({2, 5, 8}, 0.7f)}};
    expect_same_outputs(net, in);
    for (const char* backend : {"reference", "cpu"}) expect_same_on(net, in, backend);
}

TEST(FuseMatMulTranspose, SoleReaderThenBiasAndGeluFuseIntoOneLayer) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {3, 8});
    std::string ids = net.add_input("ids", DataType::kInt64, {4});
    // over constant folding's 1 MiB growth limit and also read by a Gather: folding keeps the Transpose
    std::string w = net.add_constant("w", filled({40000, 8}, 0.2f, 0.4f));
    net.mark_output(net.add_layer("Gather", {w, ids})[0]);
    std::string y = net.add_layer("MatMul", {x, transpose(net, w, {})})[0];  // no perm: reverses the dims
    std::string yb = net.add_layer("Add", {y, net.add_constant("b", filled({40000}, 0.9f, 0.1f))})[0];
    net.mark_output(net.add_layer("Gelu", {yb})[0]);
    bool changed = false;
    auto g = run_pass(net, &fuse_matmul_transpose, &changed);
    EXPECT_TRUE(changed);
    EXPECT_EQ(count_op(*g, "Transpose"), 0);  // its only reader took W directly
    std::vector<std::string> ops = layer_ops(net, 3);
    std::sort(ops.begin(), ops.end());
    EXPECT_EQ(ops, (std::vector<std::string>{"FusedMatMul", "Gather"}));  // bias and Gelu in the epilogue
    Tensor id(DataType::kInt64, {4});
    for (int i = 0; i < 4; ++i) id.data<int64_t>()[i] = 9999 * i + 7;
    std::map<std::string, Tensor> in = {{"x", filled({3, 8}, 0.1f)}, {"ids", id}};
    expect_same_outputs(net, in);
    for (const char* backend : {"reference", "cpu"}) expect_same_on(net, in, backend);
}

TEST(FuseMatMulTranspose, OtherPermutationsAndRuntimeWeightsAreLeft) {
    NetworkDefinition net;
    std::string x = net.add_input("x", DataType::kFloat32, {2, 4, 3});
    std::string w3 = net.add_constant("w3", filled({2, 4, 3}, 0.5f));
    net.mark_output(net.add_layer("MatMul", {x, transpose(net, w3, {0, 2, 1})})[0]);  // a batched transpose
    std::string v = net.add_input("v", DataType::kFloat32, {5, 3});
    net.mark_output(net.add_layer("MatMul", {x, transpose(net, v, {1, 0})})[0]);  // not a constant
    bool changed = true;
    run_pass(net, &fuse_matmul_transpose, &changed);
    EXPECT_FALSE(changed);
}

}  // namespace kiln::passes::test

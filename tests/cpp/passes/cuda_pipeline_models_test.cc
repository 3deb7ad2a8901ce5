// The whole pass pipeline for the cuda backend on PyTorch-exported transformers (tests/data/torch_export): what the
// GPU gets before the first layer. No GPU needed: only the graph is checked (the GPU tests run the numbers).
#include "kiln/onnx_parser.h"
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

// The graph after every pass of the pipeline at -O3 for `backend`, as the builder runs them.
std::unique_ptr<ir::Graph> optimised(const std::string& model, const std::string& backend) {
    NetworkDefinition net;
    NullLogger logger;
    OnnxParser(net, logger).parse_file(std::string(KILN_TEST_DATA_DIR) + "/torch_export/" + model + ".onnx");
    std::unique_ptr<ir::Graph> g = net.graph().clone();
    g->topological_sort();
    g->infer_shapes(/*lenient=*/true);
    PassContext ctx{logger, 3, backend};
    for (const auto& p : pipeline()) {
        if (p.run(*g, ctx)) {
            g->topological_sort();
            g->infer_shapes(/*lenient=*/true);
        }
    }
    g->infer_shapes();
    g->verify();
    return g;
}

}  // namespace

// BERT: the embedding is one EmbedLayerNorm; the attention mask is a Cast (int64 -> bool, before its Reshape: int
// tensors stay on the host on cuda) and one FusedElementwise for the And and the Where.
TEST(CudaPipelineModels, BertEmbeddingAndMask) {
    auto g = optimised("bert_small", "cuda");
    const ir::Node* e = only_node(*g, "EmbedLayerNorm");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->outputs.size(), 1u);
    EXPECT_EQ(e->input(0)->name, "input_ids");
    EXPECT_EQ(count_op(*g, "Gather"), 0);
    EXPECT_EQ(count_op(*g, "And"), 0);
    EXPECT_EQ(count_op(*g, "Where"), 0);
    EXPECT_EQ(count_op(*g, "Cast"), 1);
    for (const ir::Node* n : g->nodes())
        if (n->op_type == "Reshape" || n->op_type == "Flatten")
            EXPECT_NE(n->input(0)->dtype, DataType::kInt64) << n->name << " reshapes int64 data";
    // on cpu no EmbedLayerNorm, and the mask chain is one FusedElementwise after a Reshape of the int64 mask
    auto c = optimised("bert_small", "cpu");
    EXPECT_EQ(count_op(*c, "EmbedLayerNorm"), 0);
    EXPECT_EQ(count_op(*c, "Cast"), 0);
}

// GPT-2 (pre-norm): the embedding sum is also the first residual, so EmbedLayerNorm keeps it as a second output.
TEST(CudaPipelineModels, Gpt2EmbeddingKeepsTheSum) {
    auto g = optimised("gpt2_small", "cuda");
    const ir::Node* e = only_node(*g, "EmbedLayerNorm");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->outputs.size(), 2u);
}

}  // namespace kiln::passes::test

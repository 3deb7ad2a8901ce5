// fuse_embed_layer_norm: Gather from a constant table, Adds of constants and a LayerNormalization become one
// EmbedLayerNorm (cuda only); its reference kernel against a hand computation.
#include <cstdlib>

#include "src/backends/backend.h"
#include "tests/cpp/passes/pass_test_util.h"

namespace kiln::passes::test {

namespace {

constexpr int64_t kVocab = 11, kSeq = 5, kH = 16;

// ids [2, kSeq] -> table[ids] + pos [1, kSeq, kH] + type [kH] -> LayerNormalization [-> also Relu(s) when `pre_norm`]
void embedding(NetworkDefinition& net, bool pre_norm, bool constant_table = true) {
    std::string ids = net.add_input("ids", DataType::kInt64, {2, kSeq});
    std::string table = constant_table ? net.add_constant("table", filled({kVocab, kH}, 1.f))
                                       : net.add_input("table", DataType::kFloat32, {kVocab, kH});
    std::string e = net.add_layer("Gather", {table, ids})[0];
    std::string s = net.add_layer("Add", {e, net.add_constant("pos", filled({1, kSeq, kH}, 2.f))})[0];
    s = net.add_layer("Add", {net.add_constant("type", filled({kH}, 3.f)), s})[0];
    AttributeMap eps;
    eps.set("epsilon", 1e-3f);
    std::string y = net.add_layer(
        "LayerNormalization",
        {s, net.add_constant("gamma", filled({kH}, 4.f, 1.f, 1.f)), net.add_constant("beta", filled({kH}, 5.f))},
        eps)[0];
    net.mark_output(y);
    if (pre_norm) net.mark_output(net.add_layer("Relu", {s})[0]);
}

std::unique_ptr<ir::Graph> optimise_for(const NetworkDefinition& net, const std::string& backend, bool* fused) {
    return run_passes_for(net, backend, {&fuse_embed_layer_norm}, fused);
}

}  // namespace

TEST(FuseEmbedLayerNorm, GatherAddsAndLayerNormBecomeOneNode) {
    NetworkDefinition net;
    embedding(net, false);
    bool fused = false;
    auto g = optimise_for(net, "cuda", &fused);
    ASSERT_TRUE(fused);
    EXPECT_EQ(count_op(*g, "Gather"), 0);
    EXPECT_EQ(count_op(*g, "Add"), 0);
    EXPECT_EQ(count_op(*g, "LayerNormalization"), 0);
    const ir::Node* n = first_node(*g, "EmbedLayerNorm");
    ASSERT_TRUE(n);
    ASSERT_EQ(n->inputs.size(), 5u);
    EXPECT_EQ(n->outputs.size(), 1u);
    EXPECT_FLOAT_EQ(n->attrs.get_float("epsilon", 0.f), 1e-3f);
    // the two constants summed into one [1, kSeq, kH] addend
    ASSERT_TRUE(n->input(4)->is_constant());
    EXPECT_EQ(n->input(4)->constant->shape(), (Shape{1, kSeq, kH}));
    const Tensor pos = filled({1, kSeq, kH}, 2.f), type = filled({kH}, 3.f);
    for (int64_t i = 0; i < kSeq * kH; ++i)
        EXPECT_FLOAT_EQ(n->input(4)->constant->data<float>()[i], pos.data<float>()[i] + type.data<float>()[i % kH]);
    EXPECT_EQ(n->outputs[0]->dims.size(), 3u);
}

TEST(FuseEmbedLayerNorm, PreNormKeepsTheSumAsSecondOutput) {
    NetworkDefinition net;
    embedding(net, true);
    bool fused = false;
    auto g = optimise_for(net, "cuda", &fused);
    ASSERT_TRUE(fused);
    const ir::Node* n = first_node(*g, "EmbedLayerNorm");
    const ir::Node* relu = first_node(*g, "Relu");
    ASSERT_TRUE(n && relu);
    ASSERT_EQ(n->outputs.size(), 2u);
    EXPECT_EQ(relu->input(0), n->outputs[1]);
}

TEST(FuseEmbedLayerNorm, OnlyForCudaAndConstantTables) {
    NetworkDefinition net;
    embedding(net, false);
    bool fused = true;
    optimise_for(net, "cpu", &fused);
    EXPECT_FALSE(fused);
    setenv("KILN_CUDA_EMBED_NORM", "0", 1);
    optimise_for(net, "cuda", &fused);
    unsetenv("KILN_CUDA_EMBED_NORM");
    EXPECT_FALSE(fused);
    NetworkDefinition runtime_table;
    embedding(runtime_table, false, false);
    optimise_for(runtime_table, "cuda", &fused);
    EXPECT_FALSE(fused);
}

// The reference kernel (the host fallback and the oracle) against table[ids] + addend and a plain LayerNormalization,
// with a negative index, a broadcast addend and the sum output.
TEST(FuseEmbedLayerNorm, ReferenceKernelMatchesHandComputation) {
    Tensor ids = ints({3, -1, 0, 10, 7, 2}, {2, 3});
    Tensor table = filled({kVocab, kH}, 1.f), addend = filled({3, kH}, 2.f);
    Tensor gamma = filled({kH}, 5.f, 1.f, 1.f), beta = filled({kH}, 6.f);
    auto info = [](const Tensor& t, bool constant) {
        ops::TensorInfo i;
        i.dtype = t.dtype();
        i.dims.assign(t.shape().begin(), t.shape().end());
        if (constant) i.value = &t;
        return i;
    };
    Tensor y(DataType::kFloat32, {2, 3, kH}), s(DataType::kFloat32, {2, 3, kH});
    const std::string name = "emb", op = "EmbedLayerNorm";
    AttributeMap attrs;
    attrs.set("epsilon", 1e-2f);
    backends::KernelNode node{name,
                              op,
                              attrs,
                              {info(ids, false), info(table, true), info(gamma, true), info(beta, true),
                               info(addend, true)},
                              {info(y, false), info(s, false)}};
    auto ref = backends::make_backend("reference");
    ASSERT_TRUE(ref->supports(node));
    auto kernel = ref->create_kernel(node);
    kernel->execute({{&ids, &table, &gamma, &beta, &addend}, {&y, &s}, 1});
    std::vector<std::vector<double>> sum(6, std::vector<double>(kH));
    for (int64_t r = 0; r < 6; ++r) {
        int64_t id = ids.data<int64_t>()[r];
        if (id < 0) id += kVocab;
        for (int64_t j = 0; j < kH; ++j)
            sum[r][j] = double(table.data<float>()[id * kH + j]) + addend.data<float>()[(r % 3) * kH + j];
    }
    expect_norm_rows(sum, &s, y, gamma, beta, 1e-2);
}

}  // namespace kiln::passes::test

namespace kiln::passes::test {

// Malformed nodes (a hand-built network or a damaged plan) get an error naming the node and what is wrong.
TEST(FuseEmbedLayerNorm, MalformedNodesAreRejectedWithTheirName) {
    auto expect_error = [](const NetworkDefinition& net, const std::string& node, const std::string& what) {
        std::unique_ptr<ir::Graph> g = net.graph().clone();
        g->topological_sort();
        try {
            g->infer_shapes();
            ADD_FAILURE() << "no error for " << what;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(node), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
        }
    };
    {
        NetworkDefinition net;  // a 3-D table
        std::string ids = net.add_input("ids", DataType::kInt64, {2, kSeq});
        std::string t = net.add_constant("table", filled({kVocab, 2, kH}, 1.f));
        std::string g = net.add_constant("g", filled({kH}, 2.f)), b = net.add_constant("b", filled({kH}, 3.f));
        net.mark_output(net.add_layer("EmbedLayerNorm", {ids, t, g, b}, {}, 1, "emb3d")[0]);
        expect_error(net, "emb3d", "the table must be a 2-D float32");
    }
    {
        NetworkDefinition net;  // float ids, and an addend that would change the output's shape
        std::string ids = net.add_input("ids", DataType::kFloat32, {2, kSeq});
        std::string t = net.add_constant("table", filled({kVocab, kH}, 1.f));
        std::string g = net.add_constant("g", filled({kH}, 2.f)), b = net.add_constant("b", filled({kH}, 3.f));
        net.mark_output(net.add_layer("EmbedLayerNorm", {ids, t, g, b}, {}, 1, "embf")[0]);
        expect_error(net, "embf", "ids must be int64 or int32");
        NetworkDefinition wide;
        ids = wide.add_input("ids", DataType::kInt64, {2, kSeq});
        t = wide.add_constant("table", filled({kVocab, kH}, 1.f));
        g = wide.add_constant("g", filled({kH}, 2.f)), b = wide.add_constant("b", filled({kH}, 3.f));
        std::string a = wide.add_constant("a", filled({3, 2, kSeq, kH}, 4.f));
        wide.mark_output(wide.add_layer("EmbedLayerNorm", {ids, t, g, b, a}, {}, 1, "embw")[0]);
        expect_error(wide, "embw", "does not fit");
    }
    {
        NetworkDefinition net;  // FusedElementwise with an output type it cannot produce
        std::string x = net.add_input("x", DataType::kFloat32, {4});
        AttributeMap attrs;
        attrs.set("program", std::vector<std::string>{"in0", "neg"});
        attrs.set("out_dtype", int64_t{7});
        net.mark_output(net.add_layer("FusedElementwise", {x}, attrs, 1, "fe")[0]);
        expect_error(net, "fe", "out_dtype");
    }
}

}  // namespace kiln::passes::test

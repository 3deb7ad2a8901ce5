#include "src/ir/graph.h"

#include <gtest/gtest.h>

#include "kiln/status.h"

namespace kiln::ir {

namespace {
Tensor weights(Shape s, float v) {
    Tensor t(DataType::kFloat32, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = v;
    return t;
}
}  // namespace

TEST(Graph, InfersSymbolicShapesThroughMatMulAndBroadcast) {
    Graph g;
    Value* x = g.add_input("x", DataType::kFloat32, {Dim("batch"), Dim("seq"), 8});
    Value* w = g.add_constant("w", weights({8, 4}, 1.f));
    Value* b = g.add_constant("b", weights({4}, 0.5f));
    Value* y = g.add_value("y");
    Value* z = g.add_value("z");
    g.add_node("MatMul", "mm", {x, w}, {y});
    g.add_node("Add", "add", {y, b}, {z});
    g.mark_output(z);
    g.verify();
    g.topological_sort();
    g.infer_shapes();
    EXPECT_EQ(shape_str(z->dims), "batchxseqx4");
    EXPECT_EQ(z->dtype, DataType::kFloat32);
    std::string text = g.to_text();
    EXPECT_NE(text.find("%z: float32[batchxseqx4] = Add(%y, %b<const>)"), std::string::npos) << text;
}

TEST(Graph, TopologicalSortOrdersOutOfOrderNodes) {
    Graph g;
    Value* x = g.add_input("x", DataType::kFloat32, {2});
    Value* a = g.add_value("a");
    Value* b = g.add_value("b");
    g.add_node("Relu", "second", {a}, {b});
    g.add_node("Neg", "first", {x}, {a});
    g.mark_output(b);
    g.topological_sort();
    ASSERT_EQ(g.nodes().size(), 2u);
    EXPECT_EQ(g.nodes()[0]->name, "first");
}

TEST(Graph, DetectsCycles) {
    Graph g;
    Value* a = g.add_value("a");
    Value* b = g.add_value("b");
    g.add_node("Relu", "r1", {a}, {b});
    g.add_node("Relu", "r2", {b}, {a});
    g.mark_output(b);
    EXPECT_THROW(g.topological_sort(), Error);
}

TEST(Graph, VerifyListsEveryUnsupportedNode) {
    Graph g;
    Value* x = g.add_input("x", DataType::kFloat32, {2});
    Value* a = g.add_value("a");
    Value* b = g.add_value("b");
    g.add_node("Frobnicate", "f1", {x}, {a});
    g.add_node("Twiddle", "f2", {a}, {b}, {}, "com.example");
    g.mark_output(b);
    try {
        g.verify();
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
        std::string m = e.what();
        EXPECT_NE(m.find("f1"), std::string::npos);
        EXPECT_NE(m.find("Frobnicate"), std::string::npos);
        EXPECT_NE(m.find("f2"), std::string::npos);
        EXPECT_NE(m.find("com.example"), std::string::npos);
    }
}

TEST(Graph, DuplicateNamesAndProducersAreErrors) {
    Graph g;
    g.add_input("x", DataType::kFloat32, {2});
    EXPECT_THROW(g.add_value("x"), Error);
    Value* x = g.find_value("x");
    Value* y = g.add_value("y");
    g.add_node("Relu", "r1", {x}, {y});
    EXPECT_THROW(g.add_node("Relu", "r2", {x}, {y}), Error);
}

TEST(Graph, CloneIsIndependent) {
    Graph g;
    Value* x = g.add_input("x", DataType::kFloat32, {2});
    Value* y = g.add_value("y");
    g.add_node("Relu", "r", {x}, {y});
    g.mark_output(y);
    auto c = g.clone();
    c->remove_node(c->nodes()[0]);
    EXPECT_EQ(g.num_nodes(), 1u);
    EXPECT_EQ(c->num_nodes(), 0u);
    EXPECT_EQ(c->outputs()[0]->name, "y");
}

TEST(Graph, ShapeArithmeticUsesConstantValues) {
    Graph g;
    Value* x = g.add_input("x", DataType::kFloat32, {Dim("batch"), 6});
    Tensor shape(DataType::kInt64, {3});
    shape.data<int64_t>()[0] = 0;
    shape.data<int64_t>()[1] = 2;
    shape.data<int64_t>()[2] = 3;
    Value* s = g.add_constant("s", shape);
    Value* y = g.add_value("y");
    g.add_node("Reshape", "r", {x, s}, {y});
    g.mark_output(y);
    g.infer_shapes();
    EXPECT_EQ(shape_str(y->dims), "batchx2x3");
}

}  // namespace kiln::ir

#include "src/planner/layout_planner.h"

#include <gtest/gtest.h>

#include "src/common/strings.h"

namespace kiln::planner {

namespace {

// A graph builder over plan values: each node gets the caps of its kind.
struct Graph {
    plan::PlanModel m;
    std::vector<LayoutCaps> caps;

    int32_t value(SymShape dims) {
        plan::PlanValue v;
        v.name = cat("v", m.values.size());
        v.dims = std::move(dims);
        m.values.push_back(v);
        return static_cast<int32_t>(m.values.size()) - 1;
    }
    int32_t node(const std::vector<int32_t>& in, SymShape out_dims, LayoutCaps c) {
        plan::PlanNode n;
        n.name = cat("n", m.nodes.size());
        n.inputs = in;
        n.outputs = {value(std::move(out_dims))};
        m.nodes.push_back(n);
        caps.push_back(std::move(c));
        return n.outputs[0];
    }
    Layout layout(int32_t id) const { return m.values[id].layout; }
};

LayoutCaps conv_caps() { return {{true}, {true}, false, true}; }
LayoutCaps eltwise_caps(size_t inputs) { return {std::vector<bool>(inputs, true), {true}, true, false}; }
LayoutCaps plain_caps() { return {}; }
// a bf16 convolution / a max pooling: blocked and bf16 in and out
LayoutCaps bf16_conv_caps() {
    LayoutCaps c = conv_caps();
    c.bf16_inputs = c.bf16_outputs = {true};
    return c;
}
LayoutCaps bf16_pool_caps() {
    LayoutCaps c = eltwise_caps(1);
    c.bf16_inputs = c.bf16_outputs = {true};
    return c;
}

const SymShape kAct = {1, 24, 8, 8};

}  // namespace

TEST(LayoutPlanner, ChainBetweenConvolutionsIsBlockedEdgesArePlain) {
    Graph g;
    int32_t x = g.value(kAct);
    g.m.inputs = {x};
    int32_t a = g.node({x}, kAct, conv_caps());
    int32_t b = g.node({a}, kAct, eltwise_caps(1));
    int32_t c = g.node({b}, kAct, conv_caps());
    g.m.outputs = {c};
    EXPECT_EQ(plan_layouts(g.m, g.caps), 2);
    EXPECT_EQ(g.layout(x), Layout::kPlain);  // graph input
    EXPECT_EQ(g.layout(a), Layout::kNChw16c);
    EXPECT_EQ(g.layout(b), Layout::kNChw16c);
    EXPECT_EQ(g.layout(c), Layout::kPlain);  // graph output
}

TEST(LayoutPlanner, APlainOnlyConsumerPinsItsInput) {
    Graph g;
    int32_t x = g.value(kAct);
    int32_t a = g.node({x}, kAct, conv_caps());
    int32_t b = g.node({a}, kAct, plain_caps());
    int32_t c = g.node({a, b}, kAct, conv_caps());
    g.m.outputs = {c};
    plan_layouts(g.m, g.caps);
    EXPECT_EQ(g.layout(a), Layout::kPlain);
    EXPECT_EQ(g.layout(b), Layout::kPlain);
}

TEST(LayoutPlanner, TiedOperandsShareOneLayout) {
    // Add(conv_out, graph_input): the graph input is plain, so the sum and conv_out stay plain too
    Graph g;
    int32_t x = g.value(kAct);
    g.m.inputs = {x};
    int32_t a = g.node({x}, kAct, conv_caps());
    int32_t s = g.node({a, x}, kAct, eltwise_caps(2));
    int32_t c = g.node({s}, kAct, conv_caps());
    g.m.outputs = {c};
    EXPECT_EQ(plan_layouts(g.m, g.caps), 0);
    EXPECT_EQ(g.layout(a), Layout::kPlain);
    EXPECT_EQ(g.layout(s), Layout::kPlain);
}

TEST(LayoutPlanner, UntiedPortsAreIndependent) {
    // a per-channel operand (plain-only port) does not pin the tied ones
    Graph g;
    int32_t x = g.value(kAct);
    int32_t a = g.node({x}, kAct, conv_caps());
    int32_t s = g.node({a}, {1, 24, 1, 1}, {{true}, {false}, false, false});  // global pool
    LayoutCaps mul = {{true, false}, {true}, true, false};
    int32_t y = g.node({a, s}, kAct, mul);
    int32_t c = g.node({y}, kAct, conv_caps());
    g.m.outputs = {c};
    plan_layouts(g.m, g.caps);
    EXPECT_EQ(g.layout(a), Layout::kNChw16c);
    EXPECT_EQ(g.layout(s), Layout::kPlain);
    EXPECT_EQ(g.layout(y), Layout::kNChw16c);
}

TEST(LayoutPlanner, NothingBlockedWithoutAConvolutionOrWithTinySymbolicOrMostlyPaddedValues) {
    Graph g;
    int32_t x = g.value(kAct);
    int32_t a = g.node({x}, kAct, eltwise_caps(1));
    int32_t b = g.node({a}, kAct, eltwise_caps(1));
    int32_t p = g.node({b}, {1, 24, 1, 1}, conv_caps());  // 1x1 spatial
    int32_t q = g.node({p}, {1, 24, 1, 1}, conv_caps());
    g.m.outputs = {q};
    EXPECT_EQ(plan_layouts(g.m, g.caps), 0);

    Graph s;
    int32_t sx = s.value({Dim("batch"), 24, 8, 8});
    int32_t sa = s.node({sx}, {Dim("batch"), 24, 8, 8}, conv_caps());
    int32_t sb = s.node({sa}, kAct, conv_caps());  // static itself, but the plan has a symbolic activation
    int32_t sc = s.node({sb}, kAct, conv_caps());
    s.m.outputs = {sc};
    EXPECT_EQ(plan_layouts(s.m, s.caps), 0);

    Graph w;  // 8 channels padded to 16: more padding than it is worth
    int32_t wx = w.value({1, 8, 8, 8});
    int32_t wa = w.node({wx}, {1, 8, 8, 8}, conv_caps());
    w.m.outputs = {w.node({wa}, {1, 8, 8, 8}, conv_caps())};
    EXPECT_EQ(plan_layouts(w.m, w.caps), 0);
}

TEST(LayoutPlanner, Bf16OnlyWhereTheProducerAndEveryConsumerTakeIt) {
    // x -> conv a -> pool b -> conv c -> conv d -> eltwise e -> conv f (output); conv d also reads a
    Graph g;
    int32_t x = g.value(kAct);
    g.m.inputs = {x};
    int32_t a = g.node({x}, kAct, bf16_conv_caps());
    int32_t b = g.node({a}, kAct, bf16_pool_caps());
    int32_t c = g.node({b}, kAct, bf16_conv_caps());
    int32_t d = g.node({c, a}, kAct, bf16_conv_caps());
    g.caps.back().inputs = g.caps.back().bf16_inputs = {true, true};
    int32_t e = g.node({d}, kAct, eltwise_caps(1));
    int32_t f = g.node({e}, kAct, bf16_conv_caps());
    g.m.outputs = {f};
    EXPECT_EQ(plan_layouts(g.m, g.caps), 5);
    EXPECT_EQ(g.layout(x), Layout::kPlain);
    EXPECT_EQ(g.layout(a), Layout::kNChw16cBf16);  // read by the pool and by conv d
    EXPECT_EQ(g.layout(b), Layout::kNChw16cBf16);
    EXPECT_EQ(g.layout(c), Layout::kNChw16cBf16);
    EXPECT_EQ(g.layout(d), Layout::kNChw16c);  // read by an elementwise node, which takes fp32 only
    EXPECT_EQ(g.layout(e), Layout::kNChw16c);
    EXPECT_EQ(g.layout(f), Layout::kPlain);
}

TEST(LayoutPlanner, Bf16NeedsEveryTiedValue) {
    // a bf16 max pooling between a bf16 conv and an fp32-only conv: the pool's tied input and output stay fp32
    Graph g;
    int32_t x = g.value(kAct);
    int32_t a = g.node({x}, kAct, bf16_conv_caps());
    int32_t b = g.node({a}, kAct, bf16_pool_caps());
    int32_t c = g.node({b}, kAct, conv_caps());
    g.m.outputs = {c};
    EXPECT_EQ(plan_layouts(g.m, g.caps), 2);
    EXPECT_EQ(g.layout(a), Layout::kNChw16c);
    EXPECT_EQ(g.layout(b), Layout::kNChw16c);
}

}  // namespace kiln::planner

#pragma once
// Helpers shared by the pass tests: run one pass on a copy of a network's graph (structure), and build the network
// at opt level 0 and at a target level through the public API and compare every output (numbers).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "src/ir/graph.h"
#include "src/passes/pass.h"

namespace kiln::passes::test {

using PassFn = bool (*)(ir::Graph&, PassContext&);

/// Clones the network's graph, sorts and infers it (as the builder does), runs `pass` and, when it changed
/// something, re-sorts, re-infers and verifies. `changed` receives the pass's return value.
inline std::unique_ptr<ir::Graph> run_pass(const NetworkDefinition& net, PassFn pass, bool* changed = nullptr) {
    std::unique_ptr<ir::Graph> g = net.graph().clone();
    g->verify();
    g->topological_sort();
    g->infer_shapes();
    NullLogger logger;
    PassContext ctx{logger, 3};
    bool c = pass(*g, ctx);
    if (c) {
        g->topological_sort();
        g->infer_shapes();
        g->verify();
    }
    if (changed) *changed = c;
    return g;
}

/// Runs `passes` in order on a copy of the network's graph for `backend` (sorted and inferred before each, verified at
/// the end); `last_changed` gets the last pass's return value.
inline std::unique_ptr<ir::Graph> run_passes_for(const NetworkDefinition& net, const std::string& backend,
                                                 const std::vector<PassFn>& passes, bool* last_changed) {
    std::unique_ptr<ir::Graph> g = net.graph().clone();
    NullLogger logger;
    PassContext ctx{logger, 3, backend};
    for (PassFn p : passes) {
        g->topological_sort();
        g->infer_shapes();
        *last_changed = p(*g, ctx);
    }
    g->topological_sort();
    g->infer_shapes();
    g->verify();
    return g;
}

/// The first node of op type `op`, or nullptr.
inline const ir::Node* first_node(const ir::Graph& g, const std::string& op) {
    for (const ir::Node* n : g.nodes())
        if (n->op_type == op) return n;
    return nullptr;
}

/// The one node of op type `op` (a failure is recorded when there are several), or nullptr.
inline const ir::Node* only_node(const ir::Graph& g, const std::string& op) {
    const ir::Node* found = nullptr;
    for (const ir::Node* n : g.nodes())
        if (n->op_type == op) {
            EXPECT_EQ(found, nullptr) << "more than one " << op;
            found = n;
        }
    return found;
}

inline int count_op(const ir::Graph& g, const std::string& op) {
    int n = 0;
    for (const ir::Node* node : g.nodes()) n += node->op_type == op;
    return n;
}

/// Transpose attributes.
inline AttributeMap perm(std::vector<int64_t> p) {
    AttributeMap a;
    a.set("perm", p);
    return a;
}

/// A float32 scalar constant named `name`.
inline std::string scalar(NetworkDefinition& net, const std::string& name, float v) {
    Tensor t(DataType::kFloat32, {});
    *t.data<float>() = v;
    return net.add_constant(name, t);
}

/// Deterministic, non-trivial float data.
inline Tensor filled(Shape shape, float seed, float scale = 1.f, float offset = 0.f) {
    Tensor t(DataType::kFloat32, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = offset + scale * std::sin(seed + 0.37f * i);
    return t;
}

inline Tensor ints(std::vector<int64_t> v, Shape shape = {}) {
    if (shape.empty() && v.size() != 1) shape = {static_cast<int64_t>(v.size())};
    if (v.size() == 1 && shape.empty()) shape = {};
    Tensor t(DataType::kInt64, shape);
    std::copy(v.begin(), v.end(), t.data<int64_t>());
    return t;
}

/// Op types of the engine's layers when built at `level` (for `backend`).
inline std::vector<std::string> layer_ops(const NetworkDefinition& net, int level, const std::string& backend = "cpu") {
    NullLogger logger;
    BuilderConfig c;
    c.opt_level = level;
    c.backend = backend;
    std::vector<std::string> ops;
    for (const LayerInfo& l : Builder(logger).build(net, c)->layers()) ops.push_back(l.op_type);
    return ops;
}

/// Builds `net` at -O0 and at `level` (for `backend`), runs both on `inputs` and expects every output equal within
/// 1e-5 relative to the output's largest magnitude.
inline void expect_same_outputs(const NetworkDefinition& net, const std::map<std::string, Tensor>& inputs,
                                int level = 3, const std::string& backend = "cpu") {
    NullLogger logger;
    BuilderConfig base, opt;
    base.opt_level = 0;
    opt.opt_level = level;
    base.backend = opt.backend = backend;
    auto want = Builder(logger).build(net, base)->create_context()->run(inputs);
    auto got = Builder(logger).build(net, opt)->create_context()->run(inputs);
    ASSERT_EQ(want.size(), got.size());
    for (const auto& [name, w] : want) {
        ASSERT_TRUE(got.count(name)) << "output '" << name << "' missing at -O" << level;
        const Tensor& g = got.at(name);
        ASSERT_EQ(g.shape(), w.shape()) << name;
        ASSERT_EQ(g.dtype(), w.dtype()) << name;
        double scale = 1e-30;
        for (int64_t i = 0; i < w.numel(); ++i) scale = std::max(scale, std::fabs(w.get_f64(i)));
        for (int64_t i = 0; i < w.numel(); ++i)
            EXPECT_LE(std::fabs(g.get_f64(i) - w.get_f64(i)), 1e-5 * scale) << name << "[" << i << "]";
    }
}

/// Expects row r of the [rows, n] float tensors s and y to be sum[r] (s may be null) and its LayerNormalization
/// (gamma, beta, eps), within 1e-4 relative; `sum` is computed in double by the test.
inline void expect_norm_rows(const std::vector<std::vector<double>>& sum, const Tensor* s, const Tensor& y,
                             const Tensor& gamma, const Tensor& beta, double eps) {
    for (size_t r = 0; r < sum.size(); ++r) {
        const std::vector<double>& row = sum[r];
        const size_t n = row.size();
        double mean = 0, var = 0;
        for (double v : row) mean += v / n;
        for (double v : row) var += (v - mean) * (v - mean) / n;
        for (size_t j = 0; j < n; ++j) {
            if (s) {
                EXPECT_NEAR(s->data<float>()[r * n + j], row[j], 1e-4 * (1 + std::fabs(row[j]))) << r << "," << j;
            }
            const double want = (row[j] - mean) / std::sqrt(var + eps) * gamma.data<float>()[j] + beta.data<float>()[j];
            EXPECT_NEAR(y.data<float>()[r * n + j], want, 1e-4 * (1 + std::fabs(want))) << r << "," << j;
        }
    }
}

}  // namespace kiln::passes::test

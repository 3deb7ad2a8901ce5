// Gather with an identity index -> Reshape:
//   Gather(x, idx, axis=a) -> Reshape(x, x.shape[:a] + idx.shape + x.shape[a+1:])
//   when idx is a constant whose values in row-major order are exactly 0, 1, ..., N-1 with N = x.shape[a] and
//   every dim of x before a is 1.
// Gather's output at (i_0..i_{a-1}, j, k) is x[i_0..i_{a-1}, idx[j], k] = x[0..0, flat(j), k]: the elements of x in
// their order, so the output has x's bytes and only the shape changes. HF transformers' attention mask builds one
// (indices = arange(batch * seq) gathering a flattened [batch * seq, 1] mask); as a Reshape it is an alias, and the
// elementwise ops on either side can fuse (hoist_reshape, fuse_elementwise).
// Limits: negative indices (-N..-1 for the same positions) are not recognised; at most one dim of the output may be
// symbolic (it becomes -1 in the shape); a tensor with a 0 dim is left alone.
#include <algorithm>

#include "src/passes/pass.h"

namespace kiln::passes {

namespace {

bool identity_indices(const ir::Value* idx, int64_t n) {
    if (!idx || !idx->is_constant()) return false;
    const Tensor& t = *idx->constant;
    if ((t.dtype() != DataType::kInt64 && t.dtype() != DataType::kInt32) || t.numel() != n) return false;
    for (int64_t i = 0; i < n; ++i)
        if (t.get_i64(i) != i) return false;
    return true;
}

// The Reshape's shape for `out` (static dims, one symbolic dim as -1); false when it cannot be written.
bool shape_of(const SymShape& out, std::vector<int64_t>* shape) {
    int symbolic = 0;
    for (const Dim& d : out) {
        if (d.is_static() && d.value == 0) return false;  // a 0 copies an input dim in a Reshape
        if (!d.is_static()) ++symbolic;
        shape->push_back(d.is_static() ? d.value : -1);
    }
    return symbolic <= 1;
}

bool rewrite(ir::Graph& g, ir::Node* n) {
    if (!(n->domain.empty() || n->domain == "ai.onnx") || n->inputs.size() != 2 || n->outputs.size() != 1)
        return false;
    const ir::Value* x = n->input(0);
    const ir::Value* idx = n->input(1);
    const ir::Value* y = n->outputs[0];
    if (!x || !x->shape_known || x->dims.empty() || !idx || !idx->shape_known || !y->shape_known) return false;
    int64_t axis = n->attrs.get_int("axis", 0);
    const int64_t rank = static_cast<int64_t>(x->dims.size());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank || !x->dims[axis].is_static()) return false;
    for (int64_t i = 0; i < axis; ++i)
        if (!(x->dims[i].is_static() && x->dims[i].value == 1)) return false;
    if (!identity_indices(idx, x->dims[axis].value)) return false;
    std::vector<int64_t> shape;
    if (!shape_of(y->dims, &shape)) return false;
    Tensor s(DataType::kInt64, {static_cast<int64_t>(shape.size())});
    std::copy(shape.begin(), shape.end(), s.data<int64_t>());
    n->op_type = "Reshape";
    n->domain.clear();
    n->attrs = AttributeMap();
    n->inputs[1] = g.add_constant(g.unique_name(n->name + "_shape"), std::move(s));
    return true;
}

}  // namespace

bool gather_to_reshape(ir::Graph& g, PassContext&) {
    bool changed = false;
    for (ir::Node* n : g.nodes())
        if (n->op_type == "Gather" && rewrite(g, n)) changed = true;
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes

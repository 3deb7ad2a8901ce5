// Folds the head split and merge around an Attention into the Attention itself (the head-packed layout):
//   Q = Transpose(Reshape(Xq, [b, s, h, d]), perm [0, 2, 1, 3])     (likewise V; K with perm [0, 2, 3, 1] when
//   o = Attention(Q, K, V, mask)                                       k_transposed=1, [0, 2, 1, 3] otherwise)
//   y = Reshape(Transpose(o, perm [0, 2, 1, 3]), [b, s, h * dv])
//   -> y = Attention(Xq, Xk, Xv, mask) {num_heads=h, head_dim=d, v_head_dim=dv, qkv_offsets, k_transposed=0}
// so the kernel reads each head's columns straight from the projections' [b, s, h*d] rows and writes [b, s, h*dv]:
// four Transposes (copies of the whole activation) per attention go away. When Xq, Xk and Xv are the three outputs
// of one Split along the last axis (GPT-2's fused c_attn), the Attention reads the Split's input at the three column
// offsets and the Split goes too. The mask keeps its meaning: the scores are [b, h, s_q, s_k] in both forms.
// For the backends whose Attention kernel reads this layout: cpu, reference and cuda.
#include "src/passes/pass.h"
#include "src/passes/pattern.h"

namespace kiln::passes {

namespace {

bool has_perm(const ir::Node* t, const std::vector<int64_t>& want) { return t->attrs.get_ints("perm") == want; }

// The [b, s, h*d] rows behind a per-head operand Transpose(Reshape(x, [b, s, h, d]), perm).
struct HeadSplit {
    ir::Value* x = nullptr;
    int64_t heads = 0, head_dim = 0;
    std::vector<ir::Node*> nodes;
};

bool match_split(ir::Value* op, const std::vector<int64_t>& perm, const UseMap& uses, HeadSplit* out) {
    ir::Node* tr = producer_of(op, "Transpose");
    if (!tr || !has_perm(tr, perm) || !uses.single_use(op)) return false;
    ir::Node* rs = producer_of(tr->input(0), "Reshape");
    if (!rs || !uses.single_use(tr->input(0))) return false;
    const SymShape& r4 = rs->outputs[0]->dims;
    ir::Value* x = rs->input(0);
    if (r4.size() != 4 || x->dims.size() != 3 || !r4[2].is_static() || !r4[3].is_static()) return false;
    if (!(x->dims[0] == r4[0]) || !(x->dims[1] == r4[1]) || !x->dims[2].is_static() ||
        x->dims[2].value != r4[2].value * r4[3].value || x->dtype != DataType::kFloat32)
        return false;
    *out = {x, r4[2].value, r4[3].value, {tr, rs}};
    return true;
}

// y = Reshape(Transpose(o, [0, 2, 1, 3]), [b, s, h * dv]) with o = [b, h, s, dv]: the merge node's output y.
ir::Value* match_merge(ir::Value* o, const UseMap& uses, std::vector<ir::Node*>* nodes) {
    ir::Node* tr = uses.only_user(o);
    if (!tr || tr->op_type != "Transpose" || !tr->domain.empty() || !has_perm(tr, {0, 2, 1, 3}) ||
        !uses.single_use(o))
        return nullptr;
    ir::Node* rs = uses.only_user(tr->outputs[0]);
    if (!rs || rs->op_type != "Reshape" || !rs->domain.empty() || rs->input(0) != tr->outputs[0] ||
        !uses.single_use(tr->outputs[0]))
        return nullptr;
    const SymShape& t4 = tr->outputs[0]->dims;  // [b, s, h, dv]
    const SymShape& y = rs->outputs[0]->dims;
    if (t4.size() != 4 || y.size() != 3 || !(y[0] == t4[0]) || !(y[1] == t4[1]) || !t4[2].is_static() ||
        !t4[3].is_static() || !y[2].is_static() || y[2].value != t4[2].value * t4[3].value)
        return nullptr;
    nodes->push_back(tr);
    nodes->push_back(rs);
    return rs->outputs[0];
}

bool try_fuse(ir::Graph& g, ir::Node* att, const UseMap& uses) {
    if (att->attrs.get_int("num_heads", 0) > 0 || att->inputs.size() < 3) return false;
    const bool kt = att->attrs.get_int("k_transposed", 0) != 0;
    HeadSplit q, k, v;
    if (!match_split(att->input(0), {0, 2, 1, 3}, uses, &q) ||
        !match_split(att->input(1), kt ? std::vector<int64_t>{0, 2, 3, 1} : std::vector<int64_t>{0, 2, 1, 3}, uses,
                     &k) ||
        !match_split(att->input(2), {0, 2, 1, 3}, uses, &v))
        return false;
    if (q.heads != k.heads || q.heads != v.heads || q.head_dim != k.head_dim) return false;
    std::vector<ir::Node*> matched = {att};
    ir::Value* y = match_merge(att->outputs[0], uses, &matched);
    if (!y) return false;
    for (HeadSplit* h : {&q, &k, &v}) matched.insert(matched.end(), h->nodes.begin(), h->nodes.end());

    // Xq, Xk, Xv = Split(X, axis=-1): read X at the three column offsets
    std::vector<ir::Value*> ins = {q.x, k.x, v.x};
    std::vector<int64_t> offsets = {0, 0, 0};
    ir::Node* split = producer_of(q.x, "Split");
    if (split && split->outputs.size() == 3 && producer_of(k.x, "Split") == split &&
        producer_of(v.x, "Split") == split && split->input(0)->dims.size() == 3) {
        const int64_t axis = split->attrs.get_int("axis", 0);
        bool ok = axis == -1 || axis == 2;
        std::vector<int64_t> col(3, 0);  // column offset of each Split output
        for (int i = 0; i < 3 && ok; ++i) {
            ok = uses.single_use(split->outputs[i]) && split->outputs[i]->dims[2].is_static();
            if (ok && i > 0) col[i] = col[i - 1] + split->outputs[i - 1]->dims[2].value;
        }
        for (int i = 0; i < 3 && ok; ++i) {
            for (int j = 0; j < 3; ++j)
                if (ins[i] == split->outputs[j]) offsets[i] = col[j];
        }
        if (ok) {
            ins = {split->input(0), split->input(0), split->input(0)};
            matched.push_back(split);
        }
    }

    AttributeMap attrs = att->attrs;
    attrs.set("k_transposed", int64_t{0});
    attrs.set("num_heads", q.heads);
    attrs.set("head_dim", q.head_dim);
    attrs.set("v_head_dim", v.head_dim);
    attrs.set("qkv_offsets", offsets);
    if (att->inputs.size() > 3) ins.push_back(att->input(3));
    std::vector<std::string> names = fused_names(matched);
    std::string name = att->name;
    remove_nodes(g, matched);
    g.add_node("Attention", name, ins, {y}, attrs, "kiln")->fused_from = names;
    return true;
}

}  // namespace

bool fuse_attention_heads(ir::Graph& g, PassContext& ctx) {
    if (ctx.backend != "cpu" && ctx.backend != "reference" && ctx.backend != "cuda") return false;
    return rewrite_until_stable(g, "Attention", "kiln", try_fuse);
}

}  // namespace kiln::passes

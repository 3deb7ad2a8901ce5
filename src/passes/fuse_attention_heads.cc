// Folds the head split and merge around an Attention into the Attention itself (the head-packed layout):
//   Q = Transpose(Reshape(Xq, [b, s, h, d]), perm [0, 2, 1, 3])     (likewise V; K with perm [0, 2, 3, 1] when
//   o = Attention(Q, K, V, mask)                                       k_transposed=1, [0, 2, 1, 3] otherwise)
//   y = Reshape(Transpose(o, perm [0, 2, 1, 3]), [b, s, h * dv])
//   -> y = Attention(Xq, Xk, Xv, mask) {num_heads=h, head_dim=d, v_head_dim=dv, qkv_offsets, k_transposed=0}
// so the kernel reads each head's columns straight from the projections' [b, s, h*d] rows and writes [b, s, h*dv]:
// four Transposes (copies of the whole activation) per attention go away. When Xq, Xk and Xv are the three outputs
// of one Split along the last axis (GPT-2's fused c_attn), the Attention reads the Split's input at the three column
// offsets and the Split goes too. The mask keeps its meaning: the scores are [b, h, s_q, s_k] in both forms.
// torch's nn.MultiheadAttention works seq-first ([s, b, h*d] rows) and splits the heads in another way:
//   Q = Reshape(Transpose(Reshape(Xq, [s, b*h, d]), perm [1, 0, 2]), [b, h, s, d])     (likewise K and V)
//   o = Attention(Q, K, V, mask)
//   y = Reshape(Transpose(o, perm [2, 0, 1, 3]), [s*b, h*dv] or [s, b, h*dv])
//   -> y = Reshape(Attention(Xq, Xk, Xv, mask) {..., seq_first=1}, as before)   (a Reshape of [s, b, h*dv] rows)
// and with its packed in-projection X = [s, b, 3E] (self-attention) the three Xi are the chunks
//   Xi = Gather(Squeeze(Transpose(Unsqueeze(Reshape(X, [s, b, 3, E]), 0), [3, 1, 2, 0, 4]), 3), i) = X[:, :, iE:(i+1)E]
// which the Attention reads in place at column offsets iE (the chain goes once no other Gather reads it).
// For the backends whose Attention kernel reads this layout: cpu, reference and cuda.
#include <algorithm>

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

// The head merge's two nodes: o's only reader a Transpose with `perm`, whose only reader is a Reshape (into *tr, *rs).
bool match_transpose_reshape(ir::Value* o, const std::vector<int64_t>& perm, const UseMap& uses, ir::Node** tr,
                             ir::Node** rs) {
    *tr = uses.only_user(o);
    if (!*tr || (*tr)->op_type != "Transpose" || !(*tr)->domain.empty() || !has_perm(*tr, perm) ||
        !uses.single_use(o))
        return false;
    *rs = uses.only_user((*tr)->outputs[0]);
    return *rs && (*rs)->op_type == "Reshape" && (*rs)->domain.empty() && (*rs)->input(0) == (*tr)->outputs[0] &&
           uses.single_use((*tr)->outputs[0]);
}

// y = Reshape(Transpose(o, [0, 2, 1, 3]), [b, s, h * dv]) with o = [b, h, s, dv]: the merge node's output y.
ir::Value* match_merge(ir::Value* o, const UseMap& uses, std::vector<ir::Node*>* nodes) {
    ir::Node *tr = nullptr, *rs = nullptr;
    if (!match_transpose_reshape(o, {0, 2, 1, 3}, uses, &tr, &rs)) return nullptr;
    const SymShape& t4 = tr->outputs[0]->dims;  // [b, s, h, dv]
    const SymShape& y = rs->outputs[0]->dims;
    if (t4.size() != 4 || y.size() != 3 || !(y[0] == t4[0]) || !(y[1] == t4[1]) || !t4[2].is_static() ||
        !t4[3].is_static() || !y[2].is_static() || y[2].value != t4[2].value * t4[3].value)
        return nullptr;
    nodes->push_back(tr);
    nodes->push_back(rs);
    return rs->outputs[0];
}

// ---- seq-first (torch nn.MultiheadAttention)

bool const_ints(const ir::Value* v, std::vector<int64_t>* out) {
    if (!v || !v->is_constant()) return false;
    *out = v->constant->to_i64_vector();
    return true;
}

// The node's axes (input 1, or the attribute of opset < 13).
bool axes_of(const ir::Node* n, std::vector<int64_t>* axes) {
    if (n->inputs.size() > 1) return const_ints(n->input(1), axes);
    *axes = n->attrs.get_ints("axes");
    return n->attrs.has("axes");
}

// x = Gather(Squeeze(Transpose(Unsqueeze(Reshape(X, [s, b, n, E]), 0), [3, 1, 2, 0, 4]), 3), i): chunk i of torch's
// packed in-projection X [s, b, n E] (`_in_projection_packed`), i.e. X[:, :, iE:(i+1)E]. Sets X and the column offset.
bool match_chunk(ir::Value* x, const UseMap& uses, ir::Value** whole, int64_t* offset, std::vector<ir::Node*>* chain) {
    ir::Node* ga = producer_of(x, "Gather");
    if (!ga || ga->attrs.get_int("axis", 0) != 0 || !uses.single_use(x)) return false;
    std::vector<int64_t> idx, axes;
    if (!const_ints(ga->input(1), &idx) || idx.size() != 1 || ga->input(1)->dims.size() != 0) return false;
    ir::Node* sq = producer_of(ga->input(0), "Squeeze");
    if (!sq || !axes_of(sq, &axes) || axes.size() != 1 || (axes[0] != 3 && axes[0] != -2)) return false;
    ir::Node* tr = producer_of(sq->input(0), "Transpose");
    if (!tr || !has_perm(tr, {3, 1, 2, 0, 4})) return false;
    ir::Node* un = producer_of(tr->input(0), "Unsqueeze");
    if (!un || !axes_of(un, &axes) || axes != std::vector<int64_t>{0}) return false;
    ir::Node* rs = producer_of(un->input(0), "Reshape");
    if (!rs) return false;
    ir::Value* X = rs->input(0);
    const SymShape& r4 = rs->outputs[0]->dims;  // [s, b, n, E]
    if (X->dims.size() != 3 || r4.size() != 4 || !(r4[0] == X->dims[0]) || !(r4[1] == X->dims[1]) ||
        !is_static({r4[2], r4[3]}) || !X->dims[2].is_static() || X->dims[2].value != r4[2].value * r4[3].value ||
        idx[0] < 0 || idx[0] >= r4[2].value)
        return false;
    *whole = X;
    *offset = idx[0] * r4[3].value;
    *chain = {ga, sq, tr, un, rs};
    return true;
}

// op = Reshape(Transpose(Reshape(x, [s, b*h, d]), [1, 0, 2]), [b, h, s, d]) with x = [s, b, h*d] (seq-first rows);
// x may be a chunk of a packed projection (match_chunk). out->x is then the rows the Attention reads.
bool match_split_seq_first(ir::Value* op, const UseMap& uses, HeadSplit* out, int64_t* offset,
                           std::vector<ir::Node*>* chain) {
    ir::Node* r4n = producer_of(op, "Reshape");
    if (!r4n || !uses.single_use(op)) return false;
    ir::Node* tr = producer_of(r4n->input(0), "Transpose");
    if (!tr || !has_perm(tr, {1, 0, 2}) || !uses.single_use(r4n->input(0))) return false;
    ir::Node* r3n = producer_of(tr->input(0), "Reshape");
    if (!r3n || !uses.single_use(tr->input(0))) return false;
    ir::Value* x = r3n->input(0);
    const SymShape& r4 = op->dims;               // [b, h, s, d]
    const SymShape& r3 = r3n->outputs[0]->dims;  // [s, b*h, d]
    if (r4.size() != 4 || r3.size() != 3 || x->dims.size() != 3 || x->dtype != DataType::kFloat32) return false;
    if (!is_static({r4[1], r4[3], r3[2]}) || !x->dims[2].is_static() || r3[2].value != r4[3].value ||
        x->dims[2].value != r4[1].value * r4[3].value || !(x->dims[0] == r4[2]) || !(x->dims[1] == r4[0]) ||
        !(r3[0] == x->dims[0]))
        return false;
    *out = {x, r4[1].value, r4[3].value, {r4n, tr, r3n}};
    *offset = 0;
    chain->clear();
    ir::Value* whole = nullptr;
    if (match_chunk(x, uses, &whole, offset, chain)) out->x = whole;
    return true;
}

// y = Reshape(Transpose(o, [2, 0, 1, 3]), shape) with o = [b, h, s, dv]: returns the Reshape and appends the
// Transpose (output [s, b, h, dv]) to `nodes`.
ir::Node* match_merge_seq_first(ir::Value* o, const UseMap& uses, std::vector<ir::Node*>* nodes) {
    ir::Node *tr = nullptr, *rs = nullptr;
    if (!match_transpose_reshape(o, {2, 0, 1, 3}, uses, &tr, &rs)) return nullptr;
    const SymShape& t4 = tr->outputs[0]->dims;
    if (t4.size() != 4 || !t4[2].is_static() || !t4[3].is_static()) return nullptr;
    std::vector<int64_t> shape;  // a 0 entry copies an input dim: only s and b stay the same in [s, b, h*dv]
    if (const_ints(rs->input(1), &shape))
        for (size_t i = 2; i < shape.size(); ++i)
            if (shape[i] == 0) return nullptr;
    nodes->push_back(tr);
    return rs;
}

// Removes the nodes of `chain` (readers before producers, no duplicates) whose outputs nothing reads any more.
void remove_dead(ir::Graph& g, const std::vector<ir::Node*>& chain) {
    for (ir::Node* n : chain) {
        bool dead = true;
        for (const ir::Value* o : n->outputs) dead = dead && !o->is_output && g.consumers(o).empty();
        if (dead) g.remove_node(n);
    }
}

bool try_fuse_seq_first(ir::Graph& g, ir::Node* att, const UseMap& uses) {
    if (att->attrs.get_int("k_transposed", 0) != 0) return false;
    HeadSplit hs[3];
    int64_t offsets[3];
    std::vector<ir::Node*> chains[3];
    for (int i = 0; i < 3; ++i)
        if (!match_split_seq_first(att->input(i), uses, &hs[i], &offsets[i], &chains[i])) return false;
    if (hs[0].heads != hs[1].heads || hs[0].heads != hs[2].heads || hs[0].head_dim != hs[1].head_dim) return false;
    if (!(hs[0].x->dims[1] == hs[1].x->dims[1]) || !(hs[1].x->dims[1] == hs[2].x->dims[1])) return false;
    std::vector<ir::Node*> matched = {att};
    ir::Node* rs = match_merge_seq_first(att->outputs[0], uses, &matched);
    if (!rs) return false;
    const SymShape& t4 = matched.back()->outputs[0]->dims;  // [s, b, h, dv]
    const int64_t h = hs[0].heads, dv = hs[2].head_dim;
    if (t4[2].value != h || t4[3].value != dv) return false;
    std::vector<ir::Node*> gathers;
    for (int i = 0; i < 3; ++i) {
        matched.insert(matched.end(), hs[i].nodes.begin(), hs[i].nodes.end());
        if (!chains[i].empty()) gathers.push_back(chains[i][0]);
    }
    matched.insert(matched.end(), gathers.begin(), gathers.end());

    // the Attention writes [s, b, h*dv] rows; the Reshape after the merge stays unless it is that shape already
    SymShape rows = {t4[0], t4[1], Dim(h * dv)};
    ir::Value* y = rs->outputs[0];
    const bool keep_reshape = !(y->dims == rows);
    if (keep_reshape) {
        y = g.add_value(g.unique_name(att->name + "_rows"), DataType::kFloat32, rows, true);
        rs->inputs[0] = y;
    } else {
        matched.push_back(rs);
    }
    AttributeMap attrs = att->attrs;
    attrs.set("num_heads", h);
    attrs.set("head_dim", hs[0].head_dim);
    attrs.set("v_head_dim", dv);
    attrs.set("qkv_offsets", std::vector<int64_t>{offsets[0], offsets[1], offsets[2]});
    attrs.set("seq_first", int64_t{1});
    std::vector<ir::Value*> ins = {hs[0].x, hs[1].x, hs[2].x};
    if (att->inputs.size() > 3) ins.push_back(att->input(3));
    std::vector<std::string> names = fused_names(matched);
    std::string name = att->name;
    std::vector<ir::Node*> rest;  // the chunks' shared chains, each node once
    for (int i = 0; i < 3; ++i)
        for (size_t j = 1; j < chains[i].size(); ++j)
            if (std::find(rest.begin(), rest.end(), chains[i][j]) == rest.end()) rest.push_back(chains[i][j]);
    remove_nodes(g, matched);
    remove_dead(g, rest);
    g.add_node("Attention", name, ins, {y}, attrs, "kiln")->fused_from = names;
    return true;
}

bool try_fuse(ir::Graph& g, ir::Node* att, const UseMap& uses) {
    if (att->attrs.get_int("num_heads", 0) > 0 || att->inputs.size() < 3) return false;
    if (try_fuse_seq_first(g, att, uses)) return true;
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

#pragma once
// Where the Attention op's heads live in its tensors, shared by the reference and cpu kernels.
//
// Two layouts (src/ops/op_list.def):
//  - classic (`num_heads` absent or 0): Q [..., sq, d], K [..., sk, d] (or [..., d, sk] with `k_transposed`),
//    V [..., sk, dv], out [..., sq, dv]; the batch dims broadcast.
//  - head-packed (`num_heads` = h): Q [..., sq, wq], K [..., sk, wk], V [..., sk, wv] with head i of Q in the columns
//    [oq + i d, oq + (i + 1) d) (`qkv_offsets` = [oq, ok, ov], `head_dim` = d, `v_head_dim` = dv), out
//    [..., sq, h dv]: the [b, s, h*d] rows a projection writes, read in place (no head-split Transpose).
//    With `seq_first`=1 the sequence is the first dim instead: Q [sq, ..., wq], K [sk, ..., wk], V [sk, ..., wv],
//    out [sq, ..., h dv] (the [s, b, h*d] rows of torch's nn.MultiheadAttention, which works seq-first): the batch
//    entries of one position are adjacent (stride w) and consecutive positions are prod(batch) * w apart.
// In both, the "head batch" is the output's batch dims, with h appended in the packed layout, and the mask
// broadcasts to [head batch..., sq, sk].
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kiln/attribute.h"
#include "src/common/check.h"
#include "src/ops/shape_utils.h"

namespace kiln::backends {

struct AttentionGeometry {
    Shape batch;                  // head batch
    int64_t sq = 0, sk = 0, d = 0, dv = 0;
    bool kt = false;              // K is [d, sk] per head (row stride k_row between the d rows)
    // element strides per head-batch dim, then the base offset and the stride between rows (query / key / value /
    // output rows; for kt the stride between K's d rows)
    std::vector<int64_t> q_str, k_str, v_str, o_str, m_str;  // m_str: batch dims, then row and column
    int64_t q_base = 0, k_base = 0, v_base = 0;
    int64_t q_row = 0, k_row = 0, v_row = 0, o_row = 0;

    int64_t count() const { return shape_numel(batch); }
    struct Offsets {
        int64_t q, k, v, o, m;
    };
    // offsets of head-batch entry `b` (row-major over `batch`)
    Offsets offsets(int64_t b) const {
        Offsets r{q_base, k_base, v_base, 0, 0};
        for (int i = static_cast<int>(batch.size()) - 1; i >= 0; --i) {
            const int64_t idx = b % batch[i];
            b /= batch[i];
            r.q += idx * q_str[i];
            r.k += idx * k_str[i];
            r.v += idx * v_str[i];
            r.o += idx * o_str[i];
            if (!m_str.empty()) r.m += idx * m_str[i];
        }
        return r;
    }
};

inline std::vector<int64_t> scaled(std::vector<int64_t> v, int64_t f) {
    for (int64_t& x : v) x *= f;
    return v;
}

/// The geometry of one run; `mask` may be null. Throws kInvalidArgument on shapes that do not fit the attributes.
inline AttentionGeometry attention_geometry(const AttributeMap& attrs, const Shape& q, const Shape& k,
                                            const Shape& v, const Shape* mask, const std::string& where) {
    AttentionGeometry g;
    const int r = static_cast<int>(q.size());
    const int64_t heads = attrs.get_int("num_heads", 0);
    const bool seq_first = attrs.get_int("seq_first", 0) != 0;
    KILN_CHECK(!seq_first || (heads > 0 && r >= 3), kInvalidArgument, where,
               ": seq_first needs num_heads > 0 and Q/K/V of rank >= 3");
    g.kt = attrs.get_int("k_transposed", 0) != 0;
    const int sd = seq_first ? 0 : r - 2;  // the sequence dim
    g.sq = q[sd];
    g.sk = g.kt ? k[r - 1] : k[sd];
    // the batch dims: all but the sequence dim and the last one
    auto batch_of = [&](const Shape& x) {
        Shape b;
        for (int i = 0; i < r - 1; ++i)
            if (i != sd) b.push_back(x[i]);
        return b;
    };
    Shape qb = batch_of(q), kb = batch_of(k), vb = batch_of(v);
    Shape out_batch = ops::broadcast_shapes(ops::broadcast_shapes(qb, kb), vb);
    std::vector<int64_t> qs = ops::broadcast_strides(qb, out_batch), ks = ops::broadcast_strides(kb, out_batch),
                         vs = ops::broadcast_strides(vb, out_batch);
    std::vector<int64_t> os = ops::strides_of(out_batch);
    g.batch = out_batch;
    if (heads <= 0) {
        g.d = q[r - 1];
        g.dv = v[r - 1];
        g.q_str = scaled(qs, g.sq * g.d);
        g.k_str = scaled(ks, g.sk * g.d);
        g.v_str = scaled(vs, g.sk * g.dv);
        g.o_str = scaled(os, g.sq * g.dv);
        g.q_row = g.d;
        g.k_row = g.kt ? g.sk : g.d;
        g.v_row = g.dv;
        g.o_row = g.dv;
    } else {
        KILN_CHECK(!g.kt, kInvalidArgument, where, ": num_heads needs k_transposed=0");
        g.d = attrs.get_int("head_dim", 0);
        g.dv = attrs.get_int("v_head_dim", g.d);
        std::vector<int64_t> off = attrs.get_ints("qkv_offsets", {0, 0, 0});
        KILN_CHECK(g.d > 0 && g.dv > 0 && off.size() == 3, kInvalidArgument, where,
                   ": num_heads needs head_dim > 0 and three qkv_offsets");
        const int64_t wq = q[r - 1], wk = k[r - 1], wv = v[r - 1];
        KILN_CHECK(off[0] + heads * g.d <= wq && off[1] + heads * g.d <= wk && off[2] + heads * g.dv <= wv &&
                       std::min({off[0], off[1], off[2]}) >= 0,
                   kInvalidArgument, where, ": ", heads, " heads of ", g.d, "/", g.dv, " columns at offsets ",
                   off[0], ",", off[1], ",", off[2], " do not fit Q/K/V rows of ", wq, "/", wk, "/", wv);
        g.batch.push_back(heads);
        // batch-first: a batch entry is sq (sk) rows; seq-first: one row of w columns
        const int64_t q_rows = seq_first ? 1 : g.sq, k_rows = seq_first ? 1 : g.sk;
        g.q_str = scaled(qs, q_rows * wq);
        g.k_str = scaled(ks, k_rows * wk);
        g.v_str = scaled(vs, k_rows * wv);
        g.o_str = scaled(os, q_rows * heads * g.dv);
        g.q_str.push_back(g.d);
        g.k_str.push_back(g.d);
        g.v_str.push_back(g.dv);
        g.o_str.push_back(g.dv);
        g.q_base = off[0];
        g.k_base = off[1];
        g.v_base = off[2];
        g.q_row = wq;
        g.k_row = wk;
        g.v_row = wv;
        g.o_row = heads * g.dv;
        if (seq_first) {  // consecutive positions are a whole [batch..., w] block apart
            g.q_row *= shape_numel(qb);
            g.k_row *= shape_numel(kb);
            g.v_row *= shape_numel(vb);
            g.o_row *= shape_numel(out_batch);
        }
    }
    if (mask) {
        Shape scores = g.batch;
        scores.push_back(g.sq);
        scores.push_back(g.sk);
        g.m_str = ops::broadcast_strides(*mask, scores);
    }
    return g;
}

}  // namespace kiln::backends

// Inference for the optimiser's fused ops (FusedConv reuses infer_conv).
#include "src/ops/shape_utils.h"

namespace kiln::ops {

void infer_fused_matmul(InferContext& ctx) {
    if (ctx.attrs().get_int("trans_b", 0) != 0) {  // B given as [N, K]: infer as A @ B^T
        ctx.check(ctx.input(1).rank() == 2, "trans_b=1 needs a 2-D B, got ", shape_str(ctx.input(1).dims));
        std::vector<TensorInfo> ins = {ctx.input(0), ctx.input(1)};
        std::swap(ins[1].dims[0], ins[1].dims[1]);
        ins[1].value = nullptr;
        InferContext inner(ctx.node_name(), ctx.op_type(), ctx.attrs(), ins, 1);
        infer_matmul(inner);
        ctx.outputs()[0] = inner.outputs()[0];
    } else {
        infer_matmul(ctx);
    }
    if (ctx.has_input(2)) {
        const TensorInfo& bias = ctx.input(2);
        ctx.check(bias.dtype == ctx.input(0).dtype, "bias dtype ", dtype_name(bias.dtype), " differs from A's");
        // the bias must broadcast into the output without changing its shape
        SymShape out = ctx.outputs()[0].dims;
        SymShape b = broadcast_shapes(ctx, out, bias.dims);
        ctx.check(b.size() == out.size(), "bias of shape ", shape_str(bias.dims), " does not fit output ",
                  shape_str(out));
    }
}

void infer_fused_matmul_norm(InferContext& ctx) {
    infer_fused_matmul(ctx);
    const TensorInfo y = ctx.outputs()[0];
    ctx.check(y.rank() >= 1, "the product must have rank >= 1");
    const Dim& n = y.dims.back();
    for (size_t i : {size_t(4), size_t(5)}) {
        const TensorInfo& t = ctx.input(i);
        ctx.check(t.dtype == y.dtype && t.rank() == 1 && (!n.is_static() || !t.dims[0].is_static() || t.dims[0] == n),
                  i == 4 ? "scale" : "norm_bias", " of shape ", shape_str(t.dims), " does not fit the last axis of ",
                  shape_str(y.dims));
    }
    for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.outputs()[i] = y;
}

void infer_embed_layer_norm(InferContext& ctx) {
    const TensorInfo& ids = ctx.input(0);
    const TensorInfo& table = ctx.input(1);
    ctx.check(ids.dtype == DataType::kInt64 || ids.dtype == DataType::kInt32, "ids must be int64 or int32, got ",
              dtype_name(ids.dtype));
    ctx.check(table.rank() == 2 && table.dtype == DataType::kFloat32, "the table must be a 2-D float32 [V, H], got ",
              dtype_name(table.dtype), shape_str(table.dims));
    SymShape out = ids.dims;
    out.push_back(table.dims[1]);
    const Dim& h = table.dims[1];
    for (size_t i : {size_t(2), size_t(3)}) {
        const TensorInfo& t = ctx.input(i);
        ctx.check(t.dtype == DataType::kFloat32 && t.rank() == 1 &&
                      (!h.is_static() || !t.dims[0].is_static() || t.dims[0] == h),
                  i == 2 ? "scale" : "norm_bias", " of shape ", shape_str(t.dims), " does not fit H = ",
                  shape_str(SymShape{h}));
    }
    if (ctx.has_input(4)) {  // the addend must broadcast into S without changing its shape
        const TensorInfo& a = ctx.input(4);
        ctx.check(a.dtype == DataType::kFloat32, "addend must be float32, got ", dtype_name(a.dtype));
        SymShape b = broadcast_shapes(ctx, out, a.dims);
        ctx.check(b.size() == out.size(), "addend of shape ", shape_str(a.dims), " does not fit ", shape_str(out));
    }
    for (size_t i = 0; i < ctx.num_outputs(); ++i) ctx.set_output(i, DataType::kFloat32, out);
}

void infer_fused_expand_depthwise(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    const TensorInfo& w1 = ctx.input(1);
    ctx.check(x.rank() == 4 && w1.rank() == 4, "X and W1 must be 4-D, got ", shape_str(x.dims), ", ",
              shape_str(w1.dims));
    ctx.check(w1.dims[2] == Dim(1) && w1.dims[3] == Dim(1), "W1 must be 1x1, got ", shape_str(w1.dims));
    ctx.check(!x.dims[1].is_static() || !w1.dims[1].is_static() || x.dims[1] == w1.dims[1], "X of shape ",
              shape_str(x.dims), " does not fit W1 of shape ", shape_str(w1.dims));
    TensorInfo mid = x;  // the expand's output: [N, C, H, W]
    mid.value = nullptr;
    mid.dims[1] = w1.dims[0];
    const std::vector<TensorInfo> ins = {mid, ctx.input(3), ctx.input(4)};  // InferContext keeps a reference
    InferContext inner(ctx.node_name(), ctx.op_type(), ctx.attrs(), ins, 1);
    infer_conv(inner);
    ctx.outputs()[0] = inner.outputs()[0];
    if (ctx.has_input(9) || ctx.has_input(10) || ctx.has_input(11)) {
        // projection: Wp [Cout, C, 1, 1], Bp [Cout], Z (optional) of Y's shape; Y gets Cout channels
        ctx.check(ctx.has_input(9) && ctx.has_input(10), "the projection needs Wp and Bp");
        ctx.check(!ctx.has_input(5), "a projection and a squeeze-excite block do not go together");
        const SymShape& wp = ctx.input(9).dims;
        ctx.check(wp.size() == 4 && wp[1] == w1.dims[0] && wp[2] == Dim(1) && wp[3] == Dim(1),
                  "projection weights ", shape_str(wp), " do not fit W1 of shape ", shape_str(w1.dims));
        ctx.outputs()[0].dims[1] = wp[0];
        if (ctx.has_input(11)) {
            const SymShape& z = ctx.input(11).dims;
            const SymShape& y = ctx.outputs()[0].dims;
            bool fits = z.size() == y.size();
            for (size_t i = 0; fits && i < z.size(); ++i)
                fits = !z[i].is_static() || !y[i].is_static() || z[i] == y[i];
            ctx.check(fits, "the residual of shape ", shape_str(z), " does not fit the output ", shape_str(y));
        }
        return;
    }
    if (!ctx.has_input(5) && !ctx.has_input(6) && !ctx.has_input(7) && !ctx.has_input(8)) return;
    // squeeze-excite: Wr [Cr, C, 1, 1], Br [Cr], We [C, Cr, 1, 1], Be [C]; Y keeps D's shape
    ctx.check(ctx.has_input(5) && ctx.has_input(6) && ctx.has_input(7) && ctx.has_input(8),
              "squeeze-excite needs all of Wr, Br, We, Be");
    const SymShape& wr = ctx.input(5).dims;
    const SymShape& we = ctx.input(7).dims;
    ctx.check(wr.size() == 4 && we.size() == 4 && wr[0] == we[1] && wr[1] == w1.dims[0] && we[0] == w1.dims[0],
              "squeeze-excite weights ", shape_str(wr), ", ", shape_str(we), " do not fit W1 of shape ",
              shape_str(w1.dims));
}

namespace {

// Attention with `num_heads` (head-packed rows, see op_list.def).
void infer_attention_packed(InferContext& ctx) {
    const TensorInfo& q = ctx.input(0);
    const TensorInfo& k = ctx.input(1);
    const TensorInfo& v = ctx.input(2);
    const int r = q.rank();
    const int64_t h = ctx.attrs().get_int("num_heads", 0);
    const int64_t d = ctx.attrs().get_int("head_dim", 0);
    const int64_t dv = ctx.attrs().get_int("v_head_dim", d);
    const std::vector<int64_t> off = ctx.attrs().get_ints("qkv_offsets", {0, 0, 0});
    ctx.check(d > 0 && dv > 0 && off.size() == 3, "num_heads needs head_dim > 0 and three qkv_offsets");
    ctx.check(ctx.attrs().get_int("k_transposed", 0) == 0, "num_heads needs k_transposed=0");
    const TensorInfo* qkv[3] = {&q, &k, &v};
    for (int i = 0; i < 3; ++i) {
        const Dim& w = qkv[i]->dims[r - 1];
        const int64_t need = off[i] + h * (i == 2 ? dv : d);
        ctx.check(off[i] >= 0 && (!w.is_static() || need <= w.value), "input ", i, " of shape ",
                  shape_str(qkv[i]->dims), " has no room for ", h, " heads from column ", off[i]);
    }
    // seq_first: [seq, batch..., width] rows instead of [batch..., seq, width]
    const bool seq_first = ctx.attrs().get_int("seq_first", 0) != 0;
    ctx.check(!seq_first || r >= 3, "seq_first needs Q/K/V of rank >= 3");
    const int sd = seq_first ? 0 : r - 2;
    auto batch_of = [&](const SymShape& x) {
        SymShape b;
        for (int i = 0; i < r - 1; ++i)
            if (i != sd) b.push_back(x[i]);
        return b;
    };
    ctx.check(k.dims[sd] == v.dims[sd] || !k.dims[sd].is_static() || !v.dims[sd].is_static(),
              "K and V have different lengths: ", shape_str(k.dims), ", ", shape_str(v.dims));
    SymShape out = broadcast_shapes(ctx, batch_of(q.dims), batch_of(k.dims));
    if (ctx.has_input(3)) {  // the mask must broadcast into the scores [..., h, seq_q, seq_k]
        SymShape scores = out;
        scores.push_back(Dim(h));
        scores.push_back(q.dims[sd]);
        scores.push_back(k.dims[sd]);
        SymShape b = broadcast_shapes(ctx, scores, ctx.input(3).dims);
        ctx.check(b.size() == scores.size(), "mask of shape ", shape_str(ctx.input(3).dims),
                  " does not broadcast to the scores ", shape_str(scores));
    }
    if (seq_first)
        out.insert(out.begin(), q.dims[sd]);
    else
        out.push_back(q.dims[sd]);
    out.push_back(Dim(h * dv));
    ctx.set_output(0, q.dtype, out);
}

}  // namespace

void infer_attention(InferContext& ctx) {
    const TensorInfo& q = ctx.input(0);
    const TensorInfo& k = ctx.input(1);
    const TensorInfo& v = ctx.input(2);
    ctx.check(q.rank() >= 2 && k.rank() == q.rank() && v.rank() == q.rank(), "Q, K and V must have the same rank ",
              ">= 2, got ", shape_str(q.dims), ", ", shape_str(k.dims), ", ", shape_str(v.dims));
    ctx.check(q.dtype == k.dtype && q.dtype == v.dtype, "Q, K and V must have the same dtype");
    int r = q.rank();
    bool kt = ctx.attrs().get_int("k_transposed", 0) != 0;
    if (ctx.attrs().get_int("num_heads", 0) > 0) {
        infer_attention_packed(ctx);
        return;
    }
    ctx.check(ctx.attrs().get_int("seq_first", 0) == 0, "seq_first needs num_heads > 0");
    const Dim& qd = q.dims[r - 1];
    const Dim& kd = kt ? k.dims[r - 2] : k.dims[r - 1];
    ctx.check(!qd.is_static() || !kd.is_static() || qd.value == kd.value, "Q head size ", qd.str(),
              " differs from K's ", kd.str());
    SymShape batch_q(q.dims.begin(), q.dims.end() - 2);
    SymShape batch_k(k.dims.begin(), k.dims.end() - 2);
    SymShape out = broadcast_shapes(ctx, batch_q, batch_k);
    out.push_back(q.dims[r - 2]);
    if (ctx.has_input(3)) {  // the mask must broadcast into the scores [..., seq_q, seq_k]
        SymShape scores = out;
        scores.push_back(kt ? k.dims[r - 1] : k.dims[r - 2]);
        SymShape b = broadcast_shapes(ctx, scores, ctx.input(3).dims);
        ctx.check(b.size() == scores.size(), "mask of shape ", shape_str(ctx.input(3).dims),
                  " does not broadcast to the scores ", shape_str(scores));
    }
    out.push_back(v.dims[r - 1]);
    ctx.set_output(0, q.dtype, out);
}

// FusedElementwise: float32, bool, int32 or int64 inputs, output = their numpy broadcast, of dtype `out_dtype` (an
// ONNX TensorProto number: 1 float32, the default, or 9 bool). The program itself is checked when a backend compiles
// it.
void infer_fused_elementwise(InferContext& ctx) {
    const std::vector<std::string> program = ctx.attrs().get_strings("program");
    ctx.check(!program.empty(), "attribute 'program' is missing or empty");
    SymShape out = ctx.input(0).dims;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
        const DataType t = ctx.input(i).dtype;
        ctx.check(t == DataType::kFloat32 || t == DataType::kBool || t == DataType::kInt32 || t == DataType::kInt64,
                  "input ", i, " has dtype ", dtype_name(t), "; FusedElementwise takes float32, bool, int32 or int64");
        if (i > 0) out = broadcast_shapes(ctx, out, ctx.input(i).dims);
    }
    const int64_t out_dtype = ctx.attrs().get_int("out_dtype", 1);
    ctx.check(out_dtype == 1 || out_dtype == 9, "attribute 'out_dtype' = ", out_dtype,
              " is not 1 (float32) or 9 (bool)");
    ctx.set_output(0, out_dtype == 9 ? DataType::kBool : DataType::kFloat32, out);
}

}  // namespace kiln::ops

"""The CUDA backend's attention and its reduced-precision activations against onnxruntime: multi-head attention
written out in ONNX ops as PyTorch exports it (head split Reshape/Transpose, Q K^T, scale, mask, Softmax, P V, head
merge; also torch nn.MultiheadAttention's seq-first form), which -O3 folds into one head-packed Attention node; fp32
within 1e-4 of the output scale, fp16/bf16 within 2e-2 (flash-style tensor-core kernel for head dims that are
multiples of 16 up to 128, other kernels otherwise). And a transformer block in fp16 whose activations stay fp16
between kernels; and the embedding lookup + LayerNorm fusion. Skipped where there is no GPU."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import helper

from op_harness import run_kiln
from test_cuda import pytestmark  # noqa: F401  (the same skip: no GPU or no CUDA backend)

TOL = {"fp32": 1e-4, "fp16": 2e-2, "bf16": 3e-2}


def rnd(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def mha_model(b, s, h, d, masked, projected=False):
    """x_q, x_k, x_v [b, s, h*d] -> multi-head attention -> [b, s, h*d], as torch.onnx.export writes it.
    `projected`: one input x and x_i = x W_i + b_i (a self-attention layer's Q/K/V projections)."""
    w = h * d
    f = onnx.TensorProto.FLOAT
    nodes, inits = [], [helper.make_tensor("split4", onnx.TensorProto.INT64, [4], [b, s, h, d]),
                        helper.make_tensor("merge3", onnx.TensorProto.INT64, [3], [b, s, w]),
                        helper.make_tensor("scale", f, [], [1.0 / np.sqrt(d)])]
    if projected:
        for i, n in enumerate("qkv"):
            wt, bias = rnd(w, w, seed=7 + i, scale=w ** -0.5), rnd(w, seed=17 + i)
            inits += [helper.make_tensor(f"w{n}", f, wt.shape, wt.ravel()), helper.make_tensor(f"b{n}", f, [w], bias)]
            nodes += [helper.make_node("MatMul", ["x", f"w{n}"], [f"p{n}"]),
                      helper.make_node("Add", [f"p{n}", f"b{n}"], [f"x{n}"])]
    for name, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [helper.make_node("Reshape", [f"x{name}", "split4"], [f"{name}4"]),
                  helper.make_node("Transpose", [f"{name}4"], [f"{name}h"], perm=perm)]
    nodes += [helper.make_node("MatMul", ["qh", "kh"], ["qk"]), helper.make_node("Mul", ["qk", "scale"], ["qks"])]
    if masked:
        nodes.append(helper.make_node("Add", ["qks", "mask"], ["qkm"]))
    nodes += [helper.make_node("Softmax", ["qkm" if masked else "qks"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ot", "merge3"], ["out"])]
    if projected:
        inputs, feeds = [helper.make_tensor_value_info("x", f, [b, s, w])], {"x": rnd(b, s, w)}
    else:
        inputs = [helper.make_tensor_value_info(f"x{n}", f, [b, s, w]) for n in "qkv"]
        feeds = {f"x{n}": rnd(b, s, w, seed=i) for i, n in enumerate("qkv")}
    if masked:  # HF-style additive padding mask: the last keys of the last batch entry are masked out
        inputs.append(helper.make_tensor_value_info("mask", f, [b, 1, 1, s]))
        m = np.zeros((b, 1, 1, s), np.float32)
        m[-1, ..., s - s // 3:] = np.finfo(np.float32).min
        feeds["mask"] = m
    graph = helper.make_graph(nodes, "mha", inputs, [helper.make_tensor_value_info("out", f, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, feeds


def compare(tmp_path, model, feeds, precision, extra=()):
    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    flags = ([] if precision == "fp32" else [f"--{precision}"]) + list(extra)
    args = ["compare", path, "--backend", "cuda", "--tolerance", str(TOL[precision])] + flags
    for n, a in feeds.items():
        np.save(tmp_path / f"{n}.npy", a)
        args += ["--input", f"{n}={tmp_path / f'{n}.npy'}"]
    proc = run_kiln(args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path, flags


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("b,s,h,d,masked", [(1, 128, 12, 64, False), (2, 37, 3, 64, True), (2, 200, 2, 128, True),
                                             (3, 70, 4, 32, True), (2, 33, 2, 40, False), (1, 5, 1, 16, True)])
def test_head_packed_attention(tmp_path, precision, b, s, h, d, masked):
    model, feeds = mha_model(b, s, h, d, masked)
    path, flags = compare(tmp_path, model, feeds, precision)
    nodes = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--json"] + flags).stdout)["nodes"]
    assert [n["op"] for n in nodes] == ["Attention"], nodes  # the head split/merge folded in
    assert int(nodes[0]["attributes"].get("num_heads", 0)) == h, nodes
    if precision != "fp32" and d % 16 == 0:
        assert "mma_flash" in nodes[0]["kernel"], nodes


def seq_first_mha_model(b, s, h, d, masked):
    """x [b, s, h*d] -> torch nn.MultiheadAttention(batch_first=True, need_weights=False) as torch.onnx.export writes
    it (torchvision's ViT): Transpose to seq-first rows, the packed in-projection split by Unsqueeze / Transpose /
    Squeeze / Gather, per-head Reshape / Transpose / Reshape, Q and K^T scaled by sqrt(1/sqrt(d)) each, the merge
    Transpose(2, 0, 1, 3) and Reshape to [s*b, E], the out-projection, and back to batch-first."""
    e = h * d
    f, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    w_in, b_in = rnd(e, 3 * e, seed=3, scale=e ** -0.5), rnd(3 * e, seed=4, scale=0.2)
    w_out, b_out = rnd(e, e, seed=5, scale=e ** -0.5), rnd(e, seed=6, scale=0.2)
    c = float(np.sqrt(1.0 / np.sqrt(d)))
    inits = [helper.make_tensor("w_in", f, w_in.shape, w_in.ravel()), helper.make_tensor("b_in", f, [3 * e], b_in),
             helper.make_tensor("w_out", f, w_out.shape, w_out.ravel()), helper.make_tensor("b_out", f, [e], b_out),
             helper.make_tensor("s4", i64, [4], [s, b, 3, e]), helper.make_tensor("ax0", i64, [1], [0]),
             helper.make_tensor("ax3", i64, [1], [3]), helper.make_tensor("c", f, [1], [c]),
             helper.make_tensor("s3", i64, [3], [s, b * h, d]), helper.make_tensor("h4", i64, [4], [b, h, s, d]),
             helper.make_tensor("m2", i64, [2], [s * b, e]), helper.make_tensor("o3", i64, [3], [s, b, e])]
    inits += [helper.make_tensor(f"i{i}", i64, [], [i]) for i in range(3)]
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("MatMul", ["xt", "w_in"], ["pm"]), helper.make_node("Add", ["b_in", "pm"], ["proj"]),
             helper.make_node("Reshape", ["proj", "s4"], ["p4"]), helper.make_node("Unsqueeze", ["p4", "ax0"], ["p5"]),
             helper.make_node("Transpose", ["p5"], ["p5t"], perm=[3, 1, 2, 0, 4]),
             helper.make_node("Squeeze", ["p5t", "ax3"], ["chunks"])]
    for i, n in enumerate("qkv"):
        nodes += [helper.make_node("Gather", ["chunks", f"i{i}"], [f"x{n}"], axis=0),
                  helper.make_node("Reshape", [f"x{n}", "s3"], [f"{n}3"]),
                  helper.make_node("Transpose", [f"{n}3"], [f"{n}t"], perm=[1, 0, 2]),
                  helper.make_node("Reshape", [f"{n}t", "h4"], [f"{n}h"])]
    nodes += [helper.make_node("Mul", ["qh", "c"], ["qs"]),
              helper.make_node("Transpose", ["kh"], ["k_t"], perm=[0, 1, 3, 2]),
              helper.make_node("Mul", ["k_t", "c"], ["ks"]), helper.make_node("MatMul", ["qs", "ks"], ["qk"])]
    inputs, feeds = [helper.make_tensor_value_info("x", f, [b, s, e])], {"x": rnd(b, s, e, seed=8)}
    if masked:
        nodes.append(helper.make_node("Add", ["qk", "mask"], ["qkm"]))
        inputs.append(helper.make_tensor_value_info("mask", f, [b, 1, 1, s]))
        m = np.zeros((b, 1, 1, s), np.float32)
        m[-1, ..., s - s // 3:] = -10000.0
        feeds["mask"] = m
    nodes += [helper.make_node("Softmax", ["qkm" if masked else "qk"], ["p"], axis=-1),
              helper.make_node("MatMul", ["p", "vh"], ["o"]),
              helper.make_node("Transpose", ["o"], ["ot"], perm=[2, 0, 1, 3]),
              helper.make_node("Reshape", ["ot", "m2"], ["o2"]),
              helper.make_node("MatMul", ["o2", "w_out"], ["om"]), helper.make_node("Add", ["om", "b_out"], ["ob"]),
              helper.make_node("Reshape", ["ob", "o3"], ["ob3"]),
              helper.make_node("Transpose", ["ob3"], ["out"], perm=[1, 0, 2])]
    graph = helper.make_graph(nodes, "mha_seq_first", inputs, [helper.make_tensor_value_info("out", f, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, feeds


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("b,s,h,d,masked", [(1, 197, 12, 64, False), (2, 50, 2, 16, True), (3, 37, 4, 32, False),
                                             (2, 33, 2, 40, True)])
@pytest.mark.parametrize("seq_first", [False, True])
def test_seq_first_attention(tmp_path, precision, b, s, h, d, masked, seq_first):
    # torch nn.MultiheadAttention (torchvision's ViT): one packed Attention reading the in-projection's rows at
    # offsets 0, E, 2E (the AttentionDims strides of attention_geometry.h). transpose_optimization moves the
    # batch-first <-> seq-first Transposes below the projections into the Attention, which then reads [b, s, 3E]
    # rows (seq_first=0); without that pass it reads the seq-first [s, b, 3E] rows (seq_first=1) between the two
    # Transposes
    model, feeds = seq_first_mha_model(b, s, h, d, masked)
    extra = ["--disable-pass", "transpose_optimization"] if seq_first else []
    path, flags = compare(tmp_path, model, feeds, precision, extra)
    nodes = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--json"] + flags).stdout)["nodes"]
    ops = [n["op"] for n in nodes]
    att = [n for n in nodes if n["op"] == "Attention"]
    assert len(att) == 1 and int(att[0]["attributes"].get("seq_first", 0)) == int(seq_first), ops
    assert not {"Gather", "Squeeze", "Unsqueeze", "Mul", "MatMul"} & set(ops), ops
    assert ops.count("Transpose") == (2 if seq_first else 0), ops
    if precision != "fp32" and d % 16 == 0:
        assert "mma_flash" in att[0]["kernel"], nodes


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("b,h,s,d,masked", [(2, 3, 197, 64, False), (1, 2, 5, 16, True), (3, 1, 40, 32, True)])
@pytest.mark.parametrize("kt_mma", ["1", "0"])
def test_attention_with_k_given_transposed(tmp_path, monkeypatch, precision, b, h, s, d, masked, kt_mma):
    # torchvision's ViT export: K arrives as [b, h, d, s] (transposed and scaled before the MatMul), so the Attention
    # has k_transposed=1; the tensor-core kernel reads it after a tiled copy into key rows (KILN_CUDA_ATTN_KT_MMA=0:
    # the cuBLASLt Q K^T / softmax / P V path instead)
    monkeypatch.setenv("KILN_CUDA_ATTN_KT_MMA", kt_mma)
    f = onnx.TensorProto.FLOAT
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["qk"]),
             helper.make_node("Add", ["qk", "mask"], ["qkm"]) if masked else None,
             helper.make_node("Softmax", ["qkm" if masked else "qk"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["out"])]
    feeds = {"q": rnd(b, h, s, d, scale=0.3), "kt": rnd(b, h, d, s, seed=1, scale=0.3), "v": rnd(b, h, s, d, seed=2)}
    inputs = [helper.make_tensor_value_info("q", f, [b, h, s, d]), helper.make_tensor_value_info("kt", f, [b, h, d, s]),
              helper.make_tensor_value_info("v", f, [b, h, s, d])]
    if masked:
        m = np.zeros((b, 1, 1, s), np.float32)
        m[-1, ..., s - s // 3:] = -10000.0
        feeds["mask"] = m
        inputs.append(helper.make_tensor_value_info("mask", f, [b, 1, 1, s]))
    graph = helper.make_graph([n for n in nodes if n is not None], "attn_kt", inputs,
                              [helper.make_tensor_value_info("out", f, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path, flags = compare(tmp_path, model, feeds, precision)
    nodes = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--json"] + flags).stdout)["nodes"]
    assert [n["op"] for n in nodes] == ["Attention"], nodes
    assert int(nodes[0]["attributes"].get("k_transposed", 0)) == 1, nodes
    assert ("mma_flash" in nodes[0]["kernel"]) == (kt_mma == "1"), nodes


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_qkv_projections_merge_into_one_gemm(tmp_path, precision):
    # fuse_qkv_projection: x W_q, x W_k, x W_v as one GEMM of three times the width, the Attention reading its
    # three column ranges
    model, feeds = mha_model(2, 45, 4, 32, True, projected=True)
    path, flags = compare(tmp_path, model, feeds, precision)
    nodes = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--json"] + flags).stdout)["nodes"]
    assert [n["op"] for n in nodes] == ["FusedMatMul", "Attention"], nodes
    assert nodes[0]["output_shapes"][0][-1] == 3 * 4 * 32, nodes
    assert nodes[1]["attributes"]["qkv_offsets"] == "[0,128,256]", nodes


def block_model(t, w, ff):
    """A post-LayerNorm transformer MLP block: LN(x + GELU(x W1 + b1) W2 + b2), twice, as ONNX ops."""
    f = onnx.TensorProto.FLOAT
    inits = [helper.make_tensor(n, f, [], [v]) for n, v in (("sqrt2", np.sqrt(2.0)), ("one", 1.0), ("half", 0.5))]
    nodes = []
    x = "x"
    for i in range(2):
        for name, arr in ((f"w1_{i}", rnd(w, ff, seed=10 + i, scale=w ** -0.5)), (f"b1_{i}", rnd(ff, seed=20 + i)),
                          (f"w2_{i}", rnd(ff, w, seed=30 + i, scale=ff ** -0.5)), (f"b2_{i}", rnd(w, seed=40 + i)),
                          (f"g_{i}", rnd(w, seed=50 + i)), (f"be_{i}", rnd(w, seed=60 + i))):
            inits.append(helper.make_tensor(name, f, arr.shape, arr.ravel()))
        nodes += [helper.make_node("MatMul", [x, f"w1_{i}"], [f"h{i}"]),
                  helper.make_node("Add", [f"h{i}", f"b1_{i}"], [f"hb{i}"]),
                  # erf GELU as PyTorch exports it: 0.5 x (1 + erf(x / sqrt 2))
                  helper.make_node("Div", [f"hb{i}", "sqrt2"], [f"d{i}"]),
                  helper.make_node("Erf", [f"d{i}"], [f"e{i}"]),
                  helper.make_node("Add", [f"e{i}", "one"], [f"e1{i}"]),
                  helper.make_node("Mul", [f"hb{i}", f"e1{i}"], [f"m{i}"]),
                  helper.make_node("Mul", [f"m{i}", "half"], [f"g{i}"]),
                  helper.make_node("MatMul", [f"g{i}", f"w2_{i}"], [f"o{i}"]),
                  helper.make_node("Add", [f"o{i}", f"b2_{i}"], [f"ob{i}"]),
                  helper.make_node("Add", [f"ob{i}", x], [f"r{i}"]),
                  helper.make_node("LayerNormalization", [f"r{i}", f"g_{i}", f"be_{i}"], [f"y{i}"], axis=-1)]
        x = f"y{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", f, [2, t, w])],
                              [helper.make_tensor_value_info(x, f, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {"x": rnd(2, t, w, seed=1)}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_activations_between_kernels(tmp_path, precision):
    # matmul -> GELU -> matmul (+ residual) -> LayerNorm -> matmul ...: the values between these kernels stay fp16/bf16
    model, feeds = block_model(19, 96, 200)
    path, flags = compare(tmp_path, model, feeds, precision)
    log = run_kiln(["build", path, "--backend", "cuda", "-v", "-o", str(tmp_path / "m.plan")] + flags).stderr
    stored = [ln for ln in log.splitlines() if "activations stored in" in ln]
    assert stored, log
    n = int(stored[0].split("activations stored in")[0].split(",")[-1].strip())
    # per block: the GELU matmul's output and the block's output (read by the next block's matmuls); the residual
    # sum before each LayerNorm is gone in FusedMatMulNorm (38 rows: fused by default), a fifth with it turned off
    assert n >= (4 if os.environ.get("KILN_CUDA_MATMUL_NORM") == "0" else 3), stored[0]


def residual_norm_model(t, k, w, pre_norm):
    """s = x W + b + r, y = LayerNorm(s) (the residual projection of a transformer layer); `pre_norm`: s is an output
    too (pre-LN models carry it as the next residual)."""
    f = onnx.TensorProto.FLOAT
    inits = [helper.make_tensor(n, f, a.shape, a.ravel()) for n, a in
             (("w", rnd(k, w, seed=3, scale=k ** -0.5)), ("b", rnd(w, seed=4)), ("g", rnd(w, seed=5)),
              ("be", rnd(w, seed=6)))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p"]), helper.make_node("Add", ["p", "b"], ["pb"]),
             helper.make_node("Add", ["pb", "r"], ["s"]),
             helper.make_node("LayerNormalization", ["s", "g", "be"], ["y"], axis=-1, epsilon=1e-5)]
    outs = [helper.make_tensor_value_info("y", f, None)] + ([helper.make_tensor_value_info("s", f, None)]
                                                             if pre_norm else [])
    graph = helper.make_graph(nodes, "resnorm", [helper.make_tensor_value_info("x", f, [2, t, k]),
                                                 helper.make_tensor_value_info("r", f, [2, t, w])], outs,
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, {"x": rnd(2, t, k, seed=1), "r": rnd(2, t, w, seed=2)}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("t,k,w,pre_norm", [(64, 3072, 768, False), (64, 768, 768, True), (7, 200, 96, False),
                                            (5, 96, 1280, True), (3, 64, 1280, False), (9, 64, 150, True)])
def test_residual_matmul_and_layer_norm_fuse(tmp_path, monkeypatch, precision, t, k, w, pre_norm):
    # fuse_matmul_norm: split-K partial products (tuned split count: 3072 and 768 offer several, 200 and 96 only one)
    # and one kernel for their sum, the bias, the residual and the LayerNorm; 1280 columns take the wide-row path
    # (S into an output, or into scratch when only the normalized rows are wanted).
    # (on by default up to 1024 rows; =1 makes sure, whatever the environment says)
    monkeypatch.setenv("KILN_CUDA_MATMUL_NORM", "1")
    model, feeds = residual_norm_model(t, k, w, pre_norm)
    path, flags = compare(tmp_path, model, feeds, precision)
    nodes = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--json"] + flags).stdout)["nodes"]
    assert [n["op"] for n in nodes] == ["FusedMatMulNorm"], nodes
    assert len(nodes[0]["output_shapes"]) == (2 if pre_norm else 1), nodes
    assert "gemm_norm" in nodes[0]["kernel"], nodes


def embedding_model(b, s, h, vocab, ids_type, pre_norm):
    """y = LayerNorm(table[ids] + pos + type) (BERT's embedding layer after constant folding); `pre_norm`: the sum is
    an output too (GPT-2 carries it as the first residual)."""
    f = onnx.TensorProto.FLOAT
    inits = [helper.make_tensor(n, f, a.shape, a.ravel()) for n, a in
             (("table", rnd(vocab, h, seed=1)), ("pos", rnd(1, s, h, seed=2, scale=0.1)), ("type", rnd(h, seed=3)),
              ("g", rnd(h, seed=4)), ("be", rnd(h, seed=5)))]
    nodes = [helper.make_node("Gather", ["table", "ids"], ["e"], axis=0),
             helper.make_node("Add", ["e", "pos"], ["ep"]), helper.make_node("Add", ["type", "ep"], ["sum"]),
             helper.make_node("LayerNormalization", ["sum", "g", "be"], ["y"], axis=-1, epsilon=1e-12)]
    outs = [helper.make_tensor_value_info("y", f, None)] + ([helper.make_tensor_value_info("sum", f, None)]
                                                             if pre_norm else [])
    ids_proto = onnx.TensorProto.INT64 if ids_type == np.int64 else onnx.TensorProto.INT32
    graph = helper.make_graph(nodes, "embed", [helper.make_tensor_value_info("ids", ids_proto, [b, s])], outs,
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    ids = np.random.default_rng(6).integers(-vocab, vocab, size=(b, s)).astype(ids_type)  # negatives count from the end
    return model, {"ids": ids}


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("b,s,h,vocab,ids_type,pre_norm", [(1, 128, 768, 1000, np.int64, False),
                                                           (2, 37, 768, 50, np.int32, True),
                                                           (3, 9, 42, 7, np.int64, True),
                                                           (2, 5, 1102, 30, np.int64, False)])
def test_embedding_and_layer_norm_fuse(tmp_path, precision, b, s, h, vocab, ids_type, pre_norm):
    # fuse_embed_layer_norm: the lookup, the constant adds (summed at build time) and the LayerNorm in one kernel;
    # columns a multiple of 4: a block per row, a thread per 4 columns; 42: a warp per row; 1102: a block per row
    model, feeds = embedding_model(b, s, h, vocab, ids_type, pre_norm)
    path, flags = compare(tmp_path, model, feeds, precision)
    nodes = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--json"] + flags).stdout)["nodes"]
    assert [n["op"] for n in nodes] == ["EmbedLayerNorm"], nodes
    assert len(nodes[0]["output_shapes"]) == (2 if pre_norm else 1), nodes
    assert "embed_layer_norm" in nodes[0]["kernel"], nodes

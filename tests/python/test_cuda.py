"""The CUDA backend against onnxruntime: every tiny zoo model in FP32 (within 1e-4 of each output's scale, checked
by `kiln compare`) and FP16 (cosine similarity >= 0.999), plus single-op cases with odd shapes for each kernel
family. Skipped, with the reason, where there is no GPU or this kiln was built without CUDA."""
import os
import shutil
import tempfile

import numpy as np
import onnx
import pytest
from onnx import helper

import make_zoo
from op_harness import make_single_op_model, reference_outputs, run_kiln, run_model_with_kiln

TOL = 1e-4
COSINE_FP16 = 0.999


def _cuda_unavailable_reason():
    if shutil.which("nvidia-smi") is None:
        return "no GPU: nvidia-smi not found"
    with tempfile.TemporaryDirectory() as d:
        x = np.ones((2, 3), np.float32)
        model = make_single_op_model("Relu", [("x", x)])
        path = os.path.join(d, "relu.onnx")
        onnx.save(model, path)
        proc = run_kiln(["run", path, "--backend", "cuda", "--output-dir", d], check=False)
        if proc.returncode != 0:
            return f"`kiln run --backend cuda` is not usable here: {proc.stderr.strip()[:300]}"
    return None


_REASON = _cuda_unavailable_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_cuda")


def tiny_model(zoo_dir, name):
    path = os.path.join(zoo_dir, f"{name}_tiny.onnx")
    if not os.path.exists(path):
        onnx.save(make_zoo.make_model(name, True), path)
    return path


def cosine(a, b):
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return 1.0 if den == 0 else float(a @ b / den)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_zoo_fp32_matches_onnxruntime(zoo_dir, name, batch):
    proc = run_kiln(["compare", tiny_model(zoo_dir, name), "--backend", "cuda", "--batch", str(batch),
                     "--tolerance", str(TOL)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all outputs match" in proc.stdout


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_zoo_fixed_shapes_use_the_arena(zoo_dir, name):
    # -O3 with fixed shapes: a static memory plan, so the context runs out of one device arena
    path = tiny_model(zoo_dir, name)
    feeds = make_zoo.make_inputs(name, True, 2)
    shapes = [f"{k}:{'x'.join(map(str, v.shape))}" for k, v in feeds.items()]
    args = ["compare", path, "--backend", "cuda", "--tolerance", str(TOL)]
    for s in shapes:
        args += ["--shape", s]
    with tempfile.TemporaryDirectory() as d:
        for k, v in feeds.items():
            p = os.path.join(d, f"{k}.npy")
            np.save(p, v)
            args += ["--input", f"{k}={p}"]
        proc = run_kiln(args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_zoo_fp16_cosine(zoo_dir, name, tmp_path):
    path = tiny_model(zoo_dir, name)
    feeds = make_zoo.make_inputs(name, True, 2)
    expected = reference_outputs(onnx.load(path), feeds)
    out_dir = run_model_with_kiln(path, feeds, str(tmp_path), ["--backend", "cuda", "--fp16"])
    model = onnx.load(path)
    for i, o in enumerate(model.graph.output):
        got = np.load(os.path.join(out_dir, f"{o.name}.npy"))
        assert got.shape == expected[i].shape
        c = cosine(got, expected[i])
        assert c >= COSINE_FP16, f"{name} output {o.name}: cosine {c:.6f} < {COSINE_FP16}"


def test_inspect_shows_backend_per_layer(zoo_dir):
    proc = run_kiln(["inspect", tiny_model(zoo_dir, "bert_base"), "--backend", "cuda"])
    assert "cuda" in proc.stdout


# ---------------------------------------------------------------- single ops, odd shapes, FP32
def rnd(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def check_cuda_op(op_type, inputs, attrs=None, constants=(), opset=17, tol=TOL, domain="", on_device=False):
    model = make_single_op_model(op_type, inputs, attrs, 1, constants, opset, domain)
    feeds = {n: np.asarray(a) for n, a in inputs if a is not None and n not in constants}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        args = ["compare", path, "--backend", "cuda", "--tolerance", str(tol)]
        for name, arr in feeds.items():
            p = os.path.join(d, f"{name}.npy")
            np.save(p, arr)
            args += ["--input", f"{name}={p}"]
        proc = run_kiln(args, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        insp = run_kiln(["inspect", path, "--backend", "cuda"])
        assert "cuda" in insp.stdout
        if on_device:  # not placed on the host
            assert "(host)" not in insp.stdout, insp.stdout


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 5), (33, 65, 17), (128, 96, 200)])
def test_matmul_weights(m, k, n):
    check_cuda_op("MatMul", [("a", rnd(2, m, k)), ("b", rnd(k, n))], constants=("b",))


@pytest.mark.parametrize("sa,sb", [((3, 5, 7), (3, 7, 4)), ((2, 1, 5, 6), (1, 3, 6, 2)), ((5, 9), (9,)),
                                   ((4, 2, 3), (3, 5))])
def test_matmul_batched_broadcast(sa, sb):
    check_cuda_op("MatMul", [("a", rnd(*sa)), ("b", rnd(*sb, seed=1))])


def test_gemm_trans_bias():
    check_cuda_op("Gemm", [("a", rnd(6, 5)), ("b", rnd(7, 6)), ("c", rnd(7))],
                  {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0}, constants=("b", "c"))


@pytest.mark.parametrize("shape,k,attrs", [((1, 3, 17, 13), (5, 3, 3, 3), {"pads": [1, 1, 1, 1]}),
                                           ((2, 4, 9, 11), (8, 2, 3, 1), {"group": 2, "strides": [2, 1]}),
                                           ((1, 6, 15, 15), (6, 1, 5, 5), {"group": 6, "pads": [2, 2, 2, 2],
                                                                           "dilations": [1, 1]}),
                                           ((2, 3, 31), (4, 3, 5), {"pads": [2, 2]})])
def test_conv(shape, k, attrs):
    check_cuda_op("Conv", [("x", rnd(*shape)), ("w", rnd(*k, seed=2)), ("b", rnd(k[0], seed=3))], attrs,
                  constants=("w", "b"))


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Neg", "Abs", "Softplus", "HardSwish"])
def test_unary(op):
    check_cuda_op(op, [("x", rnd(3, 7, 11))])


def test_gelu_opset20():
    check_cuda_op("Gelu", [("x", rnd(5, 33))], opset=20)


def test_gelu_tanh_runs_on_the_gpu():
    """GPT-2's tanh GELU: on the GPU (it fell back to the host before, 123 ms per GPT-2 inference)."""
    check_cuda_op("Gelu", [("x", rnd(5, 33))], {"approximate": "tanh"}, opset=20, on_device=True)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("sa,sb", [((3, 7, 11), (3, 7, 11)), ((3, 1, 11), (7, 1)), ((1,), (4, 5, 3))])
def test_binary_broadcast(op, sa, sb):
    b = rnd(*sb, seed=5)
    if op == "Div":
        b = np.abs(b) + 0.5
    check_cuda_op(op, [("a", rnd(*sa)), ("b", b)])


def test_where():
    c = np.random.default_rng(0).random((3, 1, 5)) > 0.5
    check_cuda_op("Where", [("c", c), ("a", rnd(3, 4, 5)), ("b", rnd(4, 1, seed=7))])


def test_clip():
    check_cuda_op("Clip", [("x", rnd(4, 9)), ("lo", np.array(-0.3, np.float32)), ("hi", np.array(0.7, np.float32))],
                  constants=("lo", "hi"))


@pytest.mark.parametrize("shape,axis", [((3, 17), -1), ((2, 5, 1030), -1), ((4, 6, 7), 1)])
def test_softmax(shape, axis):
    check_cuda_op("Softmax", [("x", rnd(*shape) * 3)], {"axis": axis})


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 769), (2, 3, 4, 5)])
def test_layer_norm(shape):
    check_cuda_op("LayerNormalization", [("x", rnd(*shape)), ("s", rnd(shape[-1], seed=1)),
                                         ("b", rnd(shape[-1], seed=2))], {"axis": -1, "epsilon": 1e-5},
                  constants=("s", "b"))


@pytest.mark.parametrize("perm", [[0, 2, 1, 3], [3, 1, 0, 2], [1, 0, 2, 3]])
def test_transpose(perm):
    check_cuda_op("Transpose", [("x", rnd(2, 3, 5, 7))], {"perm": perm})


def test_concat_split_slice():
    check_cuda_op("Concat", [("a", rnd(2, 3, 5)), ("b", rnd(2, 4, 5, seed=1)), ("c", rnd(2, 1, 5, seed=2))],
                  {"axis": 1})
    check_cuda_op("Slice", [("x", rnd(5, 9, 7)), ("s", np.array([1, -2], np.int64)), ("e", np.array([4, 0], np.int64)),
                            ("a", np.array([0, 2], np.int64)), ("st", np.array([2, -2], np.int64))],
                  constants=("s", "e", "a", "st"), opset=13)


def test_gather():
    check_cuda_op("Gather", [("x", rnd(11, 6)), ("i", np.array([[0, 3], [10, -1]], np.int64))], {"axis": 0},
                  constants=("i",))


@pytest.mark.parametrize("op,attrs", [("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
                                      ("AveragePool", {"kernel_shape": [2, 3], "strides": [1, 2]}),
                                      ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                                       "count_include_pad": 1})])
def test_pool(op, attrs):
    check_cuda_op(op, [("x", rnd(2, 3, 13, 11))], attrs)


def test_global_average_pool():
    check_cuda_op("GlobalAveragePool", [("x", rnd(2, 5, 7, 9))])


@pytest.mark.parametrize("s,d,masked", [(37, 16, False), (70, 64, True), (33, 100, True), (20, 160, False),
                                        (129, 32, True)])
def test_attention_via_fusion(tmp_path, s, d, masked):
    # Q K^T (+ mask) softmax V written out in ONNX ops; -O3 fuses it into one Attention node: the tiled online-softmax
    # kernel for head dims <= 128 (key counts not a multiple of its 32-key tile), the row kernel above that
    b, h = 2, 3
    q, k, v = rnd(b, h, s, d), rnd(b, h, s, d, seed=1), rnd(b, h, s, d, seed=2)
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["qk"]),
             helper.make_node("Mul", ["qk", "scale"], ["qks"]),
             helper.make_node("Add", ["qks", "mask"], ["qkm"]) if masked else None,
             helper.make_node("Softmax", ["qkm" if masked else "qks"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["out"])]
    feeds = {"q": q, "k": k, "v": v}
    inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [b, h, s, d]) for n in ("q", "k", "v")]
    if masked:  # additive padding mask: the last keys of batch 1 are masked out
        m = np.zeros((b, 1, 1, s), np.float32)
        m[1, ..., s - s // 3:] = -10000.0
        feeds["mask"] = m
        inputs.append(helper.make_tensor_value_info("mask", onnx.TensorProto.FLOAT, [b, 1, 1, s]))
    scale = helper.make_tensor("scale", onnx.TensorProto.FLOAT, [], [1.0 / np.sqrt(d)])
    graph = helper.make_graph([n for n in nodes if n is not None], "attn", inputs,
                              [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, None)],
                              initializer=[scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = str(tmp_path / "attn.onnx")
    onnx.save(model, path)
    args = ["compare", path, "--backend", "cuda", "--tolerance", str(TOL)]
    for n, a in feeds.items():
        np.save(tmp_path / f"{n}.npy", a)
        args += ["--input", f"{n}={tmp_path / f'{n}.npy'}"]
    proc = run_kiln(args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    layers = run_kiln(["inspect", path, "--backend", "cuda"]).stdout
    assert "Attention" in layers


def test_cast_int64_to_float():
    check_cuda_op("Cast", [("x", np.arange(-7, 29, dtype=np.int64).reshape(4, 9))], {"to": onnx.TensorProto.FLOAT})


def test_fused_elementwise_chain(tmp_path):
    # y = sigmoid(x * 0.5 + b) * x - c: -O3 fuses the chain into one FusedElementwise node run by
    # fused_elementwise_bcast
    x, b, c = rnd(3, 7, 11), rnd(11, seed=1), rnd(7, 1, seed=2)
    nodes = [helper.make_node("Mul", ["x", "half"], ["t0"]), helper.make_node("Add", ["t0", "b"], ["t1"]),
             helper.make_node("Sigmoid", ["t1"], ["t2"]), helper.make_node("Mul", ["t2", "x"], ["t3"]),
             helper.make_node("Sub", ["t3", "c"], ["y"])]
    inputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(a.shape))
              for n, a in (("x", x), ("b", b), ("c", c))]
    half = helper.make_tensor("half", onnx.TensorProto.FLOAT, [], [0.5])
    graph = helper.make_graph(nodes, "chain", inputs, [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                                                                    None)], initializer=[half])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = str(tmp_path / "chain.onnx")
    onnx.save(model, path)
    args = ["compare", path, "--backend", "cuda", "--tolerance", str(TOL)]
    for n, a in (("x", x), ("b", b), ("c", c)):
        np.save(tmp_path / f"{n}.npy", a)
        args += ["--input", f"{n}={tmp_path / f'{n}.npy'}"]
    proc = run_kiln(args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    insp = run_kiln(["inspect", path, "--backend", "cuda"]).stdout
    assert "fused_elementwise_bcast" in insp or "FusedElementwise" not in insp, insp


# ---------------------------------------------------------------- masks: bool / integer ops stay on the device

def bools(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=shape).astype(bool)


def ints(*shape, seed=0, low=-3, high=4):
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(np.int64)


@pytest.mark.parametrize("src,to", [(ints(2, 5), onnx.TensorProto.BOOL), (ints(2, 5), onnx.TensorProto.FLOAT),
                                    (rnd(3, 4), onnx.TensorProto.INT64), (bools(4, 3), onnx.TensorProto.INT32),
                                    (rnd(3, 4), onnx.TensorProto.BOOL)])
def test_cast(src, to):
    check_cuda_op("Cast", [("x", src)], {"to": to}, on_device=True)


@pytest.mark.parametrize("op", ["And", "Or"])
def test_logic_broadcast(op):
    check_cuda_op(op, [("a", bools(2, 3, 4)), ("b", bools(3, 1, seed=1))], on_device=True)


def test_not():
    check_cuda_op("Not", [("a", bools(5, 7))], on_device=True)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("kind", ["f32", "i64"])
def test_compare_broadcast(op, kind):
    if kind == "f32":
        a, b = np.round(rnd(2, 3, 4) * 2) / 2, np.round(rnd(4, seed=1) * 2) / 2  # equal elements do occur
    else:
        a, b = ints(2, 3, 4), ints(4, seed=1)
    check_cuda_op(op, [("a", a), ("b", b)], on_device=True)


def test_bool_data_movement():
    """A Hugging Face mask path: Reshape / Transpose / Gather of bool tensors, on the device."""
    check_cuda_op("Transpose", [("x", bools(2, 3, 4))], {"perm": [2, 0, 1]}, on_device=True)
    check_cuda_op("Gather", [("x", bools(6, 5)), ("i", np.array([4, 0, 2], np.int64))], {"axis": 0},
                  constants=("i",), on_device=True)
    check_cuda_op("Reshape", [("x", bools(2, 6)), ("s", np.array([3, 4], np.int64))], constants=("s",),
                  on_device=True)


@pytest.mark.parametrize("name", ["bert_small", "gpt2_small", "vit_small", "vit_small_b2"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_torch_exports_on_the_gpu(name, precision):
    """The PyTorch-exported transformers run entirely on the GPU (no host nodes, so one CUDA graph), matching
    onnxruntime (fp16: within 2e-2 of the output scale)."""
    path = os.path.join(os.path.dirname(__file__), "..", "data", "torch_export", f"{name}.onnx")
    extra = [] if precision == "fp32" else ["--fp16"]
    tol = TOL if precision == "fp32" else 2e-2
    proc = run_kiln(["compare", path, "--backend", "cuda", "--tolerance", str(tol)] + extra, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    insp = run_kiln(["inspect", path, "--backend", "cuda"] + extra)
    assert "(host)" not in insp.stdout, insp.stdout

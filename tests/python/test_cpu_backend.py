"""The optimised `cpu` backend against the `reference` backend (the oracle): the same model and inputs through
`kiln run --backend X --output-dir`, max abs error <= 1e-4 of the output's scale. Small models with odd shapes
(channels not a multiple of 16, strides, dilations, asymmetric pads, groups, depthwise, batch > 1, broadcasting,
residual + each activation) and every tiny zoo model. No timing assertions here: see bench/cpu_bench.py."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import make_zoo
from op_harness import run_kiln

TOL = 1e-4


def rand(shape, seed, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def make_model(nodes, inputs, outputs, inits, opset=17):
    graph = helper.make_graph(nodes, "cpu_test", [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
                                                  for n, a in inputs.items()],
                              [helper.make_empty_tensor_value_info(o) for o in outputs],
                              initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def run_backend(tmp, model_path, feeds, backend, extra=()):
    out = os.path.join(tmp, f"out_{backend}")
    args = ["run", model_path, "--backend", backend, "--output-dir", out] + list(extra)
    for i, (name, arr) in enumerate(feeds.items()):
        p = os.path.join(tmp, f"in{i}.npy")
        np.save(p, arr)
        args += ["--input", f"{name}={p}"]
    run_kiln(args)
    return {f[:-4]: np.load(os.path.join(out, f)) for f in sorted(os.listdir(out))}


def check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=(), extra=()):
    path = str(tmp_path / "model.onnx")
    onnx.save(model, path)
    ref = run_backend(str(tmp_path), path, feeds, "reference", extra)
    got = run_backend(str(tmp_path), path, feeds, "cpu", extra)
    assert ref.keys() == got.keys()
    for name in ref:
        r, g = ref[name], got[name]
        assert r.shape == g.shape and r.dtype == g.dtype, (name, r.shape, g.shape)
        scale = max(float(np.max(np.abs(r))), 1e-6)
        err = float(np.max(np.abs(r.astype(np.float64) - g))) if r.size else 0.0
        assert err <= TOL * scale, f"{name}: max abs err {err:.3e} > {TOL} x scale {scale:.3e}"
    if expect_cpu_ops:
        report = json.loads(run_kiln(["inspect", path, "--backend", "cpu", "--json"] + list(extra)).stdout)
        on_cpu = {n["op"] for n in report["nodes"] if n["backend"] == "cpu"}
        for op in expect_cpu_ops:
            assert op in on_cpu, (op, [(n["op"], n["backend"], n["kernel"]) for n in report["nodes"]])


ACTIVATIONS = {  # name -> nodes making y = act(x)
    "none": lambda x, y: [helper.make_node("Identity", [x], [y])],
    "relu": lambda x, y: [helper.make_node("Relu", [x], [y])],
    "leaky": lambda x, y: [helper.make_node("LeakyRelu", [x], [y], alpha=0.13)],
    "clip": lambda x, y: [helper.make_node("Clip", [x, "clip_lo", "clip_hi"], [y])],
    "sigmoid": lambda x, y: [helper.make_node("Sigmoid", [x], [y])],
    "silu": lambda x, y: [helper.make_node("Sigmoid", [x], [x + "_s"]), helper.make_node("Mul", [x, x + "_s"], [y])],
    "hardsigmoid": lambda x, y: [helper.make_node("HardSigmoid", [x], [y], alpha=0.25, beta=0.4)],
    "hardswish": lambda x, y: [helper.make_node("HardSwish", [x], [y])],
    "tanh": lambda x, y: [helper.make_node("Tanh", [x], [y])],
    "elu": lambda x, y: [helper.make_node("Elu", [x], [y], alpha=0.7)],
}
CLIP_INITS = {"clip_lo": np.array(-0.3, np.float32), "clip_hi": np.array(0.6, np.float32)}

# (N, C, H, W, OC, kernel, strides, pads, dilations, group)
CONV_CASES = {
    "basic_odd_channels": (1, 3, 17, 19, 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "stride2_asym_pads_batch2": (2, 7, 15, 13, 9, (3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1),
    "dilation2": (1, 5, 20, 18, 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    "groups3": (2, 6, 11, 11, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3),
    "depthwise_stride2": (1, 12, 14, 15, 12, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 12),
    "pointwise": (3, 20, 9, 7, 33, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "large_kernel_stride": (1, 3, 32, 32, 17, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    "wide_channels": (1, 64, 8, 8, 48, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
}


def conv_model(case, act="none", residual=False, bias=True, seed=0):
    n, c, h, w, oc, k, s, p, d, g = case
    x = rand((n, c, h, w), seed)
    inits = {"W": rand((oc, c // g) + tuple(k), seed + 1, -0.5, 0.5)}
    ins = ["x", "W"]
    if bias:
        inits["B"] = rand((oc,), seed + 2)
        ins.append("B")
    nodes = [helper.make_node("Conv", ins, ["conv"], kernel_shape=list(k), strides=list(s), pads=list(p),
                              dilations=list(d), group=g)]
    pre = "conv"
    feeds = {"x": x}
    if residual:
        oh = (h + p[0] + p[2] - (d[0] * (k[0] - 1) + 1)) // s[0] + 1
        ow = (w + p[1] + p[3] - (d[1] * (k[1] - 1) + 1)) // s[1] + 1
        feeds["z"] = rand((n, oc, oh, ow), seed + 3)
        nodes.append(helper.make_node("Add", ["conv", "z"], ["sum"]))
        pre = "sum"
    nodes += ACTIVATIONS[act](pre, "y")
    if act == "clip":
        inits.update(CLIP_INITS)
    return make_model(nodes, feeds, ["y"], inits), feeds


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_shapes(tmp_path, case):
    model, feeds = conv_model(CONV_CASES[case])
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("Conv",))


def test_conv_without_bias(tmp_path):
    model, feeds = conv_model(CONV_CASES["groups3"], act="relu", bias=False)
    check_cpu_vs_reference(tmp_path, model, feeds)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_conv_residual_activation(tmp_path, act):
    model, feeds = conv_model(CONV_CASES["stride2_asym_pads_batch2"], act=act, residual=True)
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("FusedConv",))


@pytest.mark.parametrize("act", ["relu", "clip", "silu", "hardswish"])
def test_depthwise_activation(tmp_path, act):
    model, feeds = conv_model(CONV_CASES["depthwise_stride2"], act=act)
    check_cpu_vs_reference(tmp_path, model, feeds)


def test_conv_symbolic_batch(tmp_path):
    """Shapes known only at run time: the kernel prepares a primitive per input shape."""
    model, _ = conv_model(CONV_CASES["basic_odd_channels"], act="relu")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    check_cpu_vs_reference(tmp_path, model, {"x": rand((3, 3, 17, 19), 5)})


@pytest.mark.parametrize("act", ["none", "relu", "gelu", "tanh"])
@pytest.mark.parametrize("residual", [False, True])
def test_matmul_bias_residual_activation(tmp_path, act, residual):
    a = rand((2, 5, 17), 0)
    feeds = {"a": a}
    inits = {"W": rand((17, 23), 1), "bias": rand((23,), 2)}
    nodes = [helper.make_node("MatMul", ["a", "W"], ["mm"]), helper.make_node("Add", ["mm", "bias"], ["mb"])]
    pre = "mb"
    if residual:
        feeds["z"] = rand((2, 5, 23), 3)
        nodes.append(helper.make_node("Add", ["mb", "z"], ["mz"]))
        pre = "mz"
    if act == "gelu":  # erf form, as exported by PyTorch
        inits.update({"sqrt2": np.array(np.sqrt(2.0), np.float32), "one": np.array(1.0, np.float32),
                      "half": np.array(0.5, np.float32)})
        nodes += [helper.make_node("Div", [pre, "sqrt2"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
                  helper.make_node("Add", ["g1", "one"], ["g2"]), helper.make_node("Mul", [pre, "g2"], ["g3"]),
                  helper.make_node("Mul", ["g3", "half"], ["y"])]
    else:
        nodes += ACTIVATIONS[act](pre, "y")
    model = make_model(nodes, feeds, ["y"], inits)
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("FusedMatMul",))


@pytest.mark.parametrize("a_shape,b_shape", [((2, 3, 5, 7), (2, 3, 7, 4)), ((1, 9, 8), (4, 8, 3)),
                                             ((6, 5, 7), (7, 11)), ((13, 16), (16, 1))])
def test_matmul_runtime_operands(tmp_path, a_shape, b_shape):
    feeds = {"a": rand(a_shape, 0), "b": rand(b_shape, 1)}
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], feeds, ["y"], {})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("MatMul",))


@pytest.mark.parametrize("trans_a,trans_b", [(0, 0), (0, 1), (1, 0)])
def test_gemm(tmp_path, trans_a, trans_b):
    a = rand((7, 9) if trans_a else (9, 7), 0)
    w = rand((13, 7) if trans_b else (7, 13), 1)
    feeds = {"a": a}
    model = make_model([helper.make_node("Gemm", ["a", "W", "C"], ["y"], transA=trans_a, transB=trans_b, beta=0.5)],
                       feeds, ["y"], {"W": w, "C": rand((13,), 2)})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("Gemm",))


@pytest.mark.parametrize("shape", [(2, 7, 33), (3, 768), (1, 4, 5, 40)])
def test_layer_norm(tmp_path, shape):
    feeds = {"x": rand(shape, 0, -3, 3)}
    inits = {"g": rand(shape[-1:], 1), "b": rand(shape[-1:], 2)}
    model = make_model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
                       feeds, ["y"], inits)
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("LayerNormalization",))


@pytest.mark.parametrize("shape", [(2, 3, 17), (4, 128), (1, 2, 3, 1000)])
def test_softmax(tmp_path, shape):
    feeds = {"x": rand(shape, 0, -8, 8)}
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], feeds, ["y"], {})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("Softmax",))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("a_shape,b_shape", [((2, 3, 5, 7), (2, 3, 5, 7)), ((2, 6, 5, 7), (2, 6, 1, 1)),
                                             ((4, 9, 33), (33,)), ((3, 1, 5), (1, 4, 1)), ((5, 6), ()),
                                             ((1, 7), (3, 1, 7))])
def test_binary_broadcast(tmp_path, op, a_shape, b_shape):
    feeds = {"a": rand(a_shape, 0), "b": rand(b_shape, 1, 0.5, 2.0)}
    model = make_model([helper.make_node(op, ["a", "b"], ["y"])], feeds, ["y"], {})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=(op,), extra=["--opt-level", "0"])


@pytest.mark.parametrize("op,attrs", [("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Relu", {}),
                                      ("Sigmoid", {}), ("Tanh", {})])
def test_unary(tmp_path, op, attrs):
    feeds = {"x": rand((3, 5, 67), 0, -6, 6)}
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], feeds, ["y"], {}, opset=20)
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=(op,), extra=["--opt-level", "0"])


@pytest.mark.parametrize("attrs", [dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                                   dict(kernel_shape=[2, 3], strides=[2, 1]),
                                   dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)])
def test_max_pool(tmp_path, attrs):
    feeds = {"x": rand((2, 5, 13, 12), 0)}
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], feeds, ["y"], {})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("MaxPool",))


@pytest.mark.parametrize("shape,perm", [((2, 7, 3, 5), (0, 2, 1, 3)), ((33, 70), (1, 0)),
                                        ((2, 3, 37, 41), (0, 1, 3, 2)), ((4, 1, 6, 5), (3, 1, 0, 2)),
                                        ((2, 3, 4, 5, 6), (4, 2, 0, 3, 1))])
@pytest.mark.parametrize("constant", [False, True])
def test_transpose(tmp_path, shape, perm, constant):
    x = rand(shape, 0)
    feeds = {"a": rand((1,), 1)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=list(perm)), helper.make_node("Add", ["t", "a"], ["y"])]
    if not constant:
        feeds["x"] = x
    model = make_model(nodes, feeds, ["y"], {"x": x} if constant else {})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("Transpose",), extra=["--opt-level", "0"])


def test_global_average_pool(tmp_path):
    feeds = {"x": rand((3, 17, 9, 11), 0)}
    model = make_model([helper.make_node("GlobalAveragePool", ["x"], ["y"])], feeds, ["y"], {})
    check_cpu_vs_reference(tmp_path, model, feeds, expect_cpu_ops=("GlobalAveragePool",))


def test_unsupported_dtype_falls_back_to_reference(tmp_path):
    """int64 Add is not a cpu kernel: it is placed on the reference backend, visible in inspect."""
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "i64",
                              [helper.make_tensor_value_info(n, TensorProto.INT64, [2, 3]) for n in "ab"],
                              [helper.make_empty_tensor_value_info("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = str(tmp_path / "i64.onnx")
    onnx.save(model, path)
    report = json.loads(run_kiln(["inspect", path, "--backend", "cpu", "--json", "--opt-level", "0"]).stdout)
    assert [n["backend"] for n in report["nodes"]] == ["reference"]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_zoo_model(tmp_path, name, batch):
    model = make_zoo.make_model(name, True)
    feeds = make_zoo.make_inputs(name, True, batch)
    shapes = [a for k, v in feeds.items() for a in ("--shape", f"{k}:{'x'.join(map(str, v.shape))}")]
    check_cpu_vs_reference(tmp_path, model, feeds, extra=shapes if batch == 1 else ())


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(tmp_path, threads):
    model = make_zoo.make_model("bert_base", True)
    feeds = make_zoo.make_inputs("bert_base", True, 2)
    check_cpu_vs_reference(tmp_path, model, feeds, extra=["--threads", str(threads)])

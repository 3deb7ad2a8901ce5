"""FusedElementwise with Cast / logic / comparison / Where nodes (gather_to_reshape, hoist_reshape, fuse_elementwise):
HF transformers' attention-mask chain becomes one node, and small logic chains match onnxruntime exactly on the cpu
and reference backends."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from op_harness import reference_outputs, run_kiln, run_model_with_kiln

BACKENDS = ["cpu", "reference"]
F32_MIN = np.finfo(np.float32).min


def make_model(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "mask_test", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def bert_mask_model(batch, seq):
    """The chain `kiln inspect` shows for BERT-base exported from HF transformers:
    Cast(int64 -> bool) -> Flatten -> Gather(arange(B*S) as [B, 1, 1, S]) -> Reshape -> And(bool [1, 1, S, 1], .)
    -> Where(., 0, float32 min)."""
    rows = np.arange(seq) % 5 != 3  # a query-side bool constant with some False rows
    inits = [
        numpy_helper.from_array(np.arange(batch * seq, dtype=np.int64).reshape(batch, 1, 1, seq), "idx"),
        numpy_helper.from_array(np.array([batch, 1, 1, seq], dtype=np.int64), "shape4"),
        numpy_helper.from_array(rows.reshape(1, 1, seq, 1), "rows"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.array(F32_MIN, dtype=np.float32), "fmin"),
    ]
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["mb"], name="cast", to=TensorProto.BOOL),
        helper.make_node("Flatten", ["mb"], ["flat"], name="flatten", axis=2),
        helper.make_node("Gather", ["flat", "idx"], ["gathered"], name="gather", axis=0),
        helper.make_node("Reshape", ["gathered", "shape4"], ["m4"], name="reshape"),
        helper.make_node("And", ["rows", "m4"], ["both"], name="and"),
        helper.make_node("Where", ["both", "zero", "fmin"], ["mask"], name="where"),
    ]
    inputs = [helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, seq])]
    outputs = [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1, seq, seq])]
    return make_model(nodes, inputs, outputs, inits)


def save(model, tmp_path, name="model.onnx"):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def shape_args(feeds):
    return [a for k, v in feeds.items() for a in ("--shape", f"{k}:{'x'.join(map(str, v.shape)) or '1'}")]


def inspect_ops(path, feeds, backend="cpu"):
    proc = run_kiln(["inspect", path, "--json", "--backend", backend] + shape_args(feeds))
    return [n["op"] for n in json.loads(proc.stdout)["nodes"]]


def check_exact(model, path, feeds, tmp_path, backend):
    expected = reference_outputs(model, feeds)
    workdir = tmp_path / backend
    workdir.mkdir()
    outdir = run_model_with_kiln(path, feeds, str(workdir), ["--backend", backend])
    for out, exp in zip(model.graph.output, expected):
        got = np.load(os.path.join(outdir, f"{out.name}.npy"))
        assert got.dtype == exp.dtype and got.shape == exp.shape, (out.name, got.dtype, got.shape, exp.shape)
        np.testing.assert_array_equal(got, exp, err_msg=f"{out.name} on {backend}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 2])
def test_bert_mask_chain_is_one_node(tmp_path, batch, backend):
    seq = 16
    model = bert_mask_model(batch, seq)
    path = save(model, tmp_path)
    rng = np.random.default_rng(batch)
    mask = (rng.uniform(size=(batch, seq)) < 0.7).astype(np.int64)
    mask[:, 0] = 1
    mask[-1, 3] = 1 << 40  # nonzero: true, whatever its float value
    feeds = {"attention_mask": mask}
    ops = inspect_ops(path, feeds, backend)
    assert ops.count("FusedElementwise") == 1, ops
    for op in ("Gather", "Cast", "And", "Where", "Flatten"):
        assert op not in ops, ops
    assert set(ops) <= {"FusedElementwise", "Reshape"}, ops
    check_exact(model, path, feeds, tmp_path, backend)


def test_bert_mask_chain_batch32_structure(tmp_path):
    """batch 32, seq 128: indices [32, 1, 1, 128] = arange(4096) over data [4096, 1]."""
    model = bert_mask_model(32, 128)
    path = save(model, tmp_path)
    feeds = {"attention_mask": np.ones((32, 128), dtype=np.int64)}
    ops = inspect_ops(path, feeds)
    assert ops.count("FusedElementwise") == 1 and set(ops) <= {"FusedElementwise", "Reshape"}, ops


@pytest.mark.parametrize("backend", BACKENDS)
def test_less_where_on_floats(tmp_path, backend):
    """y = Where(x < t, x * 2, t - x) with t broadcast [4] against x [3, 4]."""
    nodes = [
        helper.make_node("Less", ["x", "t"], ["lt"]),
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Sub", ["t", "x"], ["d"]),
        helper.make_node("Where", ["lt", "x2", "d"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4]),
              helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])]
    model = make_model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])], inits)
    path = save(model, tmp_path)
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((3, 4)).astype(np.float32), "t": rng.standard_normal(4).astype(np.float32)}
    feeds["x"][1, 2] = feeds["t"][2]  # equal: not less
    assert inspect_ops(path, feeds, backend) == ["FusedElementwise"]
    check_exact(model, path, feeds, tmp_path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_int32_cast_mul(tmp_path, backend):
    nodes = [
        helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "x"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info("i", TensorProto.INT32, [2, 1, 5]),
              helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])]
    model = make_model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5])], [])
    path = save(model, tmp_path)
    rng = np.random.default_rng(1)
    feeds = {"i": rng.integers(-(1 << 30), 1 << 30, size=(2, 1, 5)).astype(np.int32),
             "x": rng.standard_normal((3, 5)).astype(np.float32)}
    assert inspect_ops(path, feeds, backend) == ["FusedElementwise"]
    check_exact(model, path, feeds, tmp_path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_output_not_and(tmp_path, backend):
    """Not(And(x < 0.5, b)) as a graph output (bool), x [2, 3, 4] against b [3, 1]; a float output next to it."""
    nodes = [
        helper.make_node("Less", ["x", "half"], ["lt"]),
        helper.make_node("And", ["lt", "b"], ["a"]),
        helper.make_node("Not", ["a"], ["y"]),
        helper.make_node("Greater", ["x", "half"], ["gt"]),
        helper.make_node("Cast", ["gt"], ["gtf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["gtf", "x"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
              helper.make_tensor_value_info("b", TensorProto.BOOL, [3, 1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.BOOL, [2, 3, 4]),
               helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 4])]
    model = make_model(nodes, inputs, outputs, inits)
    path = save(model, tmp_path)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.uniform(0, 1, (2, 3, 4)).astype(np.float32), "b": np.array([[True], [False], [True]])}
    feeds["x"][0, 0, 0] = 0.5
    feeds["x"][1, 2, 3] = np.nan
    assert inspect_ops(path, feeds, backend) == ["FusedElementwise", "FusedElementwise"]
    check_exact(model, path, feeds, tmp_path, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bool_output_survives_a_plan(tmp_path, backend):
    """A bool FusedElementwise (out_dtype=9) written to a plan and run from it."""
    nodes = [helper.make_node("Less", ["x", "half"], ["lt"]), helper.make_node("And", ["lt", "b"], ["a"]),
             helper.make_node("Not", ["a"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
              helper.make_tensor_value_info("b", TensorProto.BOOL, [3, 1])]
    model = make_model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.BOOL, [2, 3, 4])], inits)
    path = save(model, tmp_path)
    plan = str(tmp_path / "model.plan")
    run_kiln(["build", path, "-o", plan, "--backend", backend])
    feeds = {"x": np.random.default_rng(6).uniform(0, 1, (2, 3, 4)).astype(np.float32),
             "b": np.array([[True], [False], [True]])}
    outdir = run_model_with_kiln(plan, feeds, str(tmp_path))
    got = np.load(os.path.join(outdir, "y.npy"))
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, reference_outputs(model, feeds)[0])

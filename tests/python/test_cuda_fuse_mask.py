"""FusedElementwise with bool / int inputs and bool outputs on the CUDA backend (fused_elementwise_bcast), against
onnxruntime: HF's attention-mask chain as one kernel, in fp32 and next to fp16 values (a reduced MatMul output read
by the same kernel as the mask). On cuda the int64 -> bool Cast stays a kernel of its own before the (alias)
Reshape: hoisting the Reshape above it would reshape int64 data, which the cuda backend keeps on the host. Skipped, with the reason, where there is no GPU or no CUDA build."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from op_harness import reference_outputs, run_kiln, run_model_with_kiln
from test_cuda import _REASON
from test_fuse_mask import bert_mask_model, make_model, save, shape_args

pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def run_cuda(model, path, feeds, tmp_path, extra=()):
    workdir = tmp_path / "cuda"
    workdir.mkdir(exist_ok=True)
    outdir = run_model_with_kiln(path, feeds, str(workdir), ["--backend", "cuda"] + list(extra))
    return [np.load(os.path.join(outdir, f"{o.name}.npy")) for o in model.graph.output]


def assert_all_on_gpu(path, feeds, extra=()):
    text = run_kiln(["inspect", path, "--backend", "cuda"] + shape_args(feeds) + list(extra)).stdout
    assert "(host)" not in text, text


def cuda_layers(path, feeds, extra=()):
    proc = run_kiln(["inspect", path, "--json", "--backend", "cuda"] + shape_args(feeds) + list(extra))
    return json.loads(proc.stdout)["nodes"]


@pytest.mark.parametrize("batch", [1, 2])
def test_bert_mask_chain_cast_and_one_fused_kernel(tmp_path, batch):
    seq = 128
    model = bert_mask_model(batch, seq)
    path = save(model, tmp_path)
    mask = (np.random.default_rng(batch).uniform(size=(batch, seq)) < 0.7).astype(np.int64)
    feeds = {"attention_mask": mask}
    layers = cuda_layers(path, feeds)
    ops = [n["op"] for n in layers]
    assert ops.count("FusedElementwise") == 1 and set(ops) <= {"FusedElementwise", "Reshape", "Cast"}, ops
    assert_all_on_gpu(path, feeds)
    assert any("fused_elementwise_bcast" in json.dumps(n) for n in layers), layers
    got = run_cuda(model, path, feeds, tmp_path)
    np.testing.assert_array_equal(got[0], reference_outputs(model, feeds)[0])


def test_bool_output_and_int32_input(tmp_path):
    """y = Not(And(x < 0.5, b)) (bool), z = Cast<float>(i) * x (int32 leaf)."""
    nodes = [
        helper.make_node("Less", ["x", "half"], ["lt"]),
        helper.make_node("And", ["lt", "b"], ["a"]),
        helper.make_node("Not", ["a"], ["y"]),
        helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "x"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
              helper.make_tensor_value_info("b", TensorProto.BOOL, [3, 1]),
              helper.make_tensor_value_info("i", TensorProto.INT32, [4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.BOOL, [2, 3, 4]),
               helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 4])]
    model = make_model(nodes, inputs, outputs, inits)
    path = save(model, tmp_path)
    rng = np.random.default_rng(3)
    feeds = {"x": rng.uniform(0, 1, (2, 3, 4)).astype(np.float32), "b": np.array([[True], [False], [True]]),
             "i": np.array([-7, 0, 3, 1 << 20], dtype=np.int32)}
    assert [n["op"] for n in cuda_layers(path, feeds)] == ["FusedElementwise", "FusedElementwise"]
    got = run_cuda(model, path, feeds, tmp_path)
    for g, e in zip(got, reference_outputs(model, feeds)):
        assert g.dtype == e.dtype
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("precision", [[], ["--fp16"], ["--bf16"]])
def test_mask_added_to_reduced_scores(tmp_path, precision):
    """scores = x @ w (fp16/bf16 with --fp16/--bf16) + Where(And(rows, Cast<bool>(mask)), 0, -1e4): one kernel
    reads the reduced scores, the bool constant and the mask (cast to bool on the device)."""
    batch, seq, k = 2, 16, 8
    rows = np.arange(seq) % 5 != 3
    inits = [numpy_helper.from_array(np.random.default_rng(4).standard_normal((k, seq)).astype(np.float32), "w"),
             numpy_helper.from_array(rows.reshape(1, seq, 1), "rows"),
             numpy_helper.from_array(np.array([batch, 1, seq], dtype=np.int64), "shape3"),
             numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
             numpy_helper.from_array(np.array(-1e4, dtype=np.float32), "big")]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["s"]),
        helper.make_node("Cast", ["attention_mask"], ["mb"], to=TensorProto.BOOL),
        helper.make_node("Reshape", ["mb", "shape3"], ["m3"]),
        helper.make_node("And", ["rows", "m3"], ["both"]),
        helper.make_node("Where", ["both", "zero", "big"], ["add_mask"]),
        helper.make_node("Add", ["s", "add_mask"], ["y"]),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, seq, k]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch, seq])]
    model = make_model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, seq, seq])],
                       inits)
    path = save(model, tmp_path)
    rng = np.random.default_rng(5)
    feeds = {"x": rng.standard_normal((batch, seq, k)).astype(np.float32),
             "attention_mask": (rng.uniform(size=(batch, seq)) < 0.7).astype(np.int64)}
    ops = [n["op"] for n in cuda_layers(path, feeds, precision)]
    assert ops.count("FusedElementwise") == 1 and "Where" not in ops and "And" not in ops, ops
    assert_all_on_gpu(path, feeds, precision)
    got = run_cuda(model, path, feeds, tmp_path, precision)[0]
    want = reference_outputs(model, feeds)[0]
    tol = 1e-4 if not precision else 5e-2
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 10)

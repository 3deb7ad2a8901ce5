"""ONNX importer: older opset forms are converted to the newest (checked against onnxruntime, which runs the old
opset as written), external-data tensors, model metadata, IR versions, Constant nodes, symbolic input dims."""
import json
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from op_harness import check_op, make_single_op_model, rand, reference_outputs, run_kiln, run_model_with_kiln

X3 = rand(2, 3, 4, seed=1)


@pytest.mark.parametrize("op,inputs,attrs,opset", [
    ("Squeeze", [("x", rand(2, 1, 3))], {"axes": [1]}, 11),
    ("Unsqueeze", [("x", rand(2, 3))], {"axes": [0, -1]}, 11),
    ("ReduceMean", [("x", X3)], {"axes": [-1], "keepdims": 1}, 13),
    ("ReduceMax", [("x", X3)], {"axes": [0, 2], "keepdims": 0}, 11),
    ("ReduceSum", [("x", X3)], {"axes": [1]}, 11),
    ("Slice", [("x", X3)], {"starts": [0, 1], "ends": [2, 3], "axes": [0, 2]}, 9),
    ("Pad", [("x", rand(2, 3))], {"pads": [0, 1, 1, 0], "mode": "constant", "value": 1.5}, 10),
    ("Clip", [("x", X3)], {"min": -0.25, "max": 0.5}, 10),
    ("Softmax", [("x", X3)], {"axis": 1}, 11),   # pre-13: coerced to 2-D at axis 1
    ("LogSoftmax", [("x", X3)], {}, 11),
    ("Softmax", [("x", X3)], {"axis": 2}, 11),
    ("Dropout", [("x", X3)], {"ratio": 0.3}, 10),
])
def test_old_opset_forms(op, inputs, attrs, opset):
    check_op(op, inputs, attrs, opset=opset)


def test_old_split_with_split_attribute():
    check_op("Split", [("x", rand(6, 4))], {"axis": 0, "split": [2, 4]}, n_outputs=2, opset=11)


def test_old_resize_opset10():
    x = rand(1, 1, 3, 3)
    check_op("Resize", [("x", x), ("scales", np.array([1, 1, 2, 2], np.float32))], {"mode": "nearest"},
             constants=("scales",), opset=10)


def test_batchnorm_opset7_spatial():
    c = 3
    inputs = [("x", rand(2, c, 4, 4)), ("s", rand(c, seed=2)), ("b", rand(c, seed=3)), ("m", rand(c, seed=4)),
              ("v", rand(c, seed=5, low=0.5, high=1.5))]
    check_op("BatchNormalization", inputs, {"spatial": 1, "epsilon": 1e-3}, constants=("s", "b", "m", "v"), opset=7)


def _mlp_model(tmp_path, external=False, ir_version=8, opset=17):
    w = rand(8, 4, seed=7)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Constant", [], ["bias"], value=numpy_helper.from_array(rand(4, seed=8), "bias")),
             helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "bias"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [x], [y], initializer=[numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test-exporter",
                              producer_version="9.9")
    model.ir_version = ir_version
    helper.set_model_props(model, {"author": "kiln tests", "task": "mlp"})
    path = str(tmp_path / "mlp.onnx")
    if external:
        onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="mlp.weights",
                  size_threshold=0)
    else:
        onnx.save(model, path)
    return model, path


@pytest.mark.parametrize("external", [False, True])
def test_external_data_and_constant_nodes(tmp_path, external):
    model, path = _mlp_model(tmp_path, external)
    if external:
        assert os.path.exists(tmp_path / "mlp.weights")
    x = rand(3, 8, seed=9)
    expected = reference_outputs(onnx.load(path), {"x": x})[0]
    out = run_model_with_kiln(path, {"x": x}, str(tmp_path))
    np.testing.assert_allclose(np.load(os.path.join(out, "y.npy")), expected, rtol=1e-5, atol=1e-6)


def test_missing_external_data_file(tmp_path):
    _, path = _mlp_model(tmp_path, external=True)
    os.remove(tmp_path / "mlp.weights")
    proc = run_kiln(["run", path], check=False)
    assert proc.returncode == 1 and "mlp.weights" in proc.stderr and "initializer 'w'" in proc.stderr


def test_truncated_external_data_file(tmp_path):
    _, path = _mlp_model(tmp_path, external=True)
    with open(tmp_path / "mlp.weights", "r+b") as f:
        f.truncate(16)
    proc = run_kiln(["run", path], check=False)
    assert proc.returncode == 1 and "truncated" in proc.stderr


def test_metadata_and_symbolic_inputs(tmp_path):
    _, path = _mlp_model(tmp_path)
    info = json.loads(run_kiln(["inspect", path, "--json"]).stdout)
    assert info["metadata"]["author"] == "kiln tests" and info["metadata"]["opset"] == "17"
    assert info["inputs"][0]["shape"] == ["batch", 8]
    plan = str(tmp_path / "mlp.plan")
    run_kiln(["build", path, "-o", plan])
    assert json.loads(run_kiln(["inspect", plan, "--json"]).stdout)["metadata"]["task"] == "mlp"


@pytest.mark.parametrize("ir_version,opset", [(3, 7), (4, 9), (7, 13), (9, 19), (10, 21)])
def test_ir_versions_and_opsets(tmp_path, ir_version, opset):
    _, path = _mlp_model(tmp_path, ir_version=ir_version, opset=opset)
    x = rand(2, 8, seed=3)
    out = run_model_with_kiln(path, {"x": x}, str(tmp_path))
    expected = reference_outputs(onnx.load(path), {"x": x}, reference="onnx-ref")[0]
    np.testing.assert_allclose(np.load(os.path.join(out, "y.npy")), expected, rtol=1e-5, atol=1e-6)


def test_opset_too_old(tmp_path):
    model = make_single_op_model("Relu", [("x", rand(2))], opset=6)
    path = tmp_path / "old.onnx"
    onnx.save(model, path)
    proc = run_kiln(["run", str(path)], check=False)
    assert proc.returncode == 3 and "opset 6" in proc.stderr and "version_converter" in proc.stderr

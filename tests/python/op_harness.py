"""Declarative single-op tests: build a one-node ONNX model, run it through the `kiln` CLI and compare every output
with onnxruntime (or the ONNX reference evaluator for ops/dtypes onnxruntime lacks).

A case is: op type, inputs (name -> array, or None for an omitted optional input), attributes, which inputs are
initializers (constants, e.g. shape tensors), opset and tolerance.
"""
import os
import subprocess
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kiln_bin():
    return os.environ.get("KILN_BIN", os.path.join(ROOT, "build", "kiln"))


def run_kiln(args, check=True, timeout=600):
    proc = subprocess.run([kiln_bin()] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"kiln {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def make_single_op_model(op_type, inputs, attrs=None, n_outputs=1, constants=(), opset=17, domain=""):
    """inputs: list of (name, array-or-None). Omitted optional inputs get an empty name."""
    attrs = attrs or {}
    node_inputs, graph_inputs, inits = [], [], []
    for name, arr in inputs:
        if arr is None:
            node_inputs.append("")
            continue
        node_inputs.append(name)
        arr = np.asarray(arr)
        if name in constants:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, node_inputs, outs, name=f"{op_type.lower()}_node", domain=domain, **attrs)
    graph = helper.make_graph([node], f"{op_type}_test", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outs], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)])
    model.ir_version = 8
    return model


def reference_outputs(model, feeds, reference="ort"):
    if reference == "ort":
        import onnxruntime as ort
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, feeds)
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def _run_args(model_path, feeds, workdir):
    args = ["run", model_path, "--output-dir", os.path.join(workdir, "out")]
    for name, arr in feeds.items():
        p = os.path.join(workdir, f"in_{len(args)}.npy")
        np.save(p, np.asarray(arr))
        args += ["--input", f"{name}={p}"]
    return args


def run_model_with_kiln(model_path, feeds, workdir, extra_args=()):
    run_kiln(_run_args(model_path, feeds, workdir) + list(extra_args))
    return os.path.join(workdir, "out")


def run_invalid(op_type, inputs, attrs=None, n_outputs=1, constants=(), opset=17):
    """Runs a one-op model kiln must reject; returns the CompletedProcess (assert on returncode/stderr)."""
    model = make_single_op_model(op_type, inputs, attrs, n_outputs, constants, opset)
    feeds = {n: a for n, a in inputs if a is not None and n not in constants}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        return run_kiln(_run_args(path, feeds, d), check=False)


def check_op(op_type, inputs, attrs=None, n_outputs=1, constants=(), opset=17, rtol=1e-5, atol=1e-5,
             reference="ort", outputs_to_check=None):
    """Runs one op on kiln and on the reference, asserts every output matches (shape, dtype, values)."""
    model = make_single_op_model(op_type, inputs, attrs, n_outputs, constants, opset)
    feeds = {n: np.asarray(a) for n, a in inputs if a is not None and n not in constants}
    expected = reference_outputs(model, feeds, reference)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        outdir = run_model_with_kiln(path, feeds, d)
        for i in range(n_outputs) if outputs_to_check is None else outputs_to_check:
            got = np.load(os.path.join(outdir, f"out{i}.npy"))
            exp = np.asarray(expected[i])
            assert got.shape == exp.shape, f"{op_type} out{i}: shape {got.shape} != expected {exp.shape}"
            assert got.dtype == exp.dtype, f"{op_type} out{i}: dtype {got.dtype} != expected {exp.dtype}"
            if exp.dtype.kind in "fc":
                np.testing.assert_allclose(got, exp, rtol=rtol, atol=atol, err_msg=f"{op_type} out{i}")
            else:
                np.testing.assert_array_equal(got, exp, err_msg=f"{op_type} out{i}")


def rand(*shape, seed=0, dtype=np.float32, low=-1.0, high=1.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=shape).astype(dtype)

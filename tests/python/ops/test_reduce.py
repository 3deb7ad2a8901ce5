"""Reductions and search against onnxruntime: ReduceMean/Sum/Max/Min/Prod (opset 18 form, axes as an input),
ArgMax, TopK, CumSum."""
import functools
import os
import tempfile

import numpy as np
import onnx
import pytest

import op_harness
from op_harness import check_op, make_single_op_model, rand, run_model_with_kiln

I64 = np.int64
I32 = np.int32
REDUCE_OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]


def ints(*v, dtype=I64):
    return np.array(v, dtype=dtype)


def randint(*shape, seed=0, low=-9, high=10, dtype=I64):
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(dtype)


run_invalid = functools.partial(op_harness.run_invalid, opset=18)


# ---------------------------------------------------------------------------------------------------- Reduce*

# (name, input shape, axes or None for omitted, attributes)
REDUCE_CASES = [
    ("last", (2, 3, 4), ints(-1), {}),
    ("first", (2, 3, 4), ints(0), {}),
    ("two_axes", (2, 3, 4, 5), ints(1, 3), {}),
    ("two_axes_nokeep", (2, 3, 4, 5), ints(3, 1), {"keepdims": 0}),
    ("all_omitted", (2, 3, 4), None, {}),
    ("all_omitted_nokeep", (2, 3, 4), None, {"keepdims": 0}),
    ("all_listed", (2, 3, 4), ints(0, 1, 2), {"keepdims": 0}),
    ("empty_axes", (2, 3), np.zeros((0,), I64), {}),
    ("noop_empty_axes", (2, 3), np.zeros((0,), I64), {"noop_with_empty_axes": 1}),
    ("noop_with_axes", (2, 3, 4), ints(1), {"noop_with_empty_axes": 1}),
    ("middle_nokeep", (3, 4, 5), ints(-2), {"keepdims": 0}),
    ("rank1", (7,), ints(0), {"keepdims": 0}),
]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("name,shape,axes,attrs", REDUCE_CASES, ids=[c[0] for c in REDUCE_CASES])
def test_reduce_f32(op, name, shape, axes, attrs):
    x = rand(*shape, low=0.5, high=1.5) if op == "ReduceProd" else rand(*shape)
    check_op(op, [("x", x), ("axes", axes)], attrs, constants=("axes",), opset=18)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean"])
@pytest.mark.parametrize("dtype", [I64, I32])
@pytest.mark.parametrize("axes,keepdims", [(ints(1), 1), (ints(0, -1), 0), (None, 0)])
def test_reduce_int(op, dtype, axes, keepdims):
    x = randint(2, 3, 4, dtype=dtype, low=-3, high=4) if op == "ReduceProd" else randint(2, 3, 4, dtype=dtype)
    check_op(op, [("x", x), ("axes", axes)], {"keepdims": keepdims}, constants=("axes",), opset=18)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_reduce_runtime_axes(op):
    check_op(op, [("x", rand(3, 4, 5)), ("axes", ints(2))], {"keepdims": 1}, opset=18)


def test_reduce_sum_opset13():
    check_op("ReduceSum", [("x", rand(2, 3, 4)), ("axes", ints(1))], {"keepdims": 0}, constants=("axes",), opset=13)


def test_reduce_large_sum():
    check_op("ReduceSum", [("x", rand(4, 100000, low=0, high=1))], {"keepdims": 0}, opset=18)


def test_reduce_bad_axis():
    proc = run_invalid("ReduceSum", [("x", rand(2, 3)), ("axes", ints(2))], constants=("axes",))
    assert proc.returncode != 0
    assert "reducesum_node" in proc.stderr and "axes" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------------- ArgMax

def ties(*shape, seed=0, dtype=np.float32):
    """Small integer values so that ties are common."""
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(dtype)


ARGMAX = [
    ("default", rand(3, 4), {}),
    ("axis1", rand(3, 4, 5), {"axis": 1}),
    ("neg_axis_nokeep", rand(3, 4, 5), {"axis": -1, "keepdims": 0}),
    ("ties_first", ties(4, 6), {"axis": 1}),
    ("ties_last", ties(4, 6), {"axis": 1, "select_last_index": 1}),
    ("ties_last_axis0", ties(5, 3), {"axis": 0, "select_last_index": 1, "keepdims": 0}),
    ("int64", ties(4, 6, dtype=I64), {"axis": -1}),
    ("int32", ties(4, 6, dtype=I32), {"axis": 0, "keepdims": 0}),
    ("rank1", rand(9), {"keepdims": 0}),
]


@pytest.mark.parametrize("name,x,attrs", ARGMAX, ids=[c[0] for c in ARGMAX])
def test_argmax(name, x, attrs):
    check_op("ArgMax", [("x", x)], attrs, opset=13)


# ---------------------------------------------------------------------------------------------------- TopK

TOPK = [
    ("k1", rand(3, 8), 1, {}),
    ("k3", rand(3, 8), 3, {}),
    ("all", rand(2, 5), 5, {}),
    ("k0", rand(2, 5), 0, {}),
    ("axis0", rand(6, 4), 2, {"axis": 0}),
    ("axis_mid", rand(2, 6, 3), 4, {"axis": 1}),
    ("smallest", rand(3, 8), 3, {"largest": 0}),
    ("ties", ties(4, 10), 5, {}),
    ("ties_smallest", ties(4, 10, seed=1), 6, {"largest": 0}),
    ("int64", ties(3, 7, dtype=I64), 3, {}),
    ("int32", randint(3, 7, dtype=I32), 2, {"axis": -1, "largest": 0}),
]


@pytest.mark.parametrize("name,x,k,attrs", TOPK, ids=[c[0] for c in TOPK])
def test_topk(name, x, k, attrs):
    check_op("TopK", [("x", x), ("k", ints(k))], attrs, n_outputs=2, constants=("k",), opset=11)


def test_topk_runtime_k():
    check_op("TopK", [("x", rand(3, 8)), ("k", ints(2))], {}, n_outputs=2, opset=11)


def test_topk_unsorted():
    # sorted=0 leaves the order unspecified: compare the selected sets.
    x, k = rand(4, 9, seed=3), 4
    model = make_single_op_model("TopK", [("x", x), ("k", ints(k))], {"sorted": 0}, 2, ("k",), 11)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        out = run_model_with_kiln(path, {"x": x}, d)
        values, indices = np.load(os.path.join(out, "out0.npy")), np.load(os.path.join(out, "out1.npy"))
    expected = -np.sort(-x, axis=-1)[:, :k]
    np.testing.assert_allclose(-np.sort(-values, axis=-1), expected)
    np.testing.assert_allclose(np.take_along_axis(x, indices, axis=-1), values)


def test_topk_k_too_large():
    proc = run_invalid("TopK", [("x", rand(2, 3)), ("k", ints(4))], n_outputs=2, constants=("k",))
    assert proc.returncode != 0
    assert "topk_node" in proc.stderr and "K=4" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------------- CumSum

CUMSUM = [
    ("axis0", rand(4, 5), 0, {}),
    ("axis1", rand(4, 5), 1, {}),
    ("neg_axis", rand(2, 3, 4), -1, {}),
    ("exclusive", rand(4, 5), 1, {"exclusive": 1}),
    ("reverse", rand(4, 5), 0, {"reverse": 1}),
    ("exclusive_reverse", rand(2, 3, 4), 1, {"exclusive": 1, "reverse": 1}),
    ("int64", randint(3, 6), 1, {}),
    ("int32_reverse", randint(3, 6, dtype=I32), 0, {"reverse": 1}),
]


@pytest.mark.parametrize("name,x,axis,attrs", CUMSUM, ids=[c[0] for c in CUMSUM])
@pytest.mark.parametrize("axis_dtype", [I64, I32])
def test_cumsum(name, x, axis, attrs, axis_dtype):
    check_op("CumSum", [("x", x), ("axis", np.array(axis, axis_dtype))], attrs, constants=("axis",), opset=14)


# ---------------------------------------------------------------------------------------------------- NaN

NAN_X = np.array([[1, np.nan, 2, 0], [np.nan, 0, -1, 3], [4, 4, np.nan, np.nan]], np.float32)
# kiln treats NaN as larger than every number (numpy semantics, as the ONNX reference does): Reduce{Max,Min}
# propagate it and ArgMax selects it. onnxruntime's answers here depend on where the NaN sits, so the ONNX
# reference is the oracle; TopK matches both.
NAN_CASES = [
    ("ReduceMax", [("axes", ints(1))], {"keepdims": 0}, 1, "onnx-ref"),
    ("ReduceMin", [("axes", ints(0))], {"keepdims": 1}, 1, "onnx-ref"),
    ("ArgMax", [], {"axis": 1}, 1, "onnx-ref"),
    ("ArgMax", [], {"axis": 1, "select_last_index": 1}, 1, "onnx-ref"),
    ("TopK", [("k", ints(3))], {}, 2, "ort"),
    ("TopK", [("k", ints(3))], {"largest": 0}, 2, "ort"),
]


@pytest.mark.parametrize("op,extra,attrs,n,ref", NAN_CASES, ids=[f"{c[0]}_{i}" for i, c in enumerate(NAN_CASES)])
def test_nan(op, extra, attrs, n, ref):
    check_op(op, [("x", NAN_X)] + extra, attrs, n_outputs=n, constants=("axes", "k"), opset=18, reference=ref)

"""Data movement and shape arithmetic ops against onnxruntime: Reshape, Flatten, Transpose, Concat, Split, Slice,
Gather, GatherElements, Squeeze, Unsqueeze, Expand, Tile, Pad, Shape, Size, Constant, ConstantOfShape, Range."""
import functools
import os
import tempfile

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import op_harness
from op_harness import check_op, rand, reference_outputs, run_model_with_kiln

I64 = np.int64
I32 = np.int32
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def ints(*v, dtype=I64):
    return np.array(v, dtype=dtype)


def randint(*shape, seed=0, low=-50, high=50, dtype=I64):
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(dtype)


def bools(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=shape).astype(bool)


run_invalid = functools.partial(op_harness.run_invalid, opset=18)


def assert_fails(proc, node, *words):
    assert proc.returncode != 0, proc.stdout
    assert node in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------------- Reshape

RESHAPE = [
    ("basic", rand(2, 3, 4), ints(4, 6), {}),
    ("infer", rand(2, 3, 4), ints(-1, 4), {}),
    ("copy_zero", rand(2, 3, 4), ints(0, -1), {}),
    ("copy_zero_mid", rand(2, 3, 4), ints(2, 0, 2, 2), {}),
    ("to_1d", rand(2, 3, 4), ints(-1), {}),
    ("to_scalar", rand(1, 1), np.zeros((0,), I64), {}),
    ("allowzero", rand(0, 3), ints(3, 0), {"allowzero": 1}),
    ("int64", randint(2, 6), ints(3, 2, 2), {}),
    ("int32", randint(4, 6, dtype=I32), ints(0, 3, 2), {}),
    ("bool", bools(2, 6), ints(12), {}),
]


@pytest.mark.parametrize("name,x,shape,attrs", RESHAPE, ids=[c[0] for c in RESHAPE])
def test_reshape(name, x, shape, attrs):
    check_op("Reshape", [("x", x), ("shape", shape)], attrs, constants=("shape",), opset=14)


def test_reshape_runtime_shape():
    # The shape is a graph input: unknown at build time, known at run time.
    check_op("Reshape", [("x", rand(2, 3, 4)), ("shape", ints(3, -1))], opset=14)


def test_reshape_bad_size():
    proc = run_invalid("Reshape", [("x", rand(2, 3, 4)), ("shape", ints(5, 5))], constants=("shape",), opset=14)
    assert_fails(proc, "reshape_node")


# ---------------------------------------------------------------------------------------------------- Flatten

@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -4])
def test_flatten(axis):
    check_op("Flatten", [("x", rand(2, 3, 4, 5))], {"axis": axis})


def test_flatten_default_int64():
    check_op("Flatten", [("x", randint(2, 3, 4))])


# ---------------------------------------------------------------------------------------------------- Transpose

TRANSPOSE = [
    ("default_2d", rand(3, 5), {}),
    ("default_4d", rand(2, 3, 4, 5), {}),
    ("nchw_nhwc", rand(2, 3, 4, 5), {"perm": [0, 2, 3, 1]}),
    ("identity", rand(2, 3, 4), {"perm": [0, 1, 2]}),
    ("heads", rand(2, 5, 4, 8), {"perm": [0, 2, 1, 3]}),
    ("int64", randint(2, 3, 4), {"perm": [2, 0, 1]}),
    ("bool", bools(3, 4), {}),
    ("rank1", rand(7), {}),
    ("unit_dims", rand(1, 3, 1, 4), {"perm": [3, 2, 0, 1]}),
]


@pytest.mark.parametrize("name,x,attrs", TRANSPOSE, ids=[c[0] for c in TRANSPOSE])
def test_transpose(name, x, attrs):
    check_op("Transpose", [("x", x)], attrs)


def test_transpose_bad_perm():
    assert_fails(run_invalid("Transpose", [("x", rand(2, 3))], {"perm": [0, 0]}), "transpose_node", "perm")


# ---------------------------------------------------------------------------------------------------- Concat

CONCAT = [
    ("axis0", [rand(2, 3), rand(4, 3, seed=1)], 0),
    ("axis1", [rand(2, 3), rand(2, 1, seed=1), rand(2, 5, seed=2)], 1),
    ("neg_axis", [rand(2, 3, 4), rand(2, 3, 2, seed=1)], -1),
    ("middle", [rand(2, 3, 4), rand(2, 1, 4, seed=1)], 1),
    ("single", [rand(2, 3)], 0),
    ("int64", [ints(1, 2), ints(3), ints(4, 5, 6)], 0),
    ("int32", [randint(2, 2, dtype=I32), randint(2, 3, dtype=I32, seed=1)], 1),
    ("empty_part", [rand(0, 3), rand(2, 3, seed=1)], 0),
]


@pytest.mark.parametrize("name,xs,axis", CONCAT, ids=[c[0] for c in CONCAT])
def test_concat(name, xs, axis):
    check_op("Concat", [(f"x{i}", x) for i, x in enumerate(xs)], {"axis": axis})


def test_concat_mismatch():
    proc = run_invalid("Concat", [("a", rand(2, 3)), ("b", rand(3, 4))], {"axis": 0})
    assert_fails(proc, "concat_node")


# ---------------------------------------------------------------------------------------------------- Split

SPLIT = [
    ("split_input", rand(6, 4), ints(2, 3, 1), {"axis": 0}, 3, 18),
    ("split_neg_axis", rand(2, 7), ints(3, 4), {"axis": -1}, 2, 18),
    ("equal_by_outputs", rand(2, 6), None, {"axis": 1}, 3, 13),
    ("num_outputs", rand(6, 2), None, {"num_outputs": 2}, 2, 18),
    ("num_outputs_uneven", rand(7, 2), None, {"num_outputs": 3}, 3, 18),
    ("int64", randint(4, 3), ints(1, 3), {}, 2, 18),
    ("zero_chunk", rand(3, 2), ints(0, 3), {}, 2, 18),
]


@pytest.mark.parametrize("name,x,split,attrs,n,opset", SPLIT, ids=[c[0] for c in SPLIT])
def test_split(name, x, split, attrs, n, opset):
    check_op("Split", [("x", x), ("split", split)], attrs, n_outputs=n, constants=("split",), opset=opset)


def test_split_bad_sum():
    proc = run_invalid("Split", [("x", rand(6, 4)), ("split", ints(2, 2))], {"axis": 0}, n_outputs=2,
                       constants=("split",))
    assert_fails(proc, "split_node")


# ---------------------------------------------------------------------------------------------------- Slice

SLICE = [
    ("basic", rand(5, 6), ints(1, 2), ints(4, 5), None, None),
    ("negative", rand(5, 6), ints(-4, -5), ints(-1, -1), None, None),
    ("axes", rand(3, 5, 6), ints(1), ints(3), ints(2), None),
    ("neg_axes", rand(3, 5, 6), ints(1, 0), ints(4, 2), ints(-2, 0), None),
    ("steps", rand(7, 8), ints(0, 1), ints(7, 8), None, ints(2, 3)),
    ("reverse", rand(4, 5), ints(-1), ints(INT64_MIN), ints(1), ints(-1)),
    ("reverse_step2", rand(9), ints(7), ints(0), None, ints(-2)),
    ("clamp_int64_max", rand(4, 5), ints(1), ints(INT64_MAX), ints(1), None),
    ("clamp_start", rand(4, 5), ints(-100), ints(100), ints(0), None),
    ("empty", rand(4, 5), ints(3), ints(1), ints(0), None),
    ("int32_params", rand(4, 5), ints(1, dtype=I32), ints(3, dtype=I32), ints(1, dtype=I32), None),
    ("int64_data", randint(6, 4), ints(1), ints(5), None, ints(2)),
    ("bool_data", bools(6, 4), ints(0, 1), ints(6, 3), ints(0, 1), None),
]


@pytest.mark.parametrize("name,x,starts,ends,axes,steps", SLICE, ids=[c[0] for c in SLICE])
def test_slice(name, x, starts, ends, axes, steps):
    inputs = [("x", x), ("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps)]
    if steps is None:
        inputs = inputs[:4]
        if axes is None:
            inputs = inputs[:3]
    check_op("Slice", inputs, constants=("starts", "ends", "axes", "steps"), opset=13)


def test_slice_runtime_params():
    check_op("Slice", [("x", rand(5, 6)), ("starts", ints(1)), ("ends", ints(-1)), ("axes", ints(1))], opset=13)


def test_slice_zero_step():
    proc = run_invalid("Slice", [("x", rand(4)), ("s", ints(0)), ("e", ints(4)), ("a", ints(0)), ("t", ints(0))],
                       constants=("s", "e", "a", "t"))
    assert_fails(proc, "slice_node", "steps")


# ---------------------------------------------------------------------------------------------------- Gather

GATHER = [
    ("axis0", rand(5, 4), ints(0, 3, 1), 0),
    ("axis1", rand(3, 5, 4), ints(4, 0), 1),
    ("neg_axis", rand(3, 5, 4), ints(1, 1, 2), -1),
    ("neg_indices", rand(5, 4), ints(-1, -5, 2), 0),
    ("int32_indices", rand(5, 4), ints(2, 0, dtype=I32), 1),
    ("scalar_index", rand(5, 4), np.array(3, I64), 0),
    ("scalar_index_axis1", rand(2, 5, 4), np.array(-2, I64), 1),
    ("2d_indices", rand(6, 3), ints(0, 5, 2, 1).reshape(2, 2), 0),
    ("int64_data", ints(10, 20, 30, 40), ints(3, 0), 0),
    ("shape_pick", ints(2, 3, 4, 5), np.array(1, I64), 0),
    ("embedding", rand(50, 16), randint(2, 7, low=0, high=50), 0),
]


@pytest.mark.parametrize("name,x,idx,axis", GATHER, ids=[c[0] for c in GATHER])
def test_gather(name, x, idx, axis):
    check_op("Gather", [("x", x), ("idx", idx)], {"axis": axis})


def test_gather_out_of_range():
    assert_fails(run_invalid("Gather", [("x", rand(5, 4)), ("idx", ints(5))]), "gather_node", "out of range")


GATHER_ELEMENTS = [
    ("axis0", rand(3, 4), randint(2, 4, low=0, high=3), 0),
    ("axis1", rand(3, 4), randint(3, 6, low=0, high=4), 1),
    ("neg", rand(2, 3, 4), randint(2, 3, 2, low=-4, high=4), -1),
    ("int32_idx", rand(4, 3), randint(4, 3, low=0, high=4, dtype=I32), 0),
    ("int64_data", randint(3, 3), randint(3, 3, low=0, high=3, seed=1), 1),
]


@pytest.mark.parametrize("name,x,idx,axis", GATHER_ELEMENTS, ids=[c[0] for c in GATHER_ELEMENTS])
def test_gather_elements(name, x, idx, axis):
    check_op("GatherElements", [("x", x), ("idx", idx)], {"axis": axis})


# ---------------------------------------------------------------------------------------------------- Squeeze/Unsqueeze

SQUEEZE = [
    ("axes", rand(1, 3, 1, 4), ints(0, 2)),
    ("neg_axes", rand(2, 1, 4, 1), ints(-1, 1)),
    ("all", rand(1, 3, 1, 4, 1), None),
    ("to_scalar", rand(1, 1), None),
    ("int64", randint(1, 5), ints(0)),
]


@pytest.mark.parametrize("name,x,axes", SQUEEZE, ids=[c[0] for c in SQUEEZE])
def test_squeeze(name, x, axes):
    inputs = [("x", x)] + ([("axes", axes)] if axes is not None else [])
    check_op("Squeeze", inputs, constants=("axes",), opset=13)


def test_squeeze_non_unit():
    proc = run_invalid("Squeeze", [("x", rand(2, 3)), ("axes", ints(0))], constants=("axes",))
    assert_fails(proc, "squeeze_node", "squeeze axis 0")


UNSQUEEZE = [
    ("front", rand(3, 4), ints(0)),
    ("back", rand(3, 4), ints(-1)),
    ("two", rand(3, 4), ints(0, 3)),
    ("unsorted", rand(3, 4), ints(3, 0)),
    ("neg_mid", rand(3, 4), ints(-2, 1)),
    ("scalar", np.array(2.5, np.float32), ints(0)),
    ("int64_scalar", np.array(7, I64), ints(0)),
]


@pytest.mark.parametrize("name,x,axes", UNSQUEEZE, ids=[c[0] for c in UNSQUEEZE])
def test_unsqueeze(name, x, axes):
    check_op("Unsqueeze", [("x", x), ("axes", axes)], constants=("axes",), opset=13)


def test_unsqueeze_bad_axis():
    proc = run_invalid("Unsqueeze", [("x", rand(3, 4)), ("axes", ints(5))], constants=("axes",))
    assert_fails(proc, "unsqueeze_node", "axes")


# ---------------------------------------------------------------------------------------------------- Expand/Tile

EXPAND = [
    ("col", rand(3, 1), ints(2, 3, 6)),
    ("same", rand(2, 3), ints(2, 3)),
    ("lower_rank_shape", rand(2, 3, 4), ints(4)),
    ("bidirectional", rand(3, 4), ints(1, 1)),
    ("ones_in_shape", rand(1, 4), ints(5, 1)),
    ("scalar", np.array(1.5, np.float32), ints(2, 2)),
    ("int64", ints(1, 2, 3), ints(2, 3)),
    ("bool", bools(1, 3), ints(4, 3)),
]


@pytest.mark.parametrize("name,x,shape", EXPAND, ids=[c[0] for c in EXPAND])
def test_expand(name, x, shape):
    check_op("Expand", [("x", x), ("shape", shape)], constants=("shape",), opset=13)


def test_expand_incompatible():
    proc = run_invalid("Expand", [("x", rand(3, 4)), ("shape", ints(2, 5))], constants=("shape",))
    assert_fails(proc, "expand_node")


TILE = [
    ("2d", rand(2, 3), ints(2, 2)),
    ("3d", rand(1, 2, 3), ints(3, 1, 2)),
    ("ones", rand(2, 3), ints(1, 1)),
    ("int64", randint(2, 2), ints(1, 3)),
    ("bool", bools(2), ints(3)),
]


@pytest.mark.parametrize("name,x,reps", TILE, ids=[c[0] for c in TILE])
def test_tile(name, x, reps):
    check_op("Tile", [("x", x), ("reps", reps)], constants=("reps",), opset=13)


# ---------------------------------------------------------------------------------------------------- Pad

PAD = [
    ("constant_zero", rand(2, 3), ints(1, 2, 0, 1), None, None, "constant", 18),
    ("constant_value", rand(2, 3), ints(0, 1, 2, 0), np.array(2.5, np.float32), None, "constant", 18),
    ("constant_4d", rand(1, 2, 3, 3), ints(0, 0, 1, 1, 0, 0, 1, 1), None, None, "constant", 18),
    ("negative", rand(4, 5), ints(-1, 2, 1, -2), None, None, "constant", 18),
    ("reflect", rand(3, 4), ints(2, 1, 1, 3), None, None, "reflect", 18),
    ("edge", rand(3, 4), ints(2, 3, 1, 2), None, None, "edge", 18),
    ("wrap", rand(3, 4), ints(1, 2, 2, 3), None, None, "wrap", 19),
    ("axes", rand(2, 3, 4), ints(1, 2), None, ints(-1), "constant", 18),
    ("axes_edge", rand(2, 3, 4), ints(1, 0, 0, 2), None, ints(0, 2), "edge", 18),
    ("int64", randint(2, 3), ints(1, 1, 1, 1), np.array(-7, I64), None, "constant", 18),
    ("int64_reflect", randint(3, 3), ints(0, 2, 0, 2), None, None, "reflect", 18),
]


@pytest.mark.parametrize("name,x,pads,value,axes,mode,opset", PAD, ids=[c[0] for c in PAD])
def test_pad(name, x, pads, value, axes, mode, opset):
    inputs = [("x", x), ("pads", pads), ("value", value), ("axes", axes)]
    if axes is None:
        inputs = inputs[:3] if value is not None else inputs[:2]
    check_op("Pad", inputs, {"mode": mode}, constants=("pads", "value", "axes"), opset=opset)


def test_pad_runtime_pads():
    check_op("Pad", [("x", rand(2, 3)), ("pads", ints(1, 0, 0, 2))], {"mode": "constant"}, opset=18)


def test_pad_bad_mode():
    proc = run_invalid("Pad", [("x", rand(2, 3)), ("pads", ints(1, 1, 1, 1))], {"mode": "mirror"},
                       constants=("pads",))
    assert_fails(proc, "pad_node", "mirror")


def test_pad_wrong_pads_length():
    proc = run_invalid("Pad", [("x", rand(2, 3)), ("pads", ints(1, 1))], constants=("pads",))
    assert_fails(proc, "pad_node", "pads")


# ---------------------------------------------------------------------------------------------------- Shape/Size

SHAPE = [
    ("rank4", rand(2, 3, 4, 5), {}, 13),
    ("scalar", np.array(1.0, np.float32), {}, 13),
    ("start", rand(2, 3, 4, 5), {"start": 1}, 15),
    ("start_end", rand(2, 3, 4, 5), {"start": 1, "end": 3}, 15),
    ("negative", rand(2, 3, 4, 5), {"start": -3, "end": -1}, 15),
    ("clamped", rand(2, 3, 4, 5), {"start": -10, "end": 10}, 15),
    ("empty", rand(2, 3, 4, 5), {"start": 3, "end": 1}, 15),
    ("int64_input", randint(3, 1), {}, 13),
]


@pytest.mark.parametrize("name,x,attrs,opset", SHAPE, ids=[c[0] for c in SHAPE])
def test_shape(name, x, attrs, opset):
    check_op("Shape", [("x", x)], attrs, opset=opset)


@pytest.mark.parametrize("x", [rand(2, 3, 4), randint(5), np.array(3.0, np.float32), rand(0, 3), bools(2, 2)],
                         ids=["f32", "i64", "scalar", "empty", "bool"])
def test_size(x):
    check_op("Size", [("x", x)])


# ---------------------------------------------------------------------------------------------------- Constant

CONSTANT = [
    ("tensor_f32", {"value": numpy_helper.from_array(rand(2, 3), "v")}),
    ("tensor_i64", {"value": numpy_helper.from_array(ints(4, 5, 6), "v")}),
    ("tensor_scalar", {"value": numpy_helper.from_array(np.array(3, np.int32), "v")}),
    ("value_float", {"value_float": 1.25}),
    ("value_floats", {"value_floats": [1.0, -2.5, 3.0]}),
    ("value_int", {"value_int": -7}),
    ("value_ints", {"value_ints": [1, 2, 3, 4]}),
]


@pytest.mark.parametrize("name,attrs", CONSTANT, ids=[c[0] for c in CONSTANT])
def test_constant(name, attrs):
    check_op("Constant", [], attrs, opset=13)


CONSTANT_OF_SHAPE = [
    ("default", ints(2, 3), None),
    ("float", ints(4), np.array([3.5], np.float32)),
    ("int64", ints(2, 1, 2), np.array([-9], I64)),
    ("int32", ints(3), np.array([4], I32)),
    ("bool", ints(2, 2), np.array([True])),
    ("zero_dim", ints(0, 3), np.array([1.0], np.float32)),
    ("scalar", np.zeros((0,), I64), np.array([2.0], np.float32)),
]


@pytest.mark.parametrize("name,shape,value", CONSTANT_OF_SHAPE, ids=[c[0] for c in CONSTANT_OF_SHAPE])
def test_constant_of_shape(name, shape, value):
    attrs = {} if value is None else {"value": numpy_helper.from_array(value, "value")}
    check_op("ConstantOfShape", [("shape", shape)], attrs, constants=("shape",))


def test_constant_of_shape_runtime_shape():
    check_op("ConstantOfShape", [("shape", ints(3, 2))],
             {"value": numpy_helper.from_array(np.array([1], I64), "value")})


# ---------------------------------------------------------------------------------------------------- Range

RANGE = [
    ("f32", np.float32(0.0), np.float32(5.0), np.float32(1.0)),
    ("f32_frac", np.float32(1.0), np.float32(2.0), np.float32(0.3)),
    ("f32_neg", np.float32(3.0), np.float32(-2.0), np.float32(-0.5)),
    ("i64", np.int64(2), np.int64(11), np.int64(3)),
    ("i64_neg", np.int64(10), np.int64(4), np.int64(-2)),
    ("i32", np.int32(-3), np.int32(3), np.int32(1)),
    ("empty", np.int64(5), np.int64(1), np.int64(1)),
]


@pytest.mark.parametrize("name,start,limit,delta", RANGE, ids=[c[0] for c in RANGE])
@pytest.mark.parametrize("const", [True, False], ids=["const", "runtime"])
def test_range(name, start, limit, delta, const):
    inputs = [("start", np.array(start)), ("limit", np.array(limit)), ("delta", np.array(delta))]
    check_op("Range", inputs, constants=("start", "limit", "delta") if const else (), opset=11)


def test_range_zero_delta():
    proc = run_invalid("Range", [("s", np.array(0, I64)), ("l", np.array(3, I64)), ("d", np.array(0, I64))],
                       constants=("s", "l", "d"))
    assert_fails(proc, "range_node", "delta")


# ---------------------------------------------------------------------------------------------------- symbolic dims

def check_symbolic_model(nodes, inputs, feeds, initializers=(), opset=18):
    """Builds a graph whose inputs have symbolic dims (ValueInfo dims given as strings), runs it on kiln and ORT."""
    graph_inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), dims)
                    for n, dims in inputs]
    out = nodes[-1].output[0]
    graph = helper.make_graph(nodes, "symbolic", graph_inputs, [helper.make_empty_tensor_value_info(out)],
                              initializer=[numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    expected = reference_outputs(model, feeds)[0]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        got = np.load(os.path.join(run_model_with_kiln(path, feeds, d), f"{out}.npy"))
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_symbolic_reshape_merges_heads():
    # [batch, seq, 4, 8] -> [0, 0, -1]: the -1 resolves to 32 at build time by cancelling batch and seq.
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")]
    check_symbolic_model(nodes, [("x", ["batch", "seq", 4, 8])], {"x": rand(2, 5, 4, 8)},
                         initializers=[("shape", ints(0, 0, -1))])


def test_symbolic_shape_arithmetic():
    # Shape -> Gather -> Unsqueeze -> Concat -> Reshape, the pattern exporters emit for dynamic batch.
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "i0"], ["b"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"], name="unsq"),
        helper.make_node("Concat", ["b1", "minus1"], ["tgt"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "tgt"], ["flat"], name="reshape"),
        helper.make_node("Transpose", ["flat"], ["y"], name="transpose", perm=[1, 0]),
    ]
    inits = [("i0", np.array(0, I64)), ("ax0", ints(0)), ("minus1", ints(-1))]
    check_symbolic_model(nodes, [("x", ["batch", 3, 4])], {"x": rand(2, 3, 4)}, initializers=inits)


def test_symbolic_slice_flatten_squeeze():
    nodes = [
        helper.make_node("Slice", ["x", "st", "en", "ax"], ["s"], name="slice"),
        helper.make_node("Squeeze", ["s", "sq"], ["q"], name="squeeze"),
        helper.make_node("Flatten", ["q"], ["y"], name="flatten", axis=1),
    ]
    inits = [("st", ints(0, 1)), ("en", ints(INT64_MAX, 2)), ("ax", ints(1, 2)), ("sq", ints(2))]
    check_symbolic_model(nodes, [("x", ["n", "c", 3, 5])], {"x": rand(2, 4, 3, 5)}, initializers=inits)


def test_symbolic_expand_concat_split():
    nodes = [
        helper.make_node("Concat", ["x", "x"], ["c"], name="concat", axis=-1),
        helper.make_node("Split", ["c"], ["a", "b"], name="split", axis=-1, num_outputs=2),
        helper.make_node("Shape", ["a"], ["s"], name="shape"),
        helper.make_node("Expand", ["b", "s"], ["y"], name="expand"),
    ]
    check_symbolic_model(nodes, [("x", ["batch", 3])], {"x": rand(4, 3)})

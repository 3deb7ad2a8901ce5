"""Elementwise ops against onnxruntime (the ONNX reference evaluator where onnxruntime lacks a dtype): arithmetic,
Pow, Min/Max, comparisons, logic, Where, unary math, activations, Clip, Cast, Identity, Dropout."""
import os
import platform
import tempfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from op_harness import check_op, make_single_op_model, rand, reference_outputs, run_kiln

F32, F64, F16 = np.float32, np.float64, np.float16
I64, I32, I8, U8 = np.int64, np.int32, np.int8, np.uint8


def randint(*shape, seed=0, low=-20, high=20, dtype=I64):
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(dtype)


def nonzero(*shape, seed=0, low=-9, high=9, dtype=I64):
    """Random ints without zeros (integer division by zero crashes onnxruntime)."""
    v = randint(*shape, seed=seed, low=low, high=high, dtype=dtype)
    v[v == 0] = 3
    return v


def bools(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 2, size=shape).astype(bool)


def small(*shape, seed=0, dtype=F32):
    """Floats drawn from a few small values, so comparisons see equal elements."""
    return np.random.default_rng(seed).integers(-2, 3, size=shape).astype(dtype) / 2


def run_only_kiln(model, feeds):
    """Runs `model` on kiln; returns (process, outputs list or None)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        args = ["run", path, "--output-dir", os.path.join(d, "out")]
        for name, arr in feeds.items():
            p = os.path.join(d, f"{name}.npy")
            np.save(p, np.asarray(arr))
            args += ["--input", f"{name}={p}"]
        proc = run_kiln(args, check=False)
        outs = None
        if proc.returncode == 0:
            outs = [np.load(os.path.join(d, "out", f"{o.name}.npy")) for o in model.graph.output]
        return proc, outs


def run_op(op_type, inputs, attrs=None, n_outputs=1, constants=(), opset=17):
    model = make_single_op_model(op_type, inputs, attrs, n_outputs, constants, opset)
    feeds = {n: np.asarray(a) for n, a in inputs if a is not None and n not in constants}
    return run_only_kiln(model, feeds)


def assert_fails(proc, node, *words, code=None):
    assert proc.returncode != 0, proc.stdout
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert node in proc.stderr, proc.stderr
    for w in words:
        assert w in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------------------- arithmetic

SHAPES = [
    ("same", (2, 3, 4), (2, 3, 4)),
    ("bias", (2, 3, 4), (4,)),
    ("scalar_rhs", (2, 3, 4), ()),
    ("scalar_lhs", (), (2, 3)),
    ("both_ways", (2, 1, 4), (3, 1)),
    ("nchw_channel", (2, 3, 4, 5), (3, 1, 1)),
    ("outer", (1, 3, 1, 5), (2, 1, 4, 1)),
    ("ones", (1, 1), (1,)),
    ("empty", (0, 3), (3,)),
]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("name,sa,sb", SHAPES, ids=[s[0] for s in SHAPES])
def test_arith_f32(op, name, sa, sb):
    b = rand(*sb, seed=1, low=0.5, high=2.0)
    check_op(op, [("a", rand(*sa)), ("b", b)])


ARITH_DTYPES = [I64, I32, I8, U8, F64]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", ARITH_DTYPES, ids=lambda d: np.dtype(d).name)
def test_arith_dtypes(op, dtype):
    if dtype == U8:
        a, b = randint(3, 4, low=0, high=250, dtype=U8), randint(4, seed=1, low=1, high=250, dtype=U8)
    elif dtype == F64:
        a, b = rand(3, 4, dtype=F64), rand(4, seed=1, low=0.5, high=2, dtype=F64)
    else:
        a, b = randint(3, 4, low=-100, high=100, dtype=dtype), nonzero(4, seed=1, dtype=dtype)
    check_op(op, [("a", a), ("b", b)])


def test_int_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 0, 1], I64)
    b = np.array([2, 2, -2, -2, 5, 3], I64)
    check_op("Div", [("a", a), ("b", b)])


def test_int_overflow_wraps():
    a = np.array([np.iinfo(I32).max, np.iinfo(I32).min, 100000], I32)
    b = np.array([1, -1, 100000], I32)
    for op in ["Add", "Sub", "Mul"]:
        check_op(op, [("a", a), ("b", b)])


@pytest.mark.parametrize("dtype", [I64, I32, I8, U8], ids=lambda d: np.dtype(d).name)
def test_int_div_by_zero_is_zero(dtype):
    # onnxruntime traps (SIGFPE) here; kiln defines x / 0 = 0 for integers.
    a = np.array([7, 0, 1], dtype)
    b = np.array([0, 0, 1], dtype)
    proc, outs = run_op("Div", [("a", a), ("b", b)])
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(outs[0], np.array([0, 0, 1], dtype))


def test_int_min_div_minus_one_wraps():
    a = np.array([np.iinfo(I64).min, np.iinfo(I32).min], I64)
    proc, outs = run_op("Div", [("a", a), ("b", np.array([-1, -1], I64))])
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(outs[0], np.array([np.iinfo(I64).min, -int(np.iinfo(I32).min)], I64))


def test_constant_operand():
    check_op("Mul", [("a", rand(2, 3)), ("b", np.array([2.0, 3.0, 4.0], F32))], constants=("b",))


@pytest.mark.parametrize("op", ["Add", "Div", "Pow", "Equal", "And"])
def test_broadcast_error(op):
    if op == "And":
        a, b = bools(2, 3), bools(4)
    else:
        a, b = rand(2, 3), rand(4)
    proc, _ = run_op(op, [("a", a), ("b", b)])
    assert_fails(proc, f"{op.lower()}_node", "broadcast")


def test_dtype_mismatch_error():
    proc, _ = run_op("Add", [("a", rand(2, 3)), ("b", randint(3))])
    assert_fails(proc, "add_node", "dtype")


# ---------------------------------------------------------------------------------------------------- Pow

POW_SAME = [
    ("f32", rand(2, 3, low=0.1, high=3), rand(2, 3, seed=1, low=-2, high=2)),
    ("f32_bcast", rand(2, 3, 4, low=0.1, high=3), rand(4, seed=1, low=-2, high=2)),
    ("f32_neg_base_int_exp", rand(2, 3), np.array([2.0, 3.0, 0.0], F32)),
    ("f32_scalar_exp", rand(4, 5, low=0.1, high=3), np.array(0.5, F32)),
    ("f64", rand(2, 3, low=0.1, high=3, dtype=F64), rand(3, seed=1, dtype=F64)),
    ("i64", randint(2, 3, low=-5, high=5), randint(2, 3, seed=1, low=0, high=6)),
    ("i32", randint(2, 3, low=-5, high=5, dtype=I32), randint(3, seed=1, low=0, high=6, dtype=I32)),
    ("i64_neg_exp", np.array([2, 1, -1, -1, 3], I64), np.array([-1, -3, -3, -2, 0], I64)),
]


@pytest.mark.parametrize("name,a,b", POW_SAME, ids=[c[0] for c in POW_SAME])
def test_pow(name, a, b):
    check_op("Pow", [("a", a), ("b", b)], rtol=1e-5, atol=1e-6)


POW_MIXED = [
    ("f32_i64", rand(2, 3, low=-3, high=3), randint(3, low=0, high=4)),
    ("f32_i32", rand(2, 3, low=-3, high=3), randint(2, 3, low=-2, high=4, dtype=I32)),
    ("i64_f32", np.array([2, 3, -2, 4], I64), np.array([0.5, 2.0, 3.0, 1.5], F32)),
    ("i32_i64", randint(4, low=-4, high=4, dtype=I32), randint(4, seed=1, low=0, high=5)),
    ("f64_f32", rand(3, low=0.1, high=2, dtype=F64), rand(3, seed=1)),
]


@pytest.mark.parametrize("name,a,b", POW_MIXED, ids=[c[0] for c in POW_MIXED])
def test_pow_mixed_dtypes(name, a, b):
    check_op("Pow", [("a", a), ("b", b)], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- Min / Max

MINMAX = [
    ("one", [rand(2, 3)]),
    ("two_same", [rand(2, 3), rand(2, 3, seed=1)]),
    ("two_bcast", [rand(2, 1, 4), rand(3, 1, seed=1)]),
    ("three", [rand(2, 3, 4), rand(4, seed=1), rand(3, 1, seed=2)]),
    ("four_scalar", [rand(3, 4), rand(seed=1), rand(1, 4, seed=2), rand(3, 4, seed=3)]),
    ("first_smaller", [rand(4), rand(2, 3, 4, seed=1)]),
    ("i64", [randint(2, 3), randint(3, seed=1), randint(2, 1, seed=2)]),
    ("i32", [randint(2, 3, dtype=I32), randint(3, seed=1, dtype=I32)]),
    ("i8", [randint(2, 3, dtype=I8), randint(3, seed=1, dtype=I8)]),
    ("u8", [randint(2, 3, low=0, dtype=U8), randint(3, seed=1, low=0, dtype=U8)]),
    ("f64", [rand(2, 3, dtype=F64), rand(3, seed=1, dtype=F64)]),
    ("nan", [np.array([np.nan, 1.0, 2.0], F32), np.array([1.0, np.nan, 0.0], F32)]),
]


@pytest.mark.parametrize("op", ["Min", "Max"])
@pytest.mark.parametrize("name,arrays", MINMAX, ids=[c[0] for c in MINMAX])
def test_min_max(op, name, arrays):
    check_op(op, [(f"x{i}", a) for i, a in enumerate(arrays)])


def test_max_broadcast_error():
    proc, _ = run_op("Max", [("a", rand(2, 3)), ("b", rand(3)), ("c", rand(2))])
    assert_fails(proc, "max_node", "broadcast")


# ---------------------------------------------------------------------------------------------------- comparisons, logic

CMP_OPS = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]
CMP_CASES = [
    ("f32_same", small(3, 4), small(3, 4, seed=1)),
    ("f32_bcast", small(2, 3, 4), small(3, 1, seed=1)),
    ("f32_scalar", small(5), np.array(0.5, F32)),
    ("f64", small(3, 4, dtype=F64), small(4, seed=1, dtype=F64)),
    ("i64", randint(3, 4, low=-3, high=3), randint(4, seed=1, low=-3, high=3)),
    ("i32", randint(3, 4, low=-3, high=3, dtype=I32), randint(3, 1, seed=1, low=-3, high=3, dtype=I32)),
    ("u8", randint(3, 4, low=0, high=4, dtype=U8), randint(4, seed=1, low=0, high=4, dtype=U8)),
]


@pytest.mark.parametrize("op", CMP_OPS)
@pytest.mark.parametrize("name,a,b", CMP_CASES, ids=[c[0] for c in CMP_CASES])
def test_compare(op, name, a, b):
    check_op(op, [("a", a), ("b", b)])


def test_equal_bool():
    check_op("Equal", [("a", bools(2, 3)), ("b", bools(3, seed=1))])


@pytest.mark.parametrize("op", ["And", "Or"])
@pytest.mark.parametrize("sa,sb", [((2, 3), (2, 3)), ((2, 3, 4), (3, 1)), ((4,), ())])
def test_logic(op, sa, sb):
    check_op(op, [("a", bools(*sa)), ("b", bools(*sb, seed=1))])


@pytest.mark.parametrize("shape", [(2, 3, 4), (), (0, 2)])
def test_not(shape):
    check_op("Not", [("a", bools(*shape))])


# ---------------------------------------------------------------------------------------------------- Where

WHERE = [
    ("same", bools(2, 3), rand(2, 3), rand(2, 3, seed=1), "ort"),
    ("three_way", bools(3, 1), rand(1, 4), rand(2, 1, 1, seed=1), "ort"),
    ("scalar_xy", bools(2, 3), rand(), rand(seed=1), "ort"),
    ("scalar_cond", np.array(True), rand(2, 3), rand(3, seed=1), "ort"),
    ("i64", bools(4, 5), randint(4, 5), randint(5, seed=1), "ort"),
    ("i32", bools(4, 1), randint(4, 5, dtype=I32), randint(1, 5, seed=1, dtype=I32), "ort"),
    ("u8", bools(3), randint(3, low=0, dtype=U8), randint(3, seed=1, low=0, dtype=U8), "ort"),
    ("f64", bools(3), rand(2, 3, dtype=F64), rand(3, seed=1, dtype=F64), "ort"),
    ("bool", bools(2, 3), bools(2, 3, seed=1), bools(3, seed=2), "onnx-ref"),
]


@pytest.mark.parametrize("name,c,x,y,ref", WHERE, ids=[c[0] for c in WHERE])
def test_where(name, c, x, y, ref):
    check_op("Where", [("c", c), ("x", x), ("y", y)], reference=ref)


def test_where_errors():
    proc, _ = run_op("Where", [("c", bools(2, 3)), ("x", rand(2, 3)), ("y", rand(4))])
    assert_fails(proc, "where_node", "broadcast")
    proc, _ = run_op("Where", [("c", bools(3)), ("x", rand(3)), ("y", randint(3))])
    assert_fails(proc, "where_node", "dtype")


# ---------------------------------------------------------------------------------------------------- unary math

WIDE = rand(4, 5, 6, low=-50, high=50)
UNARY_F = [
    ("Sqrt", rand(3, 4, low=0, high=10), {}),
    ("Exp", rand(3, 4, low=-10, high=10), {}),
    ("Log", rand(3, 4, low=0.01, high=100), {}),
    ("Neg", rand(3, 4), {}),
    ("Abs", rand(3, 4), {}),
    ("Reciprocal", rand(3, 4, low=0.1, high=4), {}),
    ("Erf", rand(3, 4, low=-3, high=3), {}),
    ("Tanh", WIDE, {}),
    ("Relu", rand(3, 4), {}),
    ("Sigmoid", WIDE, {}),
    ("Softplus", WIDE, {}),
    ("HardSwish", rand(3, 4, low=-5, high=5), {}),
    ("HardSigmoid", rand(3, 4, low=-5, high=5), {}),
    ("HardSigmoid", rand(3, 4, low=-5, high=5), {"alpha": 0.5, "beta": 0.25}),
    ("LeakyRelu", rand(3, 4), {}),
    ("LeakyRelu", rand(3, 4), {"alpha": 0.2}),
    ("Elu", rand(3, 4, low=-3, high=3), {}),
    ("Elu", rand(3, 4, low=-3, high=3), {"alpha": 0.5}),
    ("Selu", rand(3, 4, low=-3, high=3), {}),
    ("Selu", rand(3, 4, low=-3, high=3), {"alpha": 2.0, "gamma": 0.5}),
]


@pytest.mark.parametrize("op,x,attrs", UNARY_F, ids=[f"{c[0]}-{i}" for i, c in enumerate(UNARY_F)])
def test_unary_f32(op, x, attrs):
    check_op(op, [("x", x)], attrs, rtol=1e-5, atol=1e-6)


# Float64, against onnxruntime where it has a double kernel, else against the ONNX reference evaluator (which
# computes some of these in float32 precision, hence the looser tolerance there).
UNARY_F64 = [
    ("Sqrt", "ort"), ("Exp", "ort"), ("Log", "ort"), ("Neg", "ort"), ("Abs", "ort"), ("Reciprocal", "ort"),
    ("Tanh", "ort"), ("Relu", "ort"), ("Sigmoid", "ort"), ("LeakyRelu", "ort"), ("Erf", "onnx-ref"),
    ("Softplus", "onnx-ref"), ("HardSwish", "onnx-ref"), ("HardSigmoid", "onnx-ref"), ("Elu", "onnx-ref"),
    ("Selu", "onnx-ref"),
]


@pytest.mark.parametrize("op,ref", UNARY_F64, ids=[c[0] for c in UNARY_F64])
def test_unary_f64(op, ref):
    low = 0.01 if op in ("Sqrt", "Log", "Reciprocal") else -4
    tol = 1e-12 if ref == "ort" else 1e-6
    check_op(op, [("x", rand(3, 4, low=low, high=4, dtype=F64))], reference=ref, rtol=tol, atol=tol / 10)


UNARY_INT = [
    ("Neg", I64, "ort"), ("Neg", I32, "ort"), ("Neg", I8, "ort"),
    ("Abs", I64, "ort"), ("Abs", I32, "ort"), ("Abs", I8, "ort"), ("Abs", U8, "ort"),
    ("Relu", I32, "ort"), ("Relu", I8, "ort"), ("Relu", I64, "onnx-ref"),
]


@pytest.mark.parametrize("op,dtype,ref", UNARY_INT, ids=[f"{c[0]}-{np.dtype(c[1]).name}" for c in UNARY_INT])
def test_unary_int(op, dtype, ref):
    x = randint(3, 4, low=0 if dtype == U8 else -100, high=100, dtype=dtype)
    check_op(op, [("x", x)], opset=14, reference=ref)


def test_neg_abs_int_min_wraps():
    x = np.array([np.iinfo(I8).min, -3, 5], I8)
    check_op("Neg", [("x", x)])
    check_op("Abs", [("x", x)])


@pytest.mark.parametrize("shape", [(), (0, 3), (1,), (2, 3, 4, 5)])
def test_unary_shapes(shape):
    check_op("Sigmoid", [("x", rand(*shape))])


def test_unary_int_input_unsupported():
    proc, _ = run_op("Sqrt", [("x", randint(3))])
    assert proc.returncode != 0


# ---------------------------------------------------------------------------------------------------- Gelu

@pytest.mark.parametrize("attrs", [{}, {"approximate": "none"}, {"approximate": "tanh"}])
def test_gelu(attrs):
    check_op("Gelu", [("x", rand(4, 5, low=-5, high=5))], attrs, opset=20, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_f64(approximate):
    check_op("Gelu", [("x", rand(4, 5, low=-5, high=5, dtype=F64))], {"approximate": approximate}, opset=20,
             reference="onnx-ref", rtol=1e-6, atol=1e-7)  # the evaluator's Gelu has float32 precision


def test_gelu_bad_approximate():
    proc, _ = run_op("Gelu", [("x", rand(3))], {"approximate": "fast"}, opset=20)
    assert_fails(proc, "gelu_node", "approximate", "fast")


# ---------------------------------------------------------------------------------------------------- PRelu

PRELU = [
    ("channel", rand(2, 3, 4, 5), rand(3, 1, 1, seed=1)),
    ("scalar", rand(2, 3, 4), rand(seed=1)),
    ("one", rand(2, 3, 4), rand(1, seed=1)),
    ("last_dim", rand(2, 3, 4), rand(4, seed=1)),
    ("full", rand(2, 3), rand(2, 3, seed=1)),
    ("f64", rand(2, 3, dtype=F64), rand(3, seed=1, dtype=F64)),
    ("i32", randint(2, 3, dtype=I32), randint(3, seed=1, dtype=I32)),
    ("i64", randint(2, 3), randint(2, 1, seed=1)),
]


@pytest.mark.parametrize("name,x,slope", PRELU, ids=[c[0] for c in PRELU])
def test_prelu(name, x, slope):
    check_op("PRelu", [("x", x), ("slope", slope)])


def test_prelu_constant_slope():
    check_op("PRelu", [("x", rand(2, 3, 4, 4)), ("slope", rand(3, 1, 1, seed=1))], constants=("slope",))


@pytest.mark.parametrize("sx,ss", [((3,), (2, 3)), ((2, 3), (4,))], ids=["slope_larger", "incompatible"])
def test_prelu_errors(sx, ss):
    proc, _ = run_op("PRelu", [("x", rand(*sx)), ("slope", rand(*ss))])
    assert_fails(proc, "prelu_node", "broadcast")


# ---------------------------------------------------------------------------------------------------- Clip

CLIP = [
    ("none", rand(3, 4), None, None, ()),
    ("both", rand(3, 4), np.array(-0.5, F32), np.array(0.5, F32), ("lo", "hi")),
    ("min_only", rand(3, 4), np.array(-0.2, F32), None, ("lo",)),
    ("max_only", rand(3, 4), None, np.array(0.3, F32), ("hi",)),
    ("min_gt_max", rand(3, 4), np.array(0.6, F32), np.array(0.5, F32), ("lo", "hi")),
    ("runtime_bounds", rand(3, 4), np.array(-0.5, F32), np.array(0.5, F32), ()),
    ("relu6", rand(2, 3, low=-10, high=10), np.array(0.0, F32), np.array(6.0, F32), ("lo", "hi")),
    ("f64", rand(3, 4, dtype=F64), np.array(-0.5, F64), np.array(0.5, F64), ("lo", "hi")),
    ("i64", randint(3, 4), np.array(-5, I64), np.array(5, I64), ("lo", "hi")),
    ("i64_max_only", randint(3, 4), None, np.array(0, I64), ("hi",)),
    ("i32", randint(3, 4, dtype=I32), np.array(-5, I32), np.array(5, I32), ("lo", "hi")),
    ("i8", randint(3, 4, dtype=I8), np.array(-5, I8), np.array(5, I8), ()),
    ("u8", randint(3, 4, low=0, dtype=U8), np.array(3, U8), np.array(10, U8), ("lo", "hi")),
]


@pytest.mark.parametrize("name,x,lo,hi,consts", CLIP, ids=[c[0] for c in CLIP])
def test_clip(name, x, lo, hi, consts):
    inputs = [("x", x), ("lo", lo), ("hi", hi)]
    while inputs[-1][1] is None and len(inputs) > 1:
        inputs.pop()
    check_op("Clip", inputs, constants=consts)


def test_clip_non_scalar_bound_error():
    proc, _ = run_op("Clip", [("x", rand(3, 4)), ("lo", np.array([-0.5, 0.0], F32))])
    assert_fails(proc, "clip_node", "scalar")


# ---------------------------------------------------------------------------------------------------- Cast

T = TensorProto
CAST_FROM_F32 = [T.FLOAT, T.UINT8, T.INT8, T.INT32, T.INT64, T.BOOL, T.FLOAT16, T.DOUBLE]


@pytest.mark.parametrize("to", CAST_FROM_F32, ids=lambda t: T.DataType.Name(t))
def test_cast_from_f32(to):
    x = rand(3, 4, low=-100, high=100)
    x[0, :3] = [0.0, -0.0, 0.5]
    check_op("Cast", [("x", x)], {"to": to})


CAST_OTHER = [
    ("i64_f32", randint(3, 4, low=-1000, high=1000), T.FLOAT),
    ("i64_i32", np.array([1, -1, 2**40 + 5, -(2**33)], I64), T.INT32),
    ("i64_i8", np.array([300, -200, 5, -128], I64), T.INT8),
    ("i64_u8", np.array([300, -1, 5], I64), T.UINT8),
    ("i64_bool", np.array([0, 3, -1], I64), T.BOOL),
    ("i64_f64", randint(5), T.DOUBLE),
    ("i64_f16", randint(5), T.FLOAT16),
    ("i32_i64", randint(3, 4, dtype=I32), T.INT64),
    ("i32_f32", randint(3, 4, dtype=I32), T.FLOAT),
    ("i8_i64", randint(5, dtype=I8), T.INT64),
    ("u8_f32", randint(5, low=0, high=255, dtype=U8), T.FLOAT),
    ("u8_i8", np.array([0, 127, 128, 255], U8), T.INT8),
    ("bool_f32", bools(3, 4), T.FLOAT),
    ("bool_i64", bools(3, 4), T.INT64),
    ("bool_i32", bools(5), T.INT32),
    ("bool_bool", bools(5), T.BOOL),
    ("f64_f32", rand(3, 4, dtype=F64), T.FLOAT),
    ("f64_i64", rand(3, 4, low=-100, high=100, dtype=F64), T.INT64),
    ("f16_f32", rand(3, 4, dtype=F16), T.FLOAT),
    ("f16_i32", rand(3, 4, low=-100, high=100, dtype=F16), T.INT32),
    ("f16_f64", rand(3, 4, dtype=F16), T.DOUBLE),
    ("f32_f16_special", np.array([1.5, 65504, 70000, 1e-8, -1e-5, np.inf, -np.inf], F32), T.FLOAT16),
    ("f32_bool_nan", np.array([np.nan, 0.0, np.inf], F32), T.BOOL),
    ("empty", rand(0, 3), T.INT64),
    ("scalar", np.array(2.7, F32), T.INT32),
]


@pytest.mark.parametrize("name,x,to", CAST_OTHER, ids=[c[0] for c in CAST_OTHER])
def test_cast(name, x, to):
    check_op("Cast", [("x", x)], {"to": to})


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="onnxruntime's result is x86-specific")
@pytest.mark.parametrize("to", [T.INT8, T.UINT8, T.INT32, T.INT64], ids=lambda t: T.DataType.Name(t))
def test_cast_float_out_of_range_like_onnxruntime(to):
    check_op("Cast", [("x", np.array([300.7, -1.7, 2.9, 1e10, -1e20, np.nan], F32))], {"to": to})


@pytest.mark.parametrize("x", [rand(3, 4, low=-1e4, high=1e4), np.array([1.0, 1.00390625, 1.01171875, -3e38], F32)],
                         ids=["random", "ties"])
def test_cast_bfloat16_roundtrip(x):
    # numpy has no bfloat16: check float -> bfloat16 -> float as a two-node model against onnxruntime.
    nodes = [helper.make_node("Cast", ["x"], ["h"], name="to_bf16", to=T.BFLOAT16),
             helper.make_node("Cast", ["h"], ["y"], name="to_f32", to=T.FLOAT)]
    graph = helper.make_graph(nodes, "bf16", [helper.make_tensor_value_info("x", T.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", T.FLOAT, list(x.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    expected = reference_outputs(model, {"x": x})[0]
    proc, outs = run_only_kiln(model, {"x": x})
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(outs[0], expected)


@pytest.mark.parametrize("to", [T.STRING, T.UINT16, T.COMPLEX64])
def test_cast_unsupported_type(to):
    proc, _ = run_op("Cast", [("x", rand(3))], {"to": to})
    assert_fails(proc, "cast_node", "to")


# ---------------------------------------------------------------------------------------------------- Identity, Dropout

@pytest.mark.parametrize("x", [rand(2, 3), randint(4), bools(2, 2), rand(3, dtype=F16), np.array(1.5, F32)],
                         ids=["f32", "i64", "bool", "f16", "scalar"])
def test_identity(x):
    check_op("Identity", [("x", x)])


DROPOUT = [
    ("plain", [("x", rand(2, 3))], 1, ()),
    ("mask", [("x", rand(2, 3))], 2, ()),
    ("ratio", [("x", rand(2, 3)), ("r", np.array(0.3, F32))], 2, ("r",)),
    ("training_false", [("x", rand(2, 3)), ("r", np.array(0.3, F32)), ("t", np.array(False))], 2, ("r", "t")),
    ("omitted_ratio", [("x", rand(2, 3)), ("r", None), ("t", np.array(False))], 1, ("t",)),
    ("training_false_runtime", [("x", rand(2, 3)), ("r", np.array(0.3, F32)), ("t", np.array(False))], 2, ()),
    ("f64", [("x", rand(4, dtype=F64))], 2, ()),
]


@pytest.mark.parametrize("name,inputs,n_out,consts", DROPOUT, ids=[c[0] for c in DROPOUT])
def test_dropout(name, inputs, n_out, consts):
    check_op("Dropout", inputs, n_outputs=n_out, constants=consts, opset=13)


@pytest.mark.parametrize("consts", [("r", "t"), ()], ids=["constant", "runtime_input"])
def test_dropout_training_mode_unsupported(consts):
    inputs = [("x", rand(2, 3)), ("r", np.array(0.5, F32)), ("t", np.array(True))]
    proc, _ = run_op("Dropout", inputs, n_outputs=2, constants=consts, opset=13)
    assert_fails(proc, "dropout_node", "training_mode", code=3)


# ---------------------------------------------------------------------------------------------------- chains

def test_chain_of_elementwise_ops():
    # y = Where(x > 0, Sqrt(x) * 2, Neg(x)) over a broadcast, exercising intermediate buffers.
    nodes = [
        helper.make_node("Greater", ["x", "zero"], ["pos"], name="gt"),
        helper.make_node("Abs", ["x"], ["ax"], name="abs"),
        helper.make_node("Sqrt", ["ax"], ["s"], name="sqrt"),
        helper.make_node("Mul", ["s", "two"], ["s2"], name="mul"),
        helper.make_node("Neg", ["x"], ["nx"], name="neg"),
        helper.make_node("Where", ["pos", "s2", "nx"], ["y"], name="where"),
    ]
    inits = [onnx.numpy_helper.from_array(np.array(0.0, F32), "zero"),
             onnx.numpy_helper.from_array(np.array([2.0, 3.0, 4.0], F32), "two")]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", T.FLOAT, [2, 4, 3])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [2, 4, 3])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rand(2, 4, 3)
    expected = reference_outputs(model, {"x": x})[0]
    proc, outs = run_only_kiln(model, {"x": x})
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(outs[0], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [I64, I32, I8, F32, F64], ids=lambda d: np.dtype(d).name)
def test_mod(dtype, fmod):
    """Mod: fmod=0 takes the divisor's sign (Python %), fmod=1 the dividend's (C fmod); signs of both operands mixed,
    broadcast over the last axis. ViT's torchvision export uses Mod in its shape arithmetic."""
    if np.dtype(dtype).kind == "f":
        a, b = rand(3, 4, low=-5, high=5, dtype=dtype), np.array([1.5, -2.0, 0.75, -3.25], dtype)
        if fmod == 0:  # ONNX asks for fmod=1 on floats; kiln accepts 0 and follows numpy's mod (divisor's sign)
            proc, outs = run_op("Mod", [("a", a), ("b", b)], attrs={"fmod": 0})
            assert proc.returncode == 0, proc.stderr
            np.testing.assert_allclose(outs[0], np.mod(a, b), rtol=1e-6, atol=1e-6)
            return
    else:
        a, b = randint(3, 4, low=-50, high=50, dtype=dtype), np.array([3, -7, 5, -2], dtype)
    check_op("Mod", [("a", a), ("b", b)], attrs={"fmod": fmod})


def test_int_mod_by_zero_is_zero():
    proc, outs = run_op("Mod", [("a", np.array([7, -3, 4], I64)), ("b", np.array([0, 0, -1], I64))])
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(outs[0], np.array([0, 0, 0], I64))

"""Neural-network layers against onnxruntime (or the ONNX reference evaluator where onnxruntime lacks a case):
Conv, ConvTranspose, BatchNormalization, Gemm, MatMul, Einsum, Softmax, LogSoftmax, MaxPool, AveragePool,
GlobalAveragePool, GlobalMaxPool, LayerNormalization, InstanceNormalization, Resize."""
import os
import tempfile

import numpy as np
import onnx
import pytest

from op_harness import check_op, make_single_op_model, rand, reference_outputs, run_invalid, run_model_with_kiln

F64 = np.float64
I64 = np.int64
I32 = np.int32


def ints(*v, dtype=I64):
    return np.array(v, dtype=dtype)


def floats(*v):
    return np.array(v, dtype=np.float32)


def randint(*shape, seed=0, low=-5, high=6, dtype=I64):
    return np.random.default_rng(seed).integers(low, high, size=shape).astype(dtype)




def check_op_symbolic(op_type, inputs, attrs, symbols, constants=(), opset=17, rtol=1e-4, atol=1e-4):
    """check_op with some graph-input dims made symbolic: symbols = {input name: {dim index: symbol}}, so kiln
    infers shapes with unknown dims at build time and concrete ones at run time."""
    model = make_single_op_model(op_type, inputs, attrs, 1, constants, opset)
    for vi in model.graph.input:
        for axis, sym in symbols.get(vi.name, {}).items():
            vi.type.tensor_type.shape.dim[axis].dim_param = sym
    feeds = {n: np.asarray(a) for n, a in inputs if a is not None and n not in constants}
    expected = np.asarray(reference_outputs(model, feeds)[0])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        onnx.save(model, path)
        got = np.load(os.path.join(run_model_with_kiln(path, feeds, d), "out0.npy"))
    assert got.shape == expected.shape, f"{op_type}: shape {got.shape} != expected {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def assert_rejected(proc, *fragments, code=None):
    assert proc.returncode != 0, "kiln accepted an invalid model"
    if code is not None:
        assert proc.returncode == code, f"exit code {proc.returncode}, expected {code}:\n{proc.stderr}"
    for f in fragments:
        assert f in proc.stderr, f"{f!r} not in stderr:\n{proc.stderr}"


# ---------------------------------------------------------------------------------------------------- Conv

# (name, x shape, w shape, with bias, attributes)
CONV_CASES = [
    ("basic", (1, 3, 8, 8), (4, 3, 3, 3), True, {}),
    ("no_bias", (1, 3, 8, 8), (4, 3, 3, 3), False, {}),
    ("pads", (2, 3, 7, 9), (5, 3, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    ("asym_pads", (1, 2, 6, 7), (3, 2, 3, 2), True, {"pads": [0, 2, 1, 1]}),
    ("strides", (1, 3, 11, 10), (4, 3, 3, 3), True, {"strides": [2, 3], "pads": [1, 1, 1, 1]}),
    ("dilations", (1, 2, 10, 10), (3, 2, 3, 3), True, {"dilations": [2, 3], "pads": [2, 1, 2, 1]}),
    ("group2", (1, 4, 6, 6), (6, 2, 3, 3), True, {"group": 2, "pads": [1, 1, 1, 1]}),
    ("depthwise", (2, 6, 9, 9), (6, 1, 3, 3), True, {"group": 6, "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("depthwise_mult", (1, 3, 8, 8), (6, 1, 5, 5), False, {"group": 3, "pads": [2, 2, 2, 2]}),
    ("pointwise", (2, 8, 5, 5), (4, 8, 1, 1), True, {}),
    ("pointwise_stride", (1, 8, 7, 7), (4, 8, 1, 1), True, {"strides": [2, 2]}),
    ("kernel_shape_attr", (1, 3, 8, 8), (4, 3, 3, 3), True, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("same_upper", (1, 3, 7, 8), (4, 3, 3, 4), True, {"auto_pad": "SAME_UPPER"}),
    ("same_lower", (1, 3, 7, 8), (4, 3, 3, 4), True, {"auto_pad": "SAME_LOWER"}),
    ("same_upper_stride", (1, 3, 9, 10), (4, 3, 3, 3), True, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("same_lower_stride", (1, 3, 9, 10), (4, 3, 4, 4), True, {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ("valid", (1, 3, 9, 10), (4, 3, 3, 3), True, {"auto_pad": "VALID", "strides": [2, 2]}),
    ("conv1d", (2, 3, 20), (5, 3, 4), True, {"strides": [2], "pads": [1, 2]}),
    ("conv1d_dilated_group", (1, 4, 16), (4, 2, 3), True, {"dilations": [2], "group": 2}),
    ("conv3d", (1, 2, 5, 6, 7), (3, 2, 3, 3, 3), True, {"pads": [1, 1, 1, 1, 1, 1]}),
    ("conv3d_strided", (1, 2, 6, 6, 6), (4, 2, 2, 3, 2), False, {"strides": [2, 1, 2], "dilations": [1, 2, 1]}),
    ("resnet_stem", (1, 3, 32, 32), (8, 3, 7, 7), True, {"strides": [2, 2], "pads": [3, 3, 3, 3]}),
    ("wide_k", (1, 64, 14, 14), (32, 64, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    # large enough that the column matrix is built in several chunks of output rows
    ("chunked", (1, 16, 300, 128), (8, 16, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    ("chunked_3d", (1, 8, 20, 40, 40), (4, 8, 3, 3, 3), True, {"pads": [1, 1, 1, 1, 1, 1], "strides": [1, 1, 1]}),
]


@pytest.mark.parametrize("name,xs,ws,bias,attrs", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv(name, xs, ws, bias, attrs):
    inputs = [("x", rand(*xs)), ("w", rand(*ws, seed=1))]
    if bias:
        inputs.append(("b", rand(ws[0], seed=2)))
    check_op("Conv", inputs, attrs, constants=("w", "b"), rtol=1e-4, atol=1e-4)


def test_conv_weights_as_input_f64():
    inputs = [("x", rand(1, 3, 6, 6, dtype=F64)), ("w", rand(4, 3, 3, 3, seed=1, dtype=F64)),
              ("b", rand(4, seed=2, dtype=F64))]
    check_op("Conv", inputs, {"pads": [1, 0, 1, 0], "strides": [1, 2]}, rtol=1e-10, atol=1e-10,
             reference="onnx-ref")


def test_conv_channel_mismatch_is_rejected():
    proc = run_invalid("Conv", [("x", rand(1, 4, 6, 6)), ("w", rand(2, 3, 3, 3))], constants=("w",))
    assert_rejected(proc, "conv_node")


def test_conv_bad_auto_pad_is_rejected():
    proc = run_invalid("Conv", [("x", rand(1, 3, 6, 6)), ("w", rand(2, 3, 3, 3))], {"auto_pad": "SAME"},
                       constants=("w",))
    assert_rejected(proc, "conv_node", "auto_pad")


def test_conv_kernel_larger_than_input_is_rejected():
    proc = run_invalid("Conv", [("x", rand(1, 3, 2, 2)), ("w", rand(2, 3, 3, 3))], constants=("w",))
    assert_rejected(proc, "conv_node")


# ---------------------------------------------------------------------------------------------------- ConvTranspose

# (name, x shape, w shape, with bias, attributes, reference)
CONVT_CASES = [
    ("basic", (1, 3, 5, 5), (3, 4, 3, 3), True, {}, "ort"),
    ("no_bias", (2, 2, 4, 5), (2, 3, 3, 2), False, {}, "ort"),
    ("strides", (1, 3, 4, 5), (3, 2, 3, 3), True, {"strides": [2, 3]}, "ort"),
    ("pads", (1, 3, 5, 5), (3, 2, 4, 4), True, {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "ort"),
    ("asym_pads", (1, 2, 5, 6), (2, 2, 3, 3), True, {"strides": [2, 2], "pads": [0, 1, 2, 1]}, "ort"),
    ("output_padding", (1, 3, 4, 4), (3, 2, 3, 3), True, {"strides": [2, 2], "output_padding": [1, 0]}, "ort"),
    ("output_shape", (1, 3, 4, 4), (3, 2, 3, 3), True, {"strides": [2, 2], "output_shape": [9, 10]}, "ort"),
    ("output_shape_odd", (1, 2, 3, 3), (2, 2, 3, 3), False, {"strides": [2, 2], "output_shape": [6, 6]}, "ort"),
    ("dilations", (1, 2, 4, 4), (2, 3, 3, 2), True, {"dilations": [2, 3]}, "ort"),
    ("group2", (1, 4, 4, 4), (4, 3, 3, 3), True, {"group": 2, "strides": [2, 2]}, "ort"),
    ("depthwise", (1, 3, 5, 5), (3, 1, 3, 3), True, {"group": 3, "pads": [1, 1, 1, 1]}, "ort"),
    ("same_upper", (1, 2, 4, 5), (2, 3, 3, 3), True, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, "ort"),
    ("same_lower", (1, 2, 4, 5), (2, 3, 3, 3), True, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, "ort"),
    ("same_upper_even_k", (1, 2, 4, 4), (2, 2, 4, 4), False, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, "ort"),
    ("convt1d", (2, 3, 7), (3, 2, 4), True, {"strides": [3], "pads": [1, 0]}, "ort"),
    ("convt3d", (1, 2, 3, 4, 3), (2, 3, 2, 3, 2), True, {"strides": [2, 1, 2]}, "ort"),
    ("unet_up", (1, 16, 8, 8), (16, 8, 2, 2), True, {"strides": [2, 2]}, "ort"),
    ("chunked", (1, 4, 300, 64), (4, 16, 4, 4), True, {"strides": [2, 2], "pads": [1, 1, 1, 1]}, "ort"),
]


@pytest.mark.parametrize("name,xs,ws,bias,attrs,ref", CONVT_CASES, ids=[c[0] for c in CONVT_CASES])
def test_conv_transpose(name, xs, ws, bias, attrs, ref):
    inputs = [("x", rand(*xs)), ("w", rand(*ws, seed=1))]
    if bias:
        inputs.append(("b", rand(ws[1] * attrs.get("group", 1), seed=2)))
    check_op("ConvTranspose", inputs, attrs, constants=("w", "b"), rtol=1e-4, atol=1e-4, reference=ref)


def test_conv_transpose_channel_mismatch_is_rejected():
    proc = run_invalid("ConvTranspose", [("x", rand(1, 4, 3, 3)), ("w", rand(3, 2, 3, 3))], constants=("w",))
    assert_rejected(proc, "convtranspose_node")


# ---------------------------------------------------------------------------------------------------- BatchNorm


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (1, 4, 6), (1, 2, 3, 2, 2)])
@pytest.mark.parametrize("attrs", [{}, {"epsilon": 1e-2}])
def test_batch_norm(shape, attrs):
    c = shape[1]
    inputs = [("x", rand(*shape)), ("scale", rand(c, seed=1)), ("b", rand(c, seed=2)), ("mean", rand(c, seed=3)),
              ("var", rand(c, seed=4, low=0.1, high=2.0))]
    check_op("BatchNormalization", inputs, attrs, constants=("scale", "b", "mean", "var"), rtol=1e-5, atol=1e-5)


def test_batch_norm_f64_runtime_params():
    inputs = [("x", rand(2, 3, 4, dtype=F64)), ("scale", rand(3, seed=1, dtype=F64)), ("b", rand(3, seed=2, dtype=F64)),
              ("mean", rand(3, seed=3, dtype=F64)), ("var", rand(3, seed=4, low=0.1, high=2.0, dtype=F64))]
    check_op("BatchNormalization", inputs, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------------- Gemm

# (name, A shape, B shape, C shape or None, attributes)
GEMM_CASES = [
    ("plain", (4, 5), (5, 6), None, {}),
    ("bias_row", (4, 5), (5, 6), (6,), {}),
    ("bias_1xn", (4, 5), (5, 6), (1, 6), {}),
    ("bias_mx1", (4, 5), (5, 6), (4, 1), {}),
    ("bias_full", (4, 5), (5, 6), (4, 6), {"alpha": 0.5, "beta": 2.0}),
    ("bias_scalar", (4, 5), (5, 6), (), {"beta": -1.0}),
    ("bias_1x1", (4, 5), (5, 6), (1, 1), {}),
    ("transA", (5, 4), (5, 6), (6,), {"transA": 1}),
    ("transB", (4, 5), (6, 5), (6,), {"transB": 1}),
    ("transAB", (5, 4), (6, 5), (4, 6), {"transA": 1, "transB": 1, "alpha": 1.5}),
    ("fc_layer", (1, 512), (100, 512), (100,), {"transB": 1}),
    ("large", (67, 300), (300, 129), (129,), {"alpha": 0.25}),
    ("beta_zero", (3, 4), (4, 2), (3, 2), {"beta": 0.0}),
]


@pytest.mark.parametrize("name,as_,bs,cs,attrs", GEMM_CASES, ids=[c[0] for c in GEMM_CASES])
def test_gemm(name, as_, bs, cs, attrs):
    inputs = [("a", rand(*as_)), ("b", rand(*bs, seed=1))]
    if cs is not None:
        inputs.append(("c", rand(*cs, seed=2)))
    check_op("Gemm", inputs, attrs, constants=("b",), rtol=1e-4, atol=1e-4)


def test_gemm_f64():
    inputs = [("a", rand(3, 4, dtype=F64)), ("b", rand(5, 4, seed=1, dtype=F64)), ("c", rand(5, seed=2, dtype=F64))]
    check_op("Gemm", inputs, {"transB": 1, "alpha": 2.0}, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [I32, I64])
def test_gemm_int(dtype):
    inputs = [("a", randint(3, 4, dtype=dtype)), ("b", randint(4, 5, seed=1, dtype=dtype)),
              ("c", randint(5, seed=2, dtype=dtype))]
    check_op("Gemm", inputs, {}, reference="onnx-ref")


def test_gemm_inner_mismatch_is_rejected():
    proc = run_invalid("Gemm", [("a", rand(3, 4)), ("b", rand(5, 6))], constants=("b",))
    assert_rejected(proc, "gemm_node")


def test_gemm_bad_bias_is_rejected():
    proc = run_invalid("Gemm", [("a", rand(3, 4)), ("b", rand(4, 6)), ("c", rand(2, 6))], constants=("b", "c"))
    assert_rejected(proc, "gemm_node")


# ---------------------------------------------------------------------------------------------------- MatMul

MATMUL_CASES = [
    ("2d", (4, 5), (5, 6)),
    ("vec_mat", (5,), (5, 6)),
    ("mat_vec", (4, 5), (5,)),
    ("vec_vec", (5,), (5,)),
    ("batched_2d", (3, 4, 5), (5, 6)),
    ("2d_batched", (4, 5), (3, 5, 6)),
    ("batched", (3, 4, 5), (3, 5, 6)),
    ("broadcast_batch", (2, 1, 4, 5), (3, 5, 6)),
    ("broadcast_both", (2, 1, 4, 5), (1, 3, 5, 6)),
    ("vec_batched", (5,), (2, 5, 6)),
    ("batched_vec", (2, 3, 4, 5), (5,)),
    ("attention_scores", (2, 4, 16, 8), (2, 4, 8, 16)),
    ("bert_ffn", (1, 128, 64), (64, 256)),
    ("row_vector", (1, 300), (300, 70)),
    ("two_rows", (2, 300), (300, 70)),
]


@pytest.mark.parametrize("name,as_,bs", MATMUL_CASES, ids=[c[0] for c in MATMUL_CASES])
def test_matmul(name, as_, bs):
    check_op("MatMul", [("a", rand(*as_)), ("b", rand(*bs, seed=1))], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [I32, I64, F64])
def test_matmul_dtypes(dtype):
    if dtype == F64:
        a, b = rand(2, 3, 4, dtype=F64), rand(4, 5, seed=1, dtype=F64)
    else:
        a, b = randint(2, 3, 4, dtype=dtype), randint(4, 5, seed=1, dtype=dtype)
    check_op("MatMul", [("a", a), ("b", b)], rtol=1e-10, atol=1e-10)


def test_matmul_weight_constant():
    check_op("MatMul", [("a", rand(2, 7, 9)), ("b", rand(9, 3, seed=1))], constants=("b",), rtol=1e-5, atol=1e-5)


def test_matmul_inner_mismatch_is_rejected():
    proc = run_invalid("MatMul", [("a", rand(3, 4)), ("b", rand(5, 6))])
    assert_rejected(proc, "matmul_node")


def test_matmul_batch_mismatch_is_rejected():
    proc = run_invalid("MatMul", [("a", rand(2, 3, 4)), ("b", rand(3, 4, 5))])
    assert_rejected(proc, "matmul_node")


# ---------------------------------------------------------------------------------------------------- Einsum

# (equation, input shapes)
EINSUM_CASES = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhid,bhjd->bhij", [(2, 3, 5, 8), (2, 3, 6, 8)]),
    ("bhij,bhjd->bhid", [(2, 3, 5, 6), (2, 3, 6, 8)]),
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("bid,jd->bij", [(2, 3, 4), (5, 4)]),
    ("ij,kj->ik", [(3, 4), (5, 4)]),
    ("ji,jk->ik", [(4, 3), (4, 5)]),
    ("bij,bkj->bki", [(2, 3, 4), (2, 5, 4)]),
    ("i,i->", [(6,), (6,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("bi,bi->b", [(3, 5), (3, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4, 5), (2, 3, 5, 6)]),
    ("bnd,bmd->bnm", [(1, 7, 16), (1, 9, 16)]),
    ("ij->ji", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("bij->bji", [(2, 3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("ij,jk->kj", [(3, 4), (4, 5)]),
    ("abc,cd->abd", [(2, 3, 4), (4, 5)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(EINSUM_CASES)])
def test_einsum(eq, shapes):
    inputs = [(f"x{i}", rand(*s, seed=i)) for i, s in enumerate(shapes)]
    check_op("Einsum", inputs, {"equation": eq}, rtol=1e-4, atol=1e-4)


def test_einsum_ellipsis_broadcast():
    # onnxruntime rejects ellipses of different ranks; numpy (the ONNX reference) broadcasts them.
    inputs = [("x0", rand(2, 1, 4, 5)), ("x1", rand(3, 5, 6, seed=1))]
    check_op("Einsum", inputs, {"equation": "...ij,...jk->...ik"}, rtol=1e-4, atol=1e-4, reference="onnx-ref")


@pytest.mark.parametrize("dtype", [I32, I64])
def test_einsum_int(dtype):
    inputs = [("x0", randint(2, 3, 4, dtype=dtype)), ("x1", randint(2, 4, 5, seed=1, dtype=dtype))]
    check_op("Einsum", inputs, {"equation": "bij,bjk->bik"})


def test_einsum_wrong_term_count_is_rejected():
    proc = run_invalid("Einsum", [("x0", rand(2, 3)), ("x1", rand(3, 4))], {"equation": "ij->ij"})
    assert_rejected(proc, "einsum_node", "ij->ij")


def test_einsum_extent_mismatch_is_rejected():
    proc = run_invalid("Einsum", [("x0", rand(2, 3)), ("x1", rand(4, 5))], {"equation": "ij,jk->ik"})
    assert_rejected(proc, "einsum_node", "ij,jk->ik")


# ---------------------------------------------------------------------------------------------------- Softmax


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((3, 7), None), ((2, 3, 4), -1), ((2, 3, 4), 0), ((2, 3, 4), 1),
                                        ((2, 3, 4), -2), ((10,), 0), ((2, 3, 4, 5), 2)])
def test_softmax(op, shape, axis):
    attrs = {} if axis is None else {"axis": axis}
    check_op(op, [("x", rand(*shape, low=-5, high=5))], attrs, opset=13)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_is_stable(op):
    x = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.5, -999.0]], dtype=np.float32)
    check_op(op, [("x", x)], {"axis": 1}, opset=13)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_f64(op):
    check_op(op, [("x", rand(3, 5, dtype=F64))], {"axis": 0}, opset=13, rtol=1e-10, atol=1e-10)


def test_softmax_bad_axis_is_rejected():
    proc = run_invalid("Softmax", [("x", rand(2, 3))], {"axis": 2}, opset=13)
    assert_rejected(proc, "softmax_node", "axis")


# ---------------------------------------------------------------------------------------------------- pools

# (name, x shape, attributes, reference)
MAXPOOL_CASES = [
    ("basic", (1, 3, 8, 8), {"kernel_shape": [2, 2]}, "ort"),
    ("strided", (2, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2]}, "ort"),
    ("pads", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "ort"),
    ("asym_pads", (1, 2, 6, 7), {"kernel_shape": [3, 2], "pads": [0, 1, 2, 1]}, "ort"),
    ("resnet", (1, 4, 16, 16), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "ort"),
    ("ceil_mode", (1, 2, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, "ort"),
    ("ceil_mode_pads", (1, 2, 7, 7), {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                      "ceil_mode": 1}, "ort"),
    ("dilations", (1, 2, 9, 9), {"kernel_shape": [2, 3], "dilations": [2, 2]}, "ort"),
    ("same_upper", (1, 2, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, "ort"),
    ("same_lower", (1, 2, 7, 8), {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"}, "ort"),
    ("valid", (1, 2, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}, "ort"),
    ("pool1d", (2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, "ort"),
    ("pool3d", (1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2]}, "ort"),
    ("global_like", (1, 3, 5, 5), {"kernel_shape": [5, 5]}, "ort"),
]


@pytest.mark.parametrize("name,xs,attrs,ref", MAXPOOL_CASES, ids=[c[0] for c in MAXPOOL_CASES])
def test_maxpool(name, xs, attrs, ref):
    check_op("MaxPool", [("x", rand(*xs))], attrs, reference=ref)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_maxpool_int8(dtype):
    x = randint(1, 2, 6, 6, low=0 if dtype == np.uint8 else -100, high=100, dtype=dtype)
    check_op("MaxPool", [("x", x)], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]})


AVGPOOL_CASES = [
    ("basic", (1, 3, 8, 8), {"kernel_shape": [2, 2]}, "ort"),
    ("strided", (2, 3, 9, 9), {"kernel_shape": [3, 3], "strides": [2, 2]}, "ort"),
    ("pads_exclude", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, "ort"),
    ("pads_include", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                    "count_include_pad": 1}, "ort"),
    ("asym_pads_include", (1, 2, 6, 7), {"kernel_shape": [3, 2], "pads": [0, 1, 2, 1], "count_include_pad": 1},
     "ort"),
    ("ceil_mode", (1, 2, 8, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, "ort"),
    ("ceil_mode_pads_include", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                              "ceil_mode": 1, "count_include_pad": 1}, "ort"),
    ("same_upper", (1, 2, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, "ort"),
    ("same_lower_include", (1, 2, 7, 8), {"kernel_shape": [3, 3], "auto_pad": "SAME_LOWER",
                                          "count_include_pad": 1}, "ort"),
    ("valid", (1, 2, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}, "ort"),
    ("pool1d", (2, 3, 11), {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, "ort"),
    ("pool3d", (1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [1, 1, 0, 0, 1, 1]},
     "ort"),
    ("dilations", (1, 2, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 3]}, "onnx-ref"),
]


@pytest.mark.parametrize("name,xs,attrs,ref", AVGPOOL_CASES, ids=[c[0] for c in AVGPOOL_CASES])
def test_avgpool(name, xs, attrs, ref):
    check_op("AveragePool", [("x", rand(*xs))], attrs, reference=ref, opset=19 if "dilations" in attrs else 17)


def test_pool_missing_kernel_shape_is_rejected():
    proc = run_invalid("MaxPool", [("x", rand(1, 2, 4, 4))])
    assert_rejected(proc, "maxpool_node", "kernel_shape")


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(1, 3, 7, 7), (2, 4, 5), (1, 2, 3, 4, 5)])
def test_global_pool(op, shape):
    check_op(op, [("x", rand(*shape))])


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_f64(op):
    check_op(op, [("x", rand(2, 3, 4, 4, dtype=F64))], rtol=1e-10, atol=1e-10, reference="onnx-ref")


# ---------------------------------------------------------------------------------------------------- norms

# (x shape, scale shape, bias shape or None, attributes)
LAYERNORM_CASES = [
    ((2, 5, 16), (16,), (16,), {}),
    ((2, 5, 16), (16,), None, {}),
    ((2, 5, 16), (5, 16), (5, 16), {"axis": 1}),
    ((2, 5, 16), (5, 16), (5, 16), {"axis": -2, "epsilon": 1e-3}),
    ((3, 4), (4,), (4,), {"axis": -1}),
    ((2, 3, 4, 5), (3, 4, 5), (3, 4, 5), {"axis": 1}),
    ((2, 5, 16), (1,), (16,), {}),
]


@pytest.mark.parametrize("xs,ss,bs,attrs", LAYERNORM_CASES)
def test_layer_norm(xs, ss, bs, attrs):
    inputs = [("x", rand(*xs)), ("scale", rand(*ss, seed=1))]
    if bs is not None:
        inputs.append(("b", rand(*bs, seed=2)))
    check_op("LayerNormalization", inputs, attrs, constants=("scale", "b"), rtol=1e-4, atol=1e-5)


def test_layer_norm_f64():
    inputs = [("x", rand(2, 3, 8, dtype=F64)), ("scale", rand(8, seed=1, dtype=F64)), ("b", rand(8, seed=2, dtype=F64))]
    check_op("LayerNormalization", inputs, {}, rtol=1e-9, atol=1e-9, reference="onnx-ref")


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 4, 10), (2, 2, 3, 3, 3)])
@pytest.mark.parametrize("attrs", [{}, {"epsilon": 1e-2}])
def test_instance_norm(shape, attrs):
    c = shape[1]
    inputs = [("x", rand(*shape)), ("scale", rand(c, seed=1)), ("b", rand(c, seed=2))]
    check_op("InstanceNormalization", inputs, attrs, constants=("scale", "b"), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- Resize

# (name, x shape, scales or None, sizes or None, attributes, reference)
RESIZE_CASES = [
    ("nearest_up2", (1, 2, 3, 4), floats(1, 1, 2, 2), None, {}, "ort"),
    ("nearest_down", (1, 2, 8, 9), floats(1, 1, 0.5, 0.5), None, {}, "ort"),
    ("nearest_odd", (1, 1, 5, 5), floats(1, 1, 1.7, 2.3), None, {}, "ort"),
    ("nearest_asym_floor", (1, 2, 3, 4), floats(1, 1, 2, 3),
     None, {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}, "ort"),
    ("nearest_asym_ceil", (1, 2, 3, 4), floats(1, 1, 1.5, 2.5),
     None, {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "ceil"}, "ort"),
    ("nearest_prefer_ceil", (1, 1, 4, 4), floats(1, 1, 0.5, 1.5),
     None, {"nearest_mode": "round_prefer_ceil"}, "ort"),
    ("nearest_align_corners", (1, 1, 4, 5), None, ints(1, 1, 7, 9),
     {"coordinate_transformation_mode": "align_corners"}, "ort"),
    ("nearest_tf_half_pixel", (1, 1, 4, 5), None, ints(1, 1, 7, 9),
     {"coordinate_transformation_mode": "tf_half_pixel_for_nn"}, "ort"),
    ("nearest_sizes", (2, 3, 5, 6), None, ints(2, 3, 8, 3), {}, "ort"),
    ("nearest_3d", (1, 2, 3), floats(1, 1, 3), None, {}, "ort"),
    ("linear_up2", (1, 2, 3, 4), floats(1, 1, 2, 2), None, {"mode": "linear"}, "ort"),
    ("linear_down", (1, 2, 8, 9), floats(1, 1, 0.5, 0.6), None, {"mode": "linear"}, "ort"),
    ("linear_align_corners", (1, 2, 4, 5), None, ints(1, 2, 7, 3),
     {"mode": "linear", "coordinate_transformation_mode": "align_corners"}, "ort"),
    ("linear_asymmetric", (1, 2, 4, 5), floats(1, 1, 2.5, 1.5),
     None, {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}, "ort"),
    ("linear_pytorch", (1, 2, 4, 5), None, ints(1, 2, 1, 9),
     {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}, "ort"),
    ("linear_half_pixel_symmetric", (1, 2, 4, 5), floats(1, 1, 1.7, 2.2),
     None, {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}, "onnx-ref"),
    ("linear_2d", (4, 5), floats(2, 1.5), None, {"mode": "linear"}, "ort"),
    ("linear_trilinear", (1, 1, 3, 4, 5), floats(1, 1, 2, 1.5, 0.8), None, {"mode": "linear"}, "ort"),
    ("linear_nd_ref", (2, 3, 4), floats(1.5, 2, 0.75), None, {"mode": "linear"}, "onnx-ref"),
    ("linear_axes", (1, 2, 4, 5), floats(2, 3), None, {"mode": "linear", "axes": [2, 3]}, "ort"),
    ("nearest_axes_neg", (1, 2, 4, 5), None, ints(8, 3), {"axes": [-2, -1]}, "ort"),
    ("not_larger", (1, 2, 4, 6), None, ints(1, 2, 8, 8), {"keep_aspect_ratio_policy": "not_larger"}, "ort"),
    ("not_smaller", (1, 2, 4, 6), None, ints(8, 8),
     {"keep_aspect_ratio_policy": "not_smaller", "mode": "linear", "axes": [2, 3]}, "ort"),
]


@pytest.mark.parametrize("name,xs,scales,sizes,attrs,ref", RESIZE_CASES, ids=[c[0] for c in RESIZE_CASES])
def test_resize(name, xs, scales, sizes, attrs, ref):
    inputs = [("x", rand(*xs)), ("roi", None), ("scales", scales), ("sizes", sizes)]
    opset = 18 if ("axes" in attrs or "keep_aspect_ratio_policy" in attrs) else 13
    if attrs.get("coordinate_transformation_mode") == "half_pixel_symmetric":
        opset = 19
    check_op("Resize", inputs, attrs, constants=("scales", "sizes"), opset=opset, rtol=1e-5, atol=1e-5,
             reference=ref)


def test_resize_scales_at_run_time():
    inputs = [("x", rand(1, 2, 3, 4)), ("roi", None), ("scales", floats(1, 1, 2, 1.5))]
    check_op("Resize", inputs, {"mode": "linear"}, opset=13, rtol=1e-5, atol=1e-5)


def test_resize_empty_scales_with_sizes():
    inputs = [("x", rand(1, 2, 3, 4)), ("roi", np.zeros((0,), np.float32)), ("scales", np.zeros((0,), np.float32)),
              ("sizes", ints(1, 2, 5, 7))]
    check_op("Resize", inputs, {}, constants=("roi", "scales", "sizes"), opset=13)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_tf_crop_and_resize(mode):
    inputs = [("x", rand(1, 1, 5, 6)), ("roi", floats(0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2)), ("scales", None),
              ("sizes", ints(1, 1, 4, 7))]
    attrs = {"mode": mode, "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 2.5}
    check_op("Resize", inputs, attrs, constants=("roi", "sizes"), opset=13, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [I64, np.uint8])
def test_resize_nearest_int(dtype):
    inputs = [("x", randint(1, 1, 3, 3, low=0, high=50, dtype=dtype)), ("roi", None), ("scales", floats(1, 1, 2, 2))]
    check_op("Resize", inputs, {}, constants=("scales",), opset=13, reference="onnx-ref")


def test_resize_cubic_is_unsupported():
    inputs = [("x", rand(1, 1, 3, 3)), ("roi", None), ("scales", floats(1, 1, 2, 2))]
    proc = run_invalid("Resize", inputs, {"mode": "cubic"}, constants=("scales",), opset=13)
    assert_rejected(proc, "resize_node", "cubic", code=3)


def test_resize_scales_and_sizes_is_rejected():
    inputs = [("x", rand(1, 1, 3, 3)), ("roi", None), ("scales", floats(1, 1, 2, 2)), ("sizes", ints(1, 1, 6, 6))]
    proc = run_invalid("Resize", inputs, {}, constants=("scales", "sizes"), opset=13)
    assert_rejected(proc, "resize_node")


# ---------------------------------------------------------------------------------------------------- symbolic dims

SYMBOLIC_CASES = [
    ("conv", "Conv", [("x", rand(2, 3, 9, 8)), ("w", rand(4, 3, 3, 3, seed=1))],
     {"strides": [2, 2], "pads": [1, 1, 1, 1]}, {"x": {0: "N", 2: "H", 3: "W"}}, ("w",), 17),
    ("conv_same", "Conv", [("x", rand(1, 3, 9, 8)), ("w", rand(4, 3, 3, 3, seed=1))],
     {"strides": [2, 2], "auto_pad": "SAME_UPPER"}, {"x": {2: "H", 3: "W"}}, ("w",), 17),
    ("conv_weights_unknown", "Conv", [("x", rand(1, 3, 9, 8)), ("w", rand(4, 3, 3, 3, seed=1))],
     {}, {"w": {0: "M", 2: "KH", 3: "KW"}}, (), 17),
    ("conv_transpose", "ConvTranspose", [("x", rand(2, 3, 4, 5)), ("w", rand(3, 2, 3, 3, seed=1))],
     {"strides": [2, 2]}, {"x": {0: "N", 2: "H"}}, ("w",), 17),
    ("maxpool", "MaxPool", [("x", rand(2, 3, 9, 8))], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
     {"x": {0: "N", 2: "H", 3: "W"}}, (), 17),
    ("global_pool", "GlobalAveragePool", [("x", rand(2, 3, 5, 4))], {}, {"x": {0: "N", 2: "H"}}, (), 17),
    ("gemm", "Gemm", [("a", rand(5, 4)), ("b", rand(6, 4, seed=1)), ("c", rand(6, seed=2))], {"transB": 1},
     {"a": {0: "M"}}, ("b", "c"), 17),
    ("matmul", "MatMul", [("a", rand(2, 7, 8)), ("b", rand(8, 5, seed=1))], {}, {"a": {0: "B", 1: "S"}}, ("b",), 17),
    ("matmul_both", "MatMul", [("a", rand(2, 7, 8)), ("b", rand(2, 8, 5, seed=1))], {},
     {"a": {0: "B", 1: "S"}, "b": {0: "B"}}, (), 17),
    ("einsum", "Einsum", [("x0", rand(2, 3, 5, 8)), ("x1", rand(2, 3, 6, 8, seed=1))],
     {"equation": "bhid,bhjd->bhij"}, {"x0": {0: "B", 2: "S"}, "x1": {0: "B", 2: "T"}}, (), 17),
    ("resize_scales", "Resize", [("x", rand(1, 2, 3, 5)), ("roi", None), ("scales", floats(1, 1, 2, 1.5))],
     {"mode": "linear"}, {"x": {0: "N", 2: "H", 3: "W"}}, ("scales",), 13),
    ("resize_sizes", "Resize", [("x", rand(1, 2, 3, 5)), ("roi", None), ("scales", None), ("sizes", ints(1, 2, 6, 4))],
     {}, {"x": {0: "N", 2: "H", 3: "W"}}, ("sizes",), 13),
    ("softmax", "Softmax", [("x", rand(2, 3, 5))], {"axis": 1}, {"x": {0: "N", 1: "C"}}, (), 13),
    ("layer_norm", "LayerNormalization", [("x", rand(2, 3, 8)), ("scale", rand(8, seed=1))], {},
     {"x": {0: "B", 1: "S"}}, ("scale",), 17),
]


@pytest.mark.parametrize("name,op,inputs,attrs,symbols,constants,opset", SYMBOLIC_CASES,
                         ids=[c[0] for c in SYMBOLIC_CASES])
def test_symbolic_dims(name, op, inputs, attrs, symbols, constants, opset):
    check_op_symbolic(op, inputs, attrs, symbols, constants, opset)

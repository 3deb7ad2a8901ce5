"""Bad input gets a clear error and the right exit code (3 = not supported yet, 2 = bad argument, 1 = broken
file), never a crash, and never a half-written output file."""
import os
import struct

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import make_zoo
from op_harness import make_single_op_model, run_kiln


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    path = str(d / "resnet.onnx")
    onnx.save(make_zoo.make_model("resnet50", True), path)
    plan = str(d / "resnet.plan")
    run_kiln(["build", path, "-o", plan])
    return path, plan


def fails(args, code, *needles):
    proc = run_kiln(args, check=False)
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\n{proc.stdout}{proc.stderr}"
    for n in needles:
        assert n in proc.stderr, f"{n!r} not in stderr:\n{proc.stderr}"
    assert "Segmentation" not in proc.stderr and "terminate called" not in proc.stderr
    return proc


def test_missing_model_file(tmp_path):
    missing = str(tmp_path / "nope.onnx")
    for cmd in (["run", missing], ["build", missing, "-o", str(tmp_path / "x.plan")], ["inspect", missing]):
        fails(cmd, 1, "cannot open model file", missing)
    assert not os.path.exists(tmp_path / "x.plan")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_onnx(tiny, tmp_path, fraction):
    data = open(tiny[0], "rb").read()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[: int(len(data) * fraction)])
    out = tmp_path / "trunc.plan"
    proc = run_kiln(["build", str(bad), "-o", str(out)], check=False)
    assert proc.returncode in (1, 3) and str(bad) in proc.stderr, proc.stderr
    assert not out.exists()


def test_corrupted_onnx(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    fails(["run", str(bad)], 1, str(bad), "not a valid ONNX model")


def test_empty_onnx(tmp_path):
    bad = tmp_path / "empty.onnx"
    bad.write_bytes(b"")
    fails(["run", str(bad)], 1, "empty")


def test_unknown_ops_are_all_listed(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
        helper.make_node("FancyOp", ["a"], ["b"], name="custom_node", domain="com.example"),
        helper.make_node("Hardmax", ["b"], ["y"], name="hardmax_node"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "unknown.onnx"
    onnx.save(model, path)
    out = tmp_path / "unknown.plan"
    proc = fails(["build", str(path), "-o", str(out)], 3, "2 node(s)", "custom_node", "FancyOp", "com.example",
                 "hardmax_node", "Hardmax", "ai.onnx")
    assert "ok_relu" not in proc.stderr
    assert not out.exists()


def test_unsupported_attribute_value(tmp_path):
    x = np.zeros((1, 1, 4, 4), np.float32)
    model = make_single_op_model("Resize", [("x", x), ("roi", None), ("scales", np.array([1, 1, 2, 2], np.float32))],
                                 {"mode": "cubic"}, constants=("scales",))
    path = tmp_path / "cubic.onnx"
    onnx.save(model, path)
    fails(["build", str(path), "-o", str(tmp_path / "c.plan")], 3, "resize_node", "cubic")


def test_unsupported_dtype(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
    y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "str.onnx"
    onnx.save(model, path)
    fails(["run", str(path)], 3, "STRING", "'x'")


def test_plan_from_another_version(tiny, tmp_path):
    data = bytearray(open(tiny[1], "rb").read())
    bad = tmp_path / "old.plan"
    struct.pack_into("<I", data, 12, 999)  # format version field
    bad.write_bytes(bytes(data))
    fails(["run", str(bad)], 1, str(bad), "999", "rebuild")
    data = bytearray(open(tiny[1], "rb").read())
    data[16:32] = b"0.0.1".ljust(16, b"\0")  # kiln version field
    bad.write_bytes(bytes(data))
    fails(["run", str(bad)], 1, "0.0.1", "rebuild")


def test_corrupted_plan(tiny, tmp_path):
    data = bytearray(open(tiny[1], "rb").read())
    data[len(data) // 2] ^= 0x5A
    bad = tmp_path / "corrupt.plan"
    bad.write_bytes(bytes(data))
    fails(["run", str(bad)], 1, str(bad), "corrupted")


def test_truncated_plan(tiny, tmp_path):
    data = open(tiny[1], "rb").read()
    bad = tmp_path / "trunc.plan"
    bad.write_bytes(data[: len(data) - 100])
    fails(["run", str(bad)], 1, str(bad), "truncated")


def test_wrong_input_name(tiny, tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((1, 3, 32, 32), np.float32))
    fails(["run", tiny[1], "--input", f"image={f}"], 2, "'image'", "input")


def test_wrong_input_shape(tiny, tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((1, 3, 31, 32), np.float32))
    fails(["run", tiny[1], "--input", f"input={f}"], 2, "'input'", "1x3x31x32", "dimension 2 must be 32")
    np.save(f, np.zeros((3, 32, 32), np.float32))
    fails(["run", tiny[1], "--input", f"input={f}"], 2, "'input'", "rank")


def test_wrong_input_dtype(tiny, tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, np.zeros((1, 3, 32, 32), np.float64))
    fails(["run", tiny[1], "--input", f"input={f}"], 2, "'input'", "float64", "expected float32")


def test_bad_input_file(tiny, tmp_path):
    f = tmp_path / "x.npy"
    f.write_bytes(b"not numpy")
    fails(["run", tiny[1], "--input", f"input={f}"], 2, str(f))


def test_output_to_missing_directory_leaves_nothing(tiny, tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "m.plan"
    fails(["build", tiny[0], "-o", str(out)], 1, str(out))
    assert not (tmp_path / "no").exists()


def test_bad_cli_arguments(tiny):
    fails(["build", tiny[0]], 2)  # -o missing
    fails(["run", tiny[0], "--opt-level", "7"], 2)
    fails(["run", tiny[0], "--shape", "input:1xAx3"], 2, "--shape")
    fails(["build", tiny[0], "-o", "/tmp/x.plan", "--disable-pass", "no_such_pass"], 2, "no_such_pass")


def test_tensor_proto_input(tiny, tmp_path):
    """ONNX TensorProto .pb files are accepted as inputs, and give the same result as the .npy."""
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    pb = tmp_path / "x.pb"
    pb.write_bytes(onnx.numpy_helper.from_array(x, "input").SerializeToString())
    npy = tmp_path / "x.npy"
    np.save(npy, x)
    run_kiln(["run", tiny[1], "--input", f"input={pb}", "--output-dir", str(tmp_path / "a")])
    run_kiln(["run", tiny[1], "--input", f"input={npy}", "--output-dir", str(tmp_path / "b")])
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "output.npy"), np.load(tmp_path / "b" / "output.npy"))

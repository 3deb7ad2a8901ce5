"""Every error path of the Python API raises a kiln exception (KilnError subclass with .code) carrying the C++
message, which names the file, node or tensor."""
import os
import struct
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import kiln
import make_zoo


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("pyerrors")
    path = str(d / "resnet.onnx")
    onnx.save(make_zoo.make_model("resnet50", True), path)
    engine = kiln.build(path)
    plan = str(d / "resnet.plan")
    engine.save(plan)
    return path, plan, engine


def test_hierarchy_and_codes():
    pairs = [(kiln.InvalidArgumentError, "kInvalidArgument", ValueError), (kiln.FileError, "kIoError", OSError),
             (kiln.InvalidModelError, "kInvalidModel", None), (kiln.InvalidPlanError, "kInvalidPlan", None),
             (kiln.VersionMismatchError, "kVersionMismatch", None), (kiln.UnsupportedError, "kUnsupported", None),
             (kiln.OutOfMemoryError, "kOutOfMemory", MemoryError), (kiln.InternalError, "kInternal", None)]
    for cls, code, extra in pairs:
        assert issubclass(cls, kiln.KilnError) and cls.code == code
        if extra:
            assert issubclass(cls, extra)
        e = cls("message")
        assert str(e) == "message" and e.code == code


def test_missing_model_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(kiln.FileError) as e:
        kiln.build(path)
    assert str(path) in str(e.value) and e.value.code == "kIoError"


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_onnx(tiny, tmp_path, fraction):
    data = open(tiny[0], "rb").read()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises((kiln.InvalidModelError, kiln.UnsupportedError)) as e:
        kiln.build(bad)
    assert str(bad) in str(e.value)


def test_garbage_onnx_bytes():
    junk = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(kiln.InvalidModelError, match="not a valid ONNX model"):
        kiln.build(junk)


def test_unsupported_ops_are_listed(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok_relu"),
             helper.make_node("FancyOp", ["a"], ["y"], name="custom_node", domain="com.example")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(kiln.UnsupportedError) as e:
        kiln.build(model)
    msg = str(e.value)
    assert "custom_node" in msg and "FancyOp" in msg and "com.example" in msg and "ok_relu" not in msg
    assert e.value.code == "kUnsupported"


def _has_gpu():
    import shutil
    import subprocess
    return shutil.which("nvidia-smi") is not None and subprocess.run(["nvidia-smi"], capture_output=True).returncode == 0


@pytest.mark.skipif(_has_gpu(), reason="a GPU is present: device='cuda' works here")
def test_cuda_device_is_not_available(tiny):
    # without the CUDA backend compiled in, or without a GPU, device="cuda" is a clear UnsupportedError
    for device in ("cuda", "cuda:0"):
        with pytest.raises(kiln.UnsupportedError, match="CUDA backend is not available in this build|no CUDA device"):
            kiln.build(tiny[0], device=device)
    with pytest.raises(kiln.InvalidArgumentError, match="unknown device"):
        kiln.build(tiny[0], device="tpu")


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_is_unsupported_on_cpu(tiny, precision):
    with pytest.raises(kiln.UnsupportedError, match=f"precision {precision}.*fp32"):
        kiln.build(tiny[0], precision=precision)


def _has_avx512_bf16():
    with open("/proc/cpuinfo") as f:
        return "avx512_bf16" in f.read()


@pytest.mark.skipif(not _has_avx512_bf16(), reason="the CPU lacks AVX512-BF16")
def test_bf16_builds_on_cpu_with_avx512_bf16(tiny):
    engine = kiln.build(tiny[0], precision="bf16")
    assert engine.cpp.metadata["precision"] == "bf16"
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want, got = tiny[2](x), engine(x)
    cosine = float(np.dot(want.ravel(), got.ravel()) / (np.linalg.norm(want) * np.linalg.norm(got)))
    assert cosine >= 0.999 and not np.array_equal(want, got)
    config = kiln.BuilderConfig()
    config.set_flag(kiln.BuilderFlag.BF16)
    config.validate()  # the low-level API allows it too
    config.backend = "reference"
    with pytest.raises(kiln.UnsupportedError, match="precision bf16.*fp32"):
        config.validate()


def test_bf16_without_avx512_bf16_is_unsupported(tiny):
    # DNNL_MAX_CPU_ISA hides bf16 from oneDNN (read once per process): kiln then refuses bf16, naming the reason
    code = ("import kiln\ntry:\n    kiln.build(%r, precision='bf16')\nexcept kiln.UnsupportedError as e:\n"
            "    print('UNSUPPORTED', e)\n" % tiny[0])
    env = dict(os.environ, DNNL_MAX_CPU_ISA="AVX512_CORE_VNNI")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert "UNSUPPORTED" in out.stdout and "AVX512-BF16" in out.stdout and "fp32" in out.stdout, out.stdout + out.stderr


def test_bad_build_arguments(tiny):
    with pytest.raises(kiln.UnsupportedError, match="tf32"):
        kiln.build(tiny[0], precision="tf32")  # a CUDA option; the default device is the CPU
    config = kiln.BuilderConfig()
    config.timing_cache, config.layer_precision = "/tmp/tc.txt", {"a": "fp32"}
    assert config.timing_cache == "/tmp/tc.txt" and config.layer_precision == {"a": "fp32"}
    with pytest.raises(kiln.InvalidArgumentError, match="unknown precision"):
        kiln.build(tiny[0], precision="fp8")
    with pytest.raises(kiln.InvalidArgumentError, match="opt_level"):
        kiln.build(tiny[0], opt_level=7)
    with pytest.raises(kiln.InvalidArgumentError, match="threads"):
        kiln.build(tiny[0], threads=0)
    with pytest.raises(kiln.InvalidArgumentError, match="unknown pass 'no_such_pass'"):
        kiln.build(tiny[0], disabled_passes=["no_such_pass"])
    with pytest.raises(kiln.InvalidArgumentError, match="model must be"):
        kiln.build(42)


def test_memory_limit(tiny):
    with pytest.raises(kiln.OutOfMemoryError, match="memory limit"):
        kiln.build(tiny[0], input_shapes={"input": (8, 3, 32, 32)}, memory_limit=1024)


def test_plan_from_another_version(tiny, tmp_path):
    data = bytearray(open(tiny[1], "rb").read())
    struct.pack_into("<I", data, 12, 999)  # format version field
    bad = tmp_path / "old.plan"
    bad.write_bytes(bytes(data))
    with pytest.raises(kiln.KilnError) as e:
        kiln.load(bad)
    assert isinstance(e.value, (kiln.VersionMismatchError, kiln.InvalidPlanError))
    assert str(bad) in str(e.value) and "rebuild" in str(e.value)
    data = bytearray(open(tiny[1], "rb").read())
    data[16:32] = b"0.0.1".ljust(16, b"\0")  # kiln version field
    with pytest.raises(kiln.VersionMismatchError, match="0.0.1"):
        kiln.deserialize(bytes(data))


def test_corrupted_and_truncated_plan(tiny, tmp_path):
    data = bytearray(open(tiny[1], "rb").read())
    data[len(data) // 2] ^= 0x5A
    bad = tmp_path / "corrupt.plan"
    bad.write_bytes(bytes(data))
    with pytest.raises(kiln.InvalidPlanError, match="corrupted") as e:
        kiln.load(bad)
    assert str(bad) in str(e.value) and e.value.code == "kInvalidPlan"
    with pytest.raises(kiln.InvalidPlanError, match="truncated"):
        kiln.deserialize(open(tiny[1], "rb").read()[:-100])
    with pytest.raises(kiln.FileError):
        kiln.load(tmp_path / "missing.plan")


def test_save_to_missing_directory(tiny, tmp_path):
    with pytest.raises(kiln.FileError):
        tiny[2].save(tmp_path / "no" / "such" / "dir.plan")


def test_wrong_inputs(tiny):
    ctx = tiny[2].create_context()
    x = make_zoo.make_inputs("resnet50", True, 1)["input"]
    with pytest.raises(kiln.InvalidArgumentError, match="'image'"):
        ctx.run({"image": x})
    with pytest.raises(kiln.InvalidArgumentError, match="'input'"):
        ctx.run({})
    with pytest.raises(kiln.InvalidArgumentError, match="input 'input' has shape 1x3x2x2"):
        ctx.run({"input": np.zeros((1, 3, 2, 2), np.float32)})
    with pytest.raises(ValueError, match="'input'.*float64|float64.*'input'"):
        ctx.run({"input": x.astype(np.float64)})
    with pytest.raises(kiln.InvalidArgumentError, match="int16.*does not support"):
        ctx.run({"input": x.astype(np.int16)})
    with pytest.raises(kiln.InvalidArgumentError, match="output must be"):
        ctx.run({"input": x}, output="pandas")
    with pytest.raises(kiln.UnsupportedError, match="output='cuda' needs an engine built for the GPU"):
        ctx.run({"input": x}, output="cuda")
    with pytest.raises(kiln.InvalidArgumentError, match="cannot convert"):
        ctx.run({"input": object()})
    with pytest.raises(kiln.InvalidArgumentError, match="takes 1 input"):
        tiny[2](x, x)
    with pytest.raises(kiln.InvalidArgumentError, match="threads"):
        ctx.threads = 0

"""Every zoo model (tiny and full size) at batch 1 and 4: kiln vs onnxruntime, max abs error <= 1e-4 of the
output scale (`kiln compare` computes and asserts it), at every optimisation level for the tiny models."""
import json
import os

import numpy as np
import onnx
import pytest

import make_zoo
from op_harness import run_kiln

TOL = 1e-4


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


def model_path(zoo_dir, name, tiny):
    path = os.path.join(zoo_dir, f"{name}{'_tiny' if tiny else ''}.onnx")
    if not os.path.exists(path):
        onnx.save(make_zoo.make_model(name, tiny), path)
    return path


def compare(path, batch, extra=()):
    proc = run_kiln(["compare", path, "--batch", str(batch), "--tolerance", str(TOL)] + list(extra), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all outputs match" in proc.stdout


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_model_matches_onnxruntime(zoo_dir, name, batch):
    compare(model_path(zoo_dir, name, True), batch)


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_model_every_opt_level(zoo_dir, name, level):
    compare(model_path(zoo_dir, name, True), 2, ["--opt-level", str(level)])


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_full_model_matches_onnxruntime(zoo_dir, name, batch):
    compare(model_path(zoo_dir, name, False), batch)


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_plan_run_identical_to_onnx_run(zoo_dir, tmp_path, name):
    """kiln build -> .plan -> kiln run gives bit-identical outputs to running the ONNX model directly."""
    path = model_path(zoo_dir, name, True)
    plan = str(tmp_path / "model.plan")
    run_kiln(["build", path, "-o", plan])
    args = []
    for i, (k, v) in enumerate(make_zoo.make_inputs(name, True, 3).items()):
        f = str(tmp_path / f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    run_kiln(["run", path, "--output-dir", str(tmp_path / "a")] + args)
    run_kiln(["run", plan, "--output-dir", str(tmp_path / "b")] + args)
    outs = sorted(os.listdir(tmp_path / "a"))
    assert outs and outs == sorted(os.listdir(tmp_path / "b"))
    for f in outs:
        a, b = np.load(tmp_path / "a" / f), np.load(tmp_path / "b" / f)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_model_fixed_shapes_memory_arena(zoo_dir, tmp_path, name):
    """Fixed shapes: activations live in one planned arena (with in-place reshapes); results still match."""
    feeds = make_zoo.make_inputs(name, True, 2)
    args = []
    for i, (k, v) in enumerate(feeds.items()):
        f = str(tmp_path / f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}", "--shape", f"{k}:{'x'.join(map(str, v.shape))}"]
    path = model_path(zoo_dir, name, True)
    shape_args = [a for j in range(0, len(args), 4) for a in args[j + 2:j + 4]]
    assert json.loads(run_kiln(["inspect", path, "--json"] + shape_args).stdout)["memory"]["planned"]
    compare(path, 2, args)


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2", "efficientnet_b0"])
def test_full_cnn_fixed_shapes_blocked_layout(zoo_dir, tmp_path, name, batch):
    """Fixed shapes, as `kiln bench --shape` runs them: the cpu backend keeps activations in nChw16c between its
    convolutions (see src/common/layout.h); results still match onnxruntime."""
    path = model_path(zoo_dir, name, False)
    feeds = make_zoo.make_inputs(name, False, batch)
    args = []
    for i, (k, v) in enumerate(feeds.items()):
        f = str(tmp_path / f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}", "--shape", f"{k}:{'x'.join(map(str, v.shape))}"]
    shape_args = [a for j in range(0, len(args), 4) for a in args[j + 2:j + 4]]
    assert "conv2d_f32_nChw16c_nChw16c" in run_kiln(["inspect", path, "--backend", "cpu"] + shape_args).stdout
    compare(path, batch, args)

"""The CLI's commands on a tiny model: build, run (random and given inputs), bench --json, inspect (text, --json,
--dot), compare."""
import json
import os

import numpy as np
import onnx
import pytest

import make_zoo
from op_harness import run_kiln


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    path = str(d / "bert.onnx")
    onnx.save(make_zoo.make_model("bert_base", True), path)
    return path


def test_build_writes_plan(model, tmp_path):
    plan = tmp_path / "m.plan"
    proc = run_kiln(["build", model, "-o", str(plan), "--verbose"])
    assert plan.exists() and open(plan, "rb").read(8) == b"KILNPLAN"
    assert "built" in proc.stdout and "pass" in proc.stdout
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_run_random_inputs_writes_one_npy_per_output(model, tmp_path):
    run_kiln(["run", model, "--batch", "2", "--output-dir", str(tmp_path)])
    out = np.load(tmp_path / "last_hidden_state.npy")
    assert out.shape == (2, 16, 32) and out.dtype == np.float32 and np.isfinite(out).all()


def test_run_fixed_shape_build(model, tmp_path):
    plan = str(tmp_path / "m.plan")
    run_kiln(["build", model, "-o", plan, "--shape", "input_ids:3x16", "--shape", "attention_mask:3x16"])
    info = json.loads(run_kiln(["inspect", plan, "--json"]).stdout)
    assert info["inputs"][0]["shape"] == [3, 16]


def test_bench_json(model):
    proc = run_kiln(["bench", model, "--iterations", "5", "--warmup", "1", "--json", "--batch", "2"])
    r = json.loads(proc.stdout)
    for k in ("median_ms", "p99_ms", "mean_ms", "min_ms", "throughput_per_s"):
        assert isinstance(r[k], float) and r[k] > 0
    assert r["batch"] == 2 and r["iterations"] == 5
    assert r["min_ms"] <= r["median_ms"] <= r["p99_ms"]


def test_bench_table(model):
    proc = run_kiln(["bench", model, "--duration", "0.2", "--threads", "2"])
    assert "median" in proc.stdout and "throughput" in proc.stdout


def test_inspect_json(model, tmp_path):
    dot = tmp_path / "g.dot"
    info = json.loads(run_kiln(["inspect", model, "--json", "--dot", str(dot)]).stdout)
    assert info["nodes"] and {"name", "op", "inputs", "outputs", "fused_from"} <= set(info["nodes"][0])
    assert {"planned_bytes", "naive_bytes", "lower_bound_bytes"} <= set(info["memory"])
    assert [i["name"] for i in info["inputs"]] == ["input_ids", "attention_mask"]
    assert info["inputs"][0]["shape"][0] == "batch"
    assert dot.read_text().startswith("digraph")


def test_inspect_text_plan(model, tmp_path):
    plan = str(tmp_path / "m.plan")
    run_kiln(["build", model, "-o", plan])
    out = run_kiln(["inspect", plan]).stdout
    assert "layers" in out and "MatMul" in out and "memory" in out and "input_ids" in out


def test_compare_reports_per_output(model):
    proc = run_kiln(["compare", model])
    assert "last_hidden_state" in proc.stdout and "PASS" in proc.stdout


def test_compare_fails_beyond_tolerance(model):
    proc = run_kiln(["compare", model, "--tolerance", "0"], check=False)
    # an exact match is possible but unlikely with different summation orders; either way the verdict is printed
    assert ("MISMATCH" in proc.stdout) == (proc.returncode == 1)


def test_version():
    assert "0.1.0" in run_kiln(["--version"]).stdout

"""A plan loads and runs in a program linked against kiln_runtime alone (no ONNX frontend, no protobuf)."""
import os
import subprocess

import onnx
import pytest

import make_zoo
from op_harness import ROOT, run_kiln

EXE = os.path.join(ROOT, "build", "tests", "kiln_run_plan_runtime_only")


@pytest.mark.skipif(not os.path.exists(EXE), reason="build/tests/kiln_run_plan_runtime_only not built")
def test_plan_runs_without_frontend(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(make_zoo.make_model("bert_base", True), path)
    plan = str(tmp_path / "m.plan")
    run_kiln(["build", path, "-o", plan])
    proc = subprocess.run([EXE, plan], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "last_hidden_state 1x16x32" in proc.stdout
    libs = subprocess.run(["ldd", EXE], capture_output=True, text=True).stdout
    assert "protobuf" not in libs
    symbols = subprocess.run(["nm", "-C", EXE], capture_output=True, text=True).stdout
    assert "onnx::" not in symbols and "OnnxParser" not in symbols

"""Models exported by torch.onnx.export (tests/data/torch_export, see its README) against onnxruntime on random
inputs, at the optimisation levels that fold shape arithmetic (cpu backend)."""
import os

import pytest

from op_harness import run_kiln

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "torch_export")
MODELS = ["vit_small", "gpt2_small", "bert_small"]


@pytest.mark.parametrize("level", [1, 3])
@pytest.mark.parametrize("name", MODELS)
def test_torch_export_matches_onnxruntime(name, level):
    proc = run_kiln(["compare", os.path.join(DATA, f"{name}.onnx"), "--tolerance", "1e-4", "--opt-level", str(level)],
                    check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all outputs match" in proc.stdout


def test_vit_reshape_shape_is_computed_by_mod(tmp_path):
    """torchvision's attention computes a Reshape's shape from Mod/Slice/Concat of constants: the builder infers
    leniently until constant folding has evaluated it, and the plan has no shape arithmetic left."""
    plan = str(tmp_path / "vit.plan")
    run_kiln(["build", os.path.join(DATA, "vit_small.onnx"), "-o", plan])
    listing = run_kiln(["inspect", plan]).stdout
    assert " Mod" not in listing and "Mod(" not in listing


def test_opt_level_0_names_the_reshape():
    """Without constant folding the rank stays unknown: a clear error naming the node, not a crash."""
    proc = run_kiln(["build", os.path.join(DATA, "vit_small.onnx"), "--opt-level", "0", "-o", os.devnull],
                    check=False)
    assert proc.returncode != 0
    assert "Reshape" in proc.stderr and "rank cannot be inferred" in proc.stderr and "opt level 1" in proc.stderr

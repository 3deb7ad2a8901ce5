"""Models exported by torch.onnx.export (tests/data/torch_export, see its README) against onnxruntime on random
inputs, at the optimisation levels that fold shape arithmetic (cpu backend)."""
import collections
import json
import os

import pytest

from op_harness import run_kiln

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "torch_export")
MODELS = ["vit_small", "vit_small_b2", "gpt2_small", "bert_small"]


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


@pytest.mark.parametrize("model", ["vit_small", "vit_small_b2"])
@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_vit_attention_is_one_packed_node(backend, model):
    """torch nn.MultiheadAttention's seq-first head split (Unsqueeze/Transpose/Squeeze/Gather chunks of the packed
    in-projection, Reshape/Transpose per head, the two scale Muls) folds into one Attention per block reading the
    in-projection's rows in place (docs/OPTIMIZER.md, fuse_attention_heads); the batch-first <-> seq-first
    Transposes around it (Reshapes at batch 1) move below the projections into the Attention, which reads [b, s, 3E]
    rows (seq_first=0), and the residual Add fuses into the out-projection (transpose_optimization). At batch 1 and
    2 (vit_small_b2: the exporter bakes the batch into the Reshape shapes) it still matches onnxruntime."""
    path = os.path.join(DATA, f"{model}.onnx")
    info = json.loads(run_kiln(["inspect", path, "--json", "-O", "3", "--backend", backend]).stdout)
    nodes = info["nodes"]
    producer = {o: n for n in nodes for o in n["outputs"]}
    attention = [n for n in nodes if n["op"] == "Attention"]
    assert len(attention) == 2, [n["op"] for n in nodes]  # one per encoder block
    for a in attention:
        attrs = a["attributes"]
        assert attrs.get("seq_first", "0") == "0" and attrs["num_heads"] == "2" and attrs["head_dim"] == "16", attrs
        assert attrs["qkv_offsets"] == "[0,32,64]" and float(attrs["scale"]) == pytest.approx(0.25), attrs
        assert len(set(a["inputs"][:3])) == 1
        in_proj = producer[a["inputs"][0]]  # the packed in-projection, read in place, reading the LayerNorm
        assert in_proj["op"] == "FusedMatMul" and producer[in_proj["inputs"][0]]["op"] == "LayerNormalization"
    in_blocks = [n for n in nodes if "/encoder/layers/" in n["name"]]
    movers = [n["name"] for n in in_blocks if n["op"] in ("Transpose", "Reshape", "Gather", "Squeeze", "Unsqueeze",
                                                         "Mul", "Add")]
    assert movers == [], movers
    # each block: the out-projection and the second MLP matmul carry the residual (input 3)
    residual = [n for n in in_blocks if n["op"] == "FusedMatMul" and len(n["inputs"]) == 4]
    assert len(residual) == 4, [(n["name"], len(n["inputs"])) for n in in_blocks if n["op"] == "FusedMatMul"]
    ops = collections.Counter(n["op"] for n in nodes)
    # what is left: the patch embedding's Reshape and Transpose, the class-token Gather and the position Add, outside
    # the blocks
    assert ops["Transpose"] == 1 and ops["Reshape"] == 1 and ops["Gather"] == 1 and ops["Add"] == 1, ops
    assert ops["FusedMatMul"] == 9 and len(nodes) == 22, ops
    proc = run_kiln(["compare", path, "--tolerance", "1e-4", "--opt-level", "3", "--backend", backend], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all outputs match" in proc.stdout

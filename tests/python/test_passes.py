"""Optimizer passes on the tiny zoo models: `kiln inspect --json` at -O0 and -O3 (structure), then `kiln compare` at
-O3 (numbers; test_zoo.py compares -O0..-O2 as well).

Vision CNNs run at their dynamic (symbolic batch) shapes; ViT, BERT and GPT-2 at fixed shapes, where the Shape
chains fold away.
"""
import json
import os

import onnx
import pytest

import make_zoo
from op_harness import run_kiln

NO_BN_AT_O3 = ("resnet50", "mobilenetv2", "efficientnet_b0")
FIXED_SHAPES = {
    "bert_base": ["input_ids:1x16", "attention_mask:1x16"],
    "gpt2": ["input_ids:1x16"],
    "vit_b16": ["input:1x3x32x32"],
}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_passes")


def model_path(zoo_dir, name):
    path = os.path.join(zoo_dir, f"{name}_tiny.onnx")
    if not os.path.exists(path):
        onnx.save(make_zoo.make_model(name, True), path)
    return path


def shape_args(name):
    return [a for s in FIXED_SHAPES.get(name, []) for a in ("--shape", s)]


def inspect(path, name, level):
    proc = run_kiln(["inspect", path, "--json", "--opt-level", str(level)] + shape_args(name))
    return json.loads(proc.stdout)


def ops(report):
    return [n["op"] for n in report["nodes"]]


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_o3_removes_nodes(zoo_dir, name):
    path = model_path(zoo_dir, name)
    o0, o3 = inspect(path, name, 0), inspect(path, name, 3)
    assert len(o3["nodes"]) < len(o0["nodes"]), f"{name}: -O3 has {len(o3['nodes'])} nodes, -O0 {len(o0['nodes'])}"
    assert [p["name"] for p in o3["passes"]][:4] == [
        "constant_folding", "identity_elimination", "common_subexpression_elimination", "fold_batch_norm"]
    if name in NO_BN_AT_O3:
        assert "BatchNormalization" in ops(o0)
        assert "BatchNormalization" not in ops(o3)
        fused = [n for n in o3["nodes"] if len(n["fused_from"]) >= 2]
        layer_ops = ("Conv", "ConvTranspose", "Gemm", "FusedConv", "FusedMatMul", "FusedExpandDepthwise")
        assert fused and all(n["op"] in layer_ops for n in fused)
    if name in FIXED_SHAPES:
        assert "Shape" in ops(o0)
        assert "Shape" not in ops(o3) and "Size" not in ops(o3)
        assert "Concat" not in ops(o3) or name == "vit_b16"  # ViT concatenates the class token (real data)
    # Output names and dtypes are the same at every level (-O3 may know more dims statically).
    assert [(o["name"], o["dtype"]) for o in o3["outputs"]] == [(o["name"], o["dtype"]) for o in o0["outputs"]]


@pytest.mark.parametrize("name", NO_BN_AT_O3)
def test_o1_keeps_batch_norm_o2_folds_it(zoo_dir, name):
    path = model_path(zoo_dir, name)
    assert "BatchNormalization" in ops(inspect(path, name, 1))
    assert "BatchNormalization" not in ops(inspect(path, name, 2))


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_o3_matches_onnxruntime(zoo_dir, name):
    path = model_path(zoo_dir, name)
    batch_args = ["--batch", "1"] if name in FIXED_SHAPES else ["--batch", "2"]
    proc = run_kiln(["compare", path, "--tolerance", "1e-4", "--opt-level", "3"] + batch_args + shape_args(name),
                    check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all outputs match" in proc.stdout

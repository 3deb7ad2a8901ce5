"""The optimizer's promises on the zoo models (tiny and full size), checked on `kiln inspect --json` at -O3:
what is fused, what is left, and the memory plan against its lower bound. Numbers are checked by test_zoo.py
(every level) and test_passes.py."""
import collections
import json
import os

import onnx
import pytest

import make_zoo
from op_harness import run_kiln


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_fusion")


def fixed_shapes(name, tiny, batch=1):
    cfg = make_zoo.model_config(name, tiny)
    feeds = make_zoo.make_inputs(name, tiny, batch)
    return [a for k, v in feeds.items() for a in ("--shape", f"{k}:{'x'.join(map(str, v.shape))}")], cfg


def inspect(zoo_dir, name, tiny, level=3, fixed=True):
    path = os.path.join(zoo_dir, f"{name}_{tiny}.onnx")
    if not os.path.exists(path):
        onnx.save(make_zoo.make_model(name, tiny), path)
    args, _ = fixed_shapes(name, tiny)
    proc = run_kiln(["inspect", path, "--json", "--opt-level", str(level)] + (args if fixed else []))
    return json.loads(proc.stdout)


def counts(report):
    return collections.Counter(n["op"] for n in report["nodes"])


SIZES = [True, False]
IDS = ["tiny", "full"]


@pytest.mark.parametrize("tiny", SIZES, ids=IDS)
def test_resnet50_has_no_separate_bn_relu_add(zoo_dir, tiny):
    c = counts(inspect(zoo_dir, "resnet50", tiny, fixed=False))
    assert c["BatchNormalization"] == 0 and c["Relu"] == 0 and c["Add"] == 0, c
    assert c["FusedConv"] > 0


@pytest.mark.parametrize("tiny", SIZES, ids=IDS)
@pytest.mark.parametrize("name", ["mobilenetv2", "efficientnet_b0"])
def test_cnn_activations_fused_into_convolutions(zoo_dir, name, tiny):
    c = counts(inspect(zoo_dir, name, tiny, fixed=False))
    for op in ("BatchNormalization", "Clip", "Relu", "Sigmoid"):
        assert c[op] == 0, (op, c)


@pytest.mark.parametrize("tiny", SIZES, ids=IDS)
def test_bert_attention_layernorm_gelu(zoo_dir, tiny):
    layers = make_zoo.model_config("bert_base", tiny)["layers"]
    c = counts(inspect(zoo_dir, "bert_base", tiny))
    assert c["Attention"] == layers, c
    assert c["LayerNormalization"] == 2 * layers + 1, c  # two per encoder layer + the embeddings'
    for op in ("Erf", "Gelu", "Softmax", "ReduceMean", "Sqrt", "Pow", "Div"):
        assert c[op] == 0, (op, c)


@pytest.mark.parametrize("tiny", SIZES, ids=IDS)
@pytest.mark.parametrize("name", ["gpt2", "vit_b16"])
def test_transformers_one_attention_per_layer(zoo_dir, name, tiny):
    layers = make_zoo.model_config(name, tiny)["layers"]
    c = counts(inspect(zoo_dir, name, tiny))
    assert c["Attention"] == layers and c["Softmax"] == 0, c
    assert c["Tanh"] == 0 and c["Erf"] == 0, c  # GELU (tanh or erf form) folded into the MLP's FusedMatMul


def test_fused_nodes_name_their_onnx_origins(zoo_dir):
    report = inspect(zoo_dir, "bert_base", True)
    attn = [n for n in report["nodes"] if n["op"] == "Attention"][0]
    assert len(attn["fused_from"]) >= 4  # MatMul, Div, Add, Softmax, MatMul


@pytest.mark.parametrize("tiny", SIZES, ids=IDS)
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_memory_plan_near_lower_bound(zoo_dir, name, tiny):
    mem = inspect(zoo_dir, name, tiny)["memory"]
    assert mem["planned"], mem
    assert mem["lower_bound_bytes"] <= mem["planned_bytes"] <= 1.15 * mem["lower_bound_bytes"], mem
    if name in ("resnet50", "bert_base") and not tiny:
        assert mem["naive_bytes"] >= 3 * mem["planned_bytes"], mem


def se_blocks(report):
    tags = collections.defaultdict(list)
    for n in report["nodes"]:
        tag = n.get("attributes", {}).get("subgraph", "").strip('"')
        if tag.startswith("squeeze_excite:"):
            tags[tag].append(n["op"])
    return tags


@pytest.mark.parametrize("tiny", SIZES, ids=IDS)
def test_efficientnet_squeeze_excite_blocks_marked(zoo_dir, tiny):
    cfg = make_zoo.model_config("efficientnet_b0", tiny)
    n_blocks = sum(n for _, _, _, _, n in cfg["settings"])  # one SE block per MBConv block: 16 in the full model
    assert n_blocks == (5 if tiny else 16)
    report = inspect(zoo_dir, "efficientnet_b0", tiny, fixed=False)
    tags = se_blocks(report)
    # on the cpu backend a block after a fused 1x1 expand + depthwise goes into that FusedExpandDepthwise node
    # (fuse_expand_depthwise); the first block, which has no expand convolution, stays four marked nodes
    absorbed = [n for n in report["nodes"] if n["op"] == "FusedExpandDepthwise" and "se_activation" in n["attributes"]]
    assert len(tags) == 1 and len(absorbed) == n_blocks - 1, (tags, len(absorbed))
    for n in absorbed:
        assert any("GlobalAveragePool" in f for f in n["fused_from"]), n["fused_from"]
    for ops in tags.values():
        assert sorted(ops) == ["FusedConv", "FusedConv", "GlobalAveragePool", "Mul"], ops

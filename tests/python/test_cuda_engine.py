"""CUDA engine features beyond single kernels (skipped without a GPU, like test_cuda.py): BF16 and TF32 precision,
per-layer precision constraints, the tactic shown per layer, the timing cache, and `kiln bench` on device buffers
with and without CUDA graphs."""
import json
import os

import numpy as np
import onnx
import pytest

import make_zoo
from op_harness import reference_outputs, run_kiln, run_model_with_kiln
from test_cuda import _REASON, cosine, tiny_model, zoo_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

COSINE_BF16 = 0.995  # bf16 keeps 8 bits of mantissa; fp32 accumulation
TF32_TOL = 2e-3      # relative to each output's scale (10-bit mantissa products, fp32 sums)


def _outputs(path, feeds, tmp_path, flags):
    out_dir = run_model_with_kiln(path, feeds, str(tmp_path), ["--backend", "cuda"] + flags)
    return [np.load(os.path.join(out_dir, f"{o.name}.npy")) for o in onnx.load(path).graph.output]


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_zoo_bf16_cosine(zoo_dir, name, tmp_path):  # noqa: F811
    path = tiny_model(zoo_dir, name)
    feeds = make_zoo.make_inputs(name, True, 2)
    expected = reference_outputs(onnx.load(path), feeds)
    for got, want in zip(_outputs(path, feeds, tmp_path, ["--bf16"]), expected):
        assert got.shape == want.shape
        assert cosine(got, want) >= COSINE_BF16


@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_tiny_zoo_tf32_close(zoo_dir, name, tmp_path):  # noqa: F811
    path = tiny_model(zoo_dir, name)
    feeds = make_zoo.make_inputs(name, True, 2)
    expected = reference_outputs(onnx.load(path), feeds)
    for got, want in zip(_outputs(path, feeds, tmp_path, ["--tf32"]), expected):
        scale = max(float(np.abs(want).max()), 1e-6)
        assert float(np.abs(got - want).max()) / scale <= TF32_TOL


def test_layer_precision_pins_a_layer_to_fp32(zoo_dir):  # noqa: F811
    path = tiny_model(zoo_dir, "resnet50")
    layers = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--fp16", "--json"]).stdout)["nodes"]
    convs = [l for l in layers if l["kernel"].startswith("conv_f16")]
    assert convs, "fp16 convolutions expected"
    first = convs[0]["name"]
    pinned = json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--fp16", "--json",
                                  "--layer-precision", f"{first}:fp32"]).stdout)["nodes"]
    kernel = {l["name"]: l["kernel"] for l in pinned}
    assert kernel[first].startswith("conv_f32"), kernel[first]
    assert sum(k.startswith("conv_f16") for k in kernel.values()) == len(convs) - 1
    bad = run_kiln(["inspect", path, "--backend", "cuda", "--layer-precision", "no_such_layer:fp32"], check=False)
    assert bad.returncode == 2 and "no_such_layer" in bad.stderr


def test_fp16_convolutions_chain_in_nhwc(zoo_dir):  # noqa: F811
    # convolution -> convolution values stay fp16 NHWC (no fp32 round trip); the first reads fp32, the last writes it
    path = tiny_model(zoo_dir, "resnet50")
    kernels = [l["kernel"] for l in json.loads(run_kiln(["inspect", path, "--backend", "cuda", "--fp16", "--json",
                                                         "--shape", "input:2x3x32x32"]).stdout)["nodes"]]
    convs = [k for k in kernels if k.startswith("conv_")]
    assert all("_nhwc" in k for k in convs), convs
    assert sum("_nhwc_in_out" in k for k in convs) >= len(convs) // 2, convs
    pools = [k for k in kernels if "_pool2d_" in k]  # the stem's MaxPool stays in the chain too
    assert pools and all("f16_chain_in_out" in k for k in pools), pools


def _chain_model(tmp_path, channels, middle, precision):
    """Conv 3x3 -> `middle` -> Conv 1x1, all inside the fp16/bf16 NHWC chain; returns (path, model, the kernels)."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((8, channels, 1, 1)).astype(np.float32) * 0.3
    nodes = [onnx.helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), middle,
             onnx.helper.make_node("Conv", ["p", "w2"], ["y"])]
    inits = [onnx.numpy_helper.from_array(w1, "w1"), onnx.numpy_helper.from_array(w2, "w2"),
             onnx.numpy_helper.from_array(rng.standard_normal((channels, channels, 1, 1)).astype(np.float32) * 0.3,
                                          "wm"),
             onnx.numpy_helper.from_array(rng.standard_normal(channels).astype(np.float32), "bm"),
             onnx.numpy_helper.from_array(rng.standard_normal((channels, 1, 3, 3)).astype(np.float32) * 0.3, "wd")]
    graph = onnx.helper.make_graph(
        nodes, "chain", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 3, 17, 15])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], initializer=inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = str(tmp_path / "chain.onnx")
    onnx.save(model, path)
    kernels = [l["kernel"] for l in json.loads(run_kiln(["inspect", path, "--backend", "cuda", f"--{precision}",
                                                         "--json"]).stdout)["nodes"]]
    feeds = {"x": rng.standard_normal((3, 3, 17, 15)).astype(np.float32)}
    want = reference_outputs(model, feeds)[0]
    got = _outputs(path, feeds, tmp_path, [f"--{precision}"])[0]
    assert got.shape == want.shape
    assert cosine(got, want) >= (0.999 if precision == "fp16" else COSINE_BF16)
    return kernels


@pytest.mark.parametrize("channels", [16, 12])  # 16: the vectorised NHWC kernel (8 channels a thread); 12: generic
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("op,attrs", [("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
                                      ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                                       "count_include_pad": 1}),
                                      ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]})])
def test_pool_inside_the_nhwc_chain(tmp_path, channels, precision, op, attrs):
    kernels = _chain_model(tmp_path, channels, onnx.helper.make_node(op, ["a"], ["p"], **attrs), precision)
    assert any("_pool2d_" in k and "chain_in_out" in k for k in kernels), kernels


@pytest.mark.parametrize("channels", [16, 12])  # 16: 16-byte copies of the strided pixels; 12: 2-byte copies
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("strides", [[2, 2], [2, 3]])
def test_strided_1x1_convolution_runs_as_a_gemm(tmp_path, channels, precision, strides):
    # ResNet's downsampling shortcut: the strided pixels are packed, then the cuBLASLt GEMM with the bias fused
    middle = onnx.helper.make_node("Conv", ["a", "wm", "bm"], ["p"], strides=strides)
    kernels = _chain_model(tmp_path, channels, middle, precision)
    assert sum("1x1_as_cublaslt_gemm" in k for k in kernels) == 2, kernels


@pytest.mark.parametrize("channels", [16, 12])  # 16: 8 channels a thread (16-byte loads); 12: one channel a thread
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("strides,pads,dilations", [([1, 1], [1, 1, 1, 1], [1, 1]), ([2, 2], [1, 1, 1, 1], [1, 1]),
                                                    ([1, 2], [0, 0, 0, 0], [1, 1]), ([1, 1], [2, 2, 2, 2], [2, 2])])
def test_depthwise_convolution_inside_the_nhwc_chain(tmp_path, channels, precision, strides, pads, dilations):
    # MobileNetV2's depthwise 3x3: kiln's NHWC kernel keeps it in the chain (cuDNN's NHWC path rejects grouped
    # convolutions), with the bias applied before the store
    middle = onnx.helper.make_node("Conv", ["a", "wd", "bm"], ["p"], group=channels, strides=strides, pads=pads,
                                   dilations=dilations)
    kernels = _chain_model(tmp_path, channels, middle, precision)
    dw = [k for k in kernels if "_depthwise_kiln" in k]
    assert len(dw) == 1 and "_nhwc_in_out" in dw[0], kernels


def test_inspect_shows_the_tactic_per_layer(zoo_dir):  # noqa: F811
    path = tiny_model(zoo_dir, "bert_base")
    out = run_kiln(["inspect", path, "--backend", "cuda", "--shape", "input_ids:1x16",
                    "--shape", "attention_mask:1x16"]).stdout
    assert "algo" in out  # cuBLASLt algorithm id/tile of the tuned matmuls


def test_timing_cache_is_written_and_reused(zoo_dir, tmp_path):  # noqa: F811
    path = tiny_model(zoo_dir, "resnet50")
    cache = tmp_path / "timing.cache"
    args = ["build", path, "--backend", "cuda", "--shape", "input:1x3x32x32", "--timing-cache", str(cache), "-v",
            "--output", str(tmp_path / "a.plan")]
    first = run_kiln(args)
    assert cache.exists() and cache.read_text().startswith("kiln-timing-cache 1 sm_")
    second = run_kiln(args)
    assert "tactics" in second.stderr
    assert "measured 0 problems" in second.stderr, second.stderr[-2000:]
    assert first.returncode == 0


@pytest.mark.parametrize("graphs", [True, False])
def test_bench_on_device_buffers(zoo_dir, graphs):  # noqa: F811
    path = tiny_model(zoo_dir, "resnet50")
    args = ["bench", path, "--backend", "cuda", "--shape", "input:2x3x32x32", "--iterations", "20", "--json"]
    if not graphs:
        args.append("--no-cuda-graph")
    r = json.loads(run_kiln(args).stdout.strip().splitlines()[-1])
    assert r["timing"] == "cuda_events" and r["cuda_graph"] == ("on" if graphs else "off")
    assert r["median_ms"] > 0 and r["h2d_ms"] >= 0 and r["wall_median_ms"] >= r["median_ms"] * 0.5

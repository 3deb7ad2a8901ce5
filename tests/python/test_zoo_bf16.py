"""--bf16 on the cpu backend: every zoo model (tiny variants, batch 1 and 3) against onnxruntime FP32, within the
bf16 tolerance of docs/PERFORMANCE.md: per output, cosine similarity >= 0.999 and relative L2 error
(||kiln - ort|| / ||ort||) <= 2e-2. Skipped where the CPU lacks AVX512-BF16; there the build must fail with a
message naming it, which is also checked on this machine by hiding bf16 from oneDNN (DNNL_MAX_CPU_ISA)."""
import os
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import make_zoo
from op_harness import kiln_bin, run_kiln

MIN_COSINE = 0.999
MAX_REL_L2 = 2e-2


def has_bf16():
    with open("/proc/cpuinfo") as f:
        return "avx512_bf16" in f.read()


needs_bf16 = pytest.mark.skipif(not has_bf16(), reason="the CPU lacks AVX512-BF16")


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_bf16")


def model_path(zoo_dir, name):
    path = os.path.join(zoo_dir, f"{name}_tiny.onnx")
    if not os.path.exists(path):
        onnx.save(make_zoo.make_model(name, True), path)
    return path


def errors(got, want):
    g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
    cosine = float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w)))
    rel_l2 = float(np.linalg.norm(g - w) / np.linalg.norm(w))
    return cosine, rel_l2


def run_bf16(path, feeds, tmp_path, extra=()):
    args = ["run", path, "--bf16", "--backend", "cpu", "--output-dir", str(tmp_path / "out")] + list(extra)
    for i, (k, v) in enumerate(feeds.items()):
        f = str(tmp_path / f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    run_kiln(args)
    return tmp_path / "out"


@needs_bf16
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_tiny_model_bf16_within_tolerance(zoo_dir, tmp_path, name, batch):
    path = model_path(zoo_dir, name)
    feeds = make_zoo.make_inputs(name, True, batch)
    out_dir = run_bf16(path, feeds, tmp_path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for n, want in zip(names, sess.run(None, feeds)):
        got = np.load(out_dir / f"{n}.npy")
        assert got.shape == want.shape, n
        cosine, rel_l2 = errors(got, want)
        assert cosine >= MIN_COSINE and rel_l2 <= MAX_REL_L2, f"{name} {n}: cosine {cosine:.6f}, rel L2 {rel_l2:.2e}"


@needs_bf16
def test_bf16_kernels_are_used(zoo_dir):
    proc = run_kiln(["inspect", model_path(zoo_dir, "bert_base"), "--bf16", "--backend", "cpu"])
    assert "matmul_bf16f32acc_dnnl" in proc.stdout, proc.stdout
    proc = run_kiln(["inspect", model_path(zoo_dir, "resnet50"), "--bf16", "--backend", "cpu"])
    assert "conv2d_bf16f32acc_" in proc.stdout, proc.stdout


def test_bf16_without_avx512_bf16_is_unsupported(zoo_dir, tmp_path):
    env = dict(os.environ, DNNL_MAX_CPU_ISA="AVX512_CORE_VNNI")  # oneDNN then never uses bf16 instructions
    proc = subprocess.run([kiln_bin(), "build", model_path(zoo_dir, "bert_base"), "--bf16", "--backend", "cpu",
                           "-o", str(tmp_path / "m.plan")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "AVX512-BF16" in proc.stderr and "fp32" in proc.stderr, proc.stderr
    assert not (tmp_path / "m.plan").exists()


@needs_bf16
@pytest.mark.parametrize("batch", [1, 3])
def test_resnet_bf16_activations_within_tolerance(tmp_path, batch):
    """A ResNet-50 of width 16 (the tiny one has 8 channels, too few to block) with a fixed input shape: its
    convolutions, MaxPool and GlobalAveragePool exchange bf16 nChw16c values (nChw16c_bf16), within the tolerance."""
    import zoo
    cfg = dict(image=64, classes=10, base=16, blocks=[1, 2, 1, 1])
    path = str(tmp_path / "resnet_w16.onnx")
    onnx.save(zoo.BUILDERS["resnet50"](cfg, 1234), path)
    feeds = {"input": np.random.default_rng(batch).standard_normal((batch, 3, 64, 64)).astype(np.float32)}
    shape = ["--shape", f"input:{batch}x3x64x64"]
    proc = run_kiln(["inspect", path, "--bf16", "--backend", "cpu"] + shape)
    assert "conv2d_bf16f32acc_nChw16c_bf16_nChw16c_bf16_dnnl" in proc.stdout, proc.stdout
    assert "max_pool2d_bf16_nChw16c_bf16" in proc.stdout and "global_avg_pool_bf16" in proc.stdout, proc.stdout
    out_dir = run_bf16(path, feeds, tmp_path, shape)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)[0]
    got = np.load(out_dir / f"{sess.get_outputs()[0].name}.npy")
    cosine, rel_l2 = errors(got, want)
    assert cosine >= MIN_COSINE and rel_l2 <= MAX_REL_L2, f"cosine {cosine:.6f}, rel L2 {rel_l2:.2e}"

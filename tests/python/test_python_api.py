"""The Python package (kiln.build / load / Engine / Context): every tiny zoo model built, saved, loaded and run
against onnxruntime, DLPack round trips (numpy always, torch where installed), progress, Ctrl-C and the CLI."""
import os
import signal
import subprocess
import sys

import numpy as np
import onnx
import pytest

import kiln
import make_zoo

TOL = 1e-4


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pyzoo")


def tiny_model(zoo_dir, name):
    path = os.path.join(zoo_dir, f"{name}_tiny.onnx")
    if not os.path.exists(path):
        onnx.save(make_zoo.make_model(name, True), path)
    return path


def ort_outputs(path, feeds):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def assert_close(got, expected):
    assert list(got) == list(expected), (list(got), list(expected))
    for name, ref in expected.items():
        out = got[name]
        assert isinstance(out, np.ndarray) and out.dtype == ref.dtype and out.shape == ref.shape, name
        scale = max(float(np.max(np.abs(ref))), 1.0) if ref.size else 1.0
        err = float(np.max(np.abs(out.astype(np.float64) - ref))) if ref.size else 0.0
        assert err <= TOL * scale, f"{name}: max abs error {err} > {TOL} * {scale}"


@pytest.fixture(scope="module")
def resnet(zoo_dir):
    return kiln.build(tiny_model(zoo_dir, "resnet50"))


@pytest.mark.parametrize("name", make_zoo.MODELS)
def test_zoo_build_save_load_run(zoo_dir, tmp_path, name):
    path = tiny_model(zoo_dir, name)
    engine = kiln.build(path, threads=2)
    assert [i.name for i in engine.inputs] == [i.name for i in onnx.load(path).graph.input]
    assert engine.build_report is not None and engine.build_report.final_nodes > 0
    feeds = make_zoo.make_inputs(name, True, 2)
    expected = ort_outputs(path, feeds)
    assert_close(engine.create_context().run(feeds), expected)

    plan = tmp_path / "model.plan"
    engine.save(plan)
    loaded = kiln.load(plan, threads=1)
    assert loaded.inputs == engine.inputs and loaded.outputs == engine.outputs
    out = loaded.create_context().run(feeds)
    assert_close(out, expected)
    again = kiln.deserialize(engine.serialize()).run(**feeds)
    for k in out:
        np.testing.assert_array_equal(out[k], again[k])


def test_engine_io_description(resnet):
    (inp,), (out,) = resnet.inputs, resnet.outputs
    assert inp == kiln.TensorInfo("input", ("batch", 3, 32, 32), "float32")
    assert out.name == "output" and out.shape[0] == "batch" and out.dtype == "float32"
    assert resnet.input_names == ["input"] and resnet.output_names == ["output"]
    assert "batchx3x32x32" in repr(resnet)
    assert resnet.backend == "cpu" and resnet.memory["weight_bytes"] > 0 and resnet.layers


def test_call_single_input(resnet):
    x = make_zoo.make_inputs("resnet50", True, 3)["input"]
    y = resnet(x)
    assert isinstance(y, np.ndarray) and y.shape == (3, 10)
    np.testing.assert_array_equal(y, resnet.create_context().run({"input": x})["output"])
    np.testing.assert_array_equal(y, resnet(input=x))


def test_symbolic_batch_sizes(resnet):
    ctx = resnet.create_context(threads=2)
    assert ctx.threads == 2
    for batch in (1, 4, 2):
        x = make_zoo.make_inputs("resnet50", True, batch)["input"]
        assert ctx.run({"input": x})["output"].shape == (batch, 10)


def test_outputs_own_their_memory(resnet):
    ctx = resnet.create_context()
    x = make_zoo.make_inputs("resnet50", True, 1)["input"]
    a = ctx.run({"input": x})["output"]
    keep = a.copy()
    ctx.run({"input": x * 2})  # a second run must not overwrite the first run's outputs
    np.testing.assert_array_equal(a, keep)
    a[...] = 0  # writable, like any numpy array


def test_dlpack_numpy_round_trip(resnet):
    x = make_zoo.make_inputs("resnet50", True, 2)["input"]
    ref = resnet.create_context().run({"input": x})["output"]

    class DLPackOnly:  # any producer of the DLPack protocol, not a numpy array
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kwargs):
            return self.a.__dlpack__(**kwargs)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    out = resnet.create_context().run({"input": DLPackOnly(x)}, output="dlpack")["output"]
    assert not isinstance(out, np.ndarray) and hasattr(out, "__dlpack__")
    np.testing.assert_array_equal(np.from_dlpack(out), ref)


def test_non_contiguous_and_list_inputs(resnet):
    x = make_zoo.make_inputs("resnet50", True, 2)["input"]
    ref = resnet(x)
    strided = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(resnet(strided), ref)
    np.testing.assert_array_equal(resnet(x.tolist()), ref)  # lists take the engine's dtype
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(resnet(ro), ref)


def test_torch_dlpack_round_trip(resnet):
    torch = pytest.importorskip("torch")
    x = make_zoo.make_inputs("resnet50", True, 2)["input"]
    ref = resnet(x)
    tx = torch.from_numpy(x).requires_grad_(True)
    out = resnet.create_context().run({"input": tx})["output"]
    np.testing.assert_array_equal(out, ref)
    t = torch.from_dlpack(resnet.create_context().run({"input": tx}, output="dlpack")["output"])
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), ref)
    np.testing.assert_array_equal(torch.from_dlpack(out).numpy(), ref)
    np.testing.assert_array_equal(resnet(tx.detach().permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)), ref)


def test_progress_callback_and_tqdm_like(zoo_dir):
    calls = []
    kiln.build(tiny_model(zoo_dir, "gpt2"), progress=lambda stage, f: calls.append((stage, f)))
    fractions = [f for _, f in calls]
    assert calls[0] == ("parse", 0.0) and calls[-1] == ("done", 1.0)
    assert fractions == sorted(fractions) and any(s.startswith("optimize: ") for s, _ in calls)

    class Bar:  # the part of tqdm's interface kiln uses
        def __init__(self):
            self.n, self.total, self.desc = 0.0, 100, ""

        def update(self, k):
            self.n += k

        def set_description(self, d):
            self.desc = d

    bar = Bar()
    kiln.build(tiny_model(zoo_dir, "gpt2"), progress=bar)
    assert bar.n == pytest.approx(100) and bar.desc == "done"


def test_text_progress_bar(zoo_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # force the built-in bar
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    kiln.build(tiny_model(zoo_dir, "resnet50"), progress=True)
    err = capsys.readouterr().err
    assert "kiln build" in err and "100.0%" in err


def test_ctrl_c_interrupts_a_build(zoo_dir):
    path = tiny_model(zoo_dir, "bert_base")

    def interrupt(stage, fraction):
        if stage.startswith("optimize: "):  # called from inside the C++ builder, between passes
            signal.raise_signal(signal.SIGINT)

    # Python leaves SIGINT ignored when it starts ignored (a shell's background job, `nohup cmd &`): install the
    # handler a terminal's Ctrl-C reaches, for the test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            kiln.build(path, progress=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert kiln.build(path).outputs  # kiln is fine afterwards


def test_python_logger_receives_messages(zoo_dir):
    class Collect(kiln.Logger):
        def __init__(self):
            super().__init__()
            self.messages = []

        def log(self, severity, message):
            self.messages.append((severity, message))

    logger = Collect()
    kiln.build(tiny_model(zoo_dir, "resnet50"), logger=logger)
    assert any(s == kiln.Severity.VERBOSE and m.startswith("pass ") for s, m in logger.messages)


def test_model_as_bytes_and_proto(zoo_dir):
    path = tiny_model(zoo_dir, "mobilenetv2")
    x = make_zoo.make_inputs("mobilenetv2", True, 1)
    a = kiln.build(open(path, "rb").read()).run(x)
    b = kiln.build(onnx.load(path), opt_level=0).run(x)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5)


def test_input_shapes_fix_symbolic_dims(zoo_dir):
    engine = kiln.build(tiny_model(zoo_dir, "resnet50"), input_shapes={"input": (2, 3, 32, 32)})
    assert engine.inputs[0].shape == (2, 3, 32, 32)


def test_build_info_and_cuda():
    info = kiln.build_info()
    assert info["version"] == kiln.__version__ and "cpu" in info["backends"]
    assert kiln.cuda_available() == ("cuda" in info["backends"])


def test_help_is_useful():
    doc = kiln.build.__doc__
    for word in ("precision", "device", "opt_level", "threads", "timing_cache", "progress", "UnsupportedError",
                 "KeyboardInterrupt"):
        assert word in doc
    assert kiln.Context.run.__doc__ and kiln.NetworkDefinition.add_layer.__doc__


def test_cli_as_module(zoo_dir, tmp_path):
    path = tiny_model(zoo_dir, "resnet50")
    plan = tmp_path / "m.plan"
    run = [sys.executable, "-m", "kiln"]
    proc = subprocess.run(run + ["--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and kiln.__version__ in proc.stdout
    proc = subprocess.run(run + ["build", path, "-o", str(plan)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert kiln.load(plan).inputs[0].name == "input"
    proc = subprocess.run(run + ["compare", path, "--batch", "2"], capture_output=True, text=True)
    assert proc.returncode == 0 and "all outputs match" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(run + ["build", str(tmp_path / "missing.onnx"), "-o", str(plan)], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "missing.onnx" in proc.stderr


def test_example_script_runs():
    """examples/pytorch_to_kiln.py runs end to end on the CPU (with or without torch installed)."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "pytorch_to_kiln.py")
    proc = subprocess.run([sys.executable, script, "--iterations", "2", "--threads", "1"], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: outputs match" in proc.stdout

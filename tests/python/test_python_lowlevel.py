"""The TensorRT-style low-level API: Logger, NetworkDefinition built in code, OnnxParser, BuilderConfig (flags,
memory limit, optimisation level), Builder, Runtime.deserialize and ExecutionContext."""
import numpy as np
import onnx
import pytest

import kiln
import make_zoo


class Collect(kiln.Logger):
    def __init__(self):
        super().__init__()
        self.messages = []

    def log(self, severity, message):
        self.messages.append((severity, message))


def small_network(rng):
    w1 = rng.standard_normal((4, 8)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    net = kiln.NetworkDefinition()
    x = net.add_input("x", "float32", ("batch", 4))
    h = net.add_layer("MatMul", [x, net.add_constant("w1", w1)], name="fc1")[0]
    h = net.add_layer("Add", [h, net.add_constant("b1", b1)])[0]
    h = net.add_layer("Relu", [h])[0]
    h = net.add_layer("MatMul", [h, net.add_constant("w2", w2)], name="fc2")[0]
    y = net.add_layer("Softmax", [h], {"axis": -1}, name="probs")[0]
    net.mark_output(y)

    def reference(a):
        z = np.maximum(a @ w1 + b1, 0) @ w2
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return net, y, reference


def test_network_in_code_build_serialize_deserialize_run():
    net, y, reference = small_network(np.random.default_rng(0))
    assert net.num_layers == 5 and net.input_names == ["x"] and net.output_names == [y]
    assert "MatMul" in net.to_text() and "5 layers" in repr(net)

    logger = Collect()
    builder = kiln.Builder(logger)
    config = kiln.BuilderConfig()
    config.opt_level = 2
    config.memory_limit = 1 << 20
    report = kiln.BuildReport()
    engine = builder.build(net, config, report)
    assert report.imported_nodes == 5 and report.passes and isinstance(report.passes[0], kiln.PassStat)
    assert any(m.startswith("pass ") for _, m in logger.messages)
    (inp,) = engine.inputs
    assert inp.name == "x" and inp.dtype == kiln.DataType.FLOAT32 and inp.shape == ("batch", 4)

    plan = builder.build_serialized(net, config)
    runtime = kiln.Runtime(kiln.NullLogger())
    loaded = runtime.deserialize(plan, "small.plan")
    del builder, runtime, logger  # engines keep what they need alive
    ctx = loaded.create_context()
    ctx.num_threads = 2
    ctx.set_profiling(True)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    out = ctx.run({"x": x})
    np.testing.assert_allclose(out[y], reference(x), rtol=1e-5, atol=1e-6)
    assert [name for name, _ in ctx.last_profile()]
    # the same engine through the high-level wrapper
    np.testing.assert_array_equal(kiln.Engine(loaded)(x), out[y])


def test_layer_attributes_of_every_kind():
    net = kiln.NetworkDefinition()
    x = net.add_input("x", np.float32, (1, 1, 4, 4))
    w = net.add_constant("w", np.ones((2, 1, 3, 3), np.float32))
    y = net.add_layer("Conv", [x, w, ""], {"pads": [1, 1, 1, 1], "strides": (1, 1), "kernel_shape": [3, 3],
                                          "group": np.int64(1)})[0]
    y = net.add_layer("LeakyRelu", [y], {"alpha": 0.5})[0]
    z = net.add_layer("Pad", [y, net.add_constant("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))],
                      {"mode": "constant"})[0]
    net.mark_output(z)
    engine = kiln.Builder(kiln.NullLogger()).build(net, kiln.BuilderConfig())
    x_val = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4) - 8
    out = next(iter(engine.create_context().run({"x": x_val}).values()))
    assert out.shape == (1, 2, 6, 6)
    with pytest.raises(kiln.InvalidArgumentError, match="attribute 'bad'"):
        net.add_layer("Relu", [x], {"bad": object()})
    with pytest.raises(kiln.InvalidArgumentError, match="unknown data type"):
        net.add_input("q", "float13", (1,))


def test_onnx_parser_and_config_flags(tmp_path):
    path = str(tmp_path / "mlp.onnx")
    onnx.save(make_zoo.make_model("gpt2", True), path)
    logger = kiln.StderrLogger(kiln.Severity.ERROR)
    net = kiln.NetworkDefinition()
    kiln.OnnxParser(net, logger).parse_file(path)
    net2 = kiln.NetworkDefinition()
    kiln.OnnxParser(net2, logger).parse_bytes(open(path, "rb").read(), "gpt2.onnx")
    assert net.num_layers == net2.num_layers > 0

    config = kiln.BuilderConfig()
    config.set_flag(kiln.BuilderFlag.FP16)
    assert config.get_flag(kiln.BuilderFlag.FP16)
    with pytest.raises(kiln.UnsupportedError, match="fp16"):
        kiln.Builder(logger).build(net, config)
    config.clear_flag(kiln.BuilderFlag.FP16)
    config.backend = "cuda"
    if not kiln.cuda_available():
        with pytest.raises(kiln.UnsupportedError, match="CUDA backend is not available"):
            config.validate()
    else:
        config.validate()  # compiled in; running still needs a GPU
    config.backend = "reference"
    config.opt_level = 0
    config.input_shapes = {name: (2, 16) for name in net.input_names}
    engine = kiln.Builder(logger).build(net, config)
    assert engine.target_backend == "reference"
    feeds = make_zoo.make_inputs("gpt2", True, 2)
    assert engine.create_context().run(feeds)
    with pytest.raises(kiln.FileError):
        kiln.OnnxParser(kiln.NetworkDefinition(), logger).parse_file(str(tmp_path / "missing.onnx"))


def test_runtime_errors_are_kiln_errors():
    runtime = kiln.Runtime(kiln.NullLogger())
    with pytest.raises(kiln.InvalidPlanError):
        runtime.deserialize(b"not a plan at all, not even close" * 4)

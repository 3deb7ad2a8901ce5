"""The Python package on a GPU (skipped without one, or without torch with CUDA): device='cuda' engines read torch
CUDA tensors in place and return zero-copy device outputs (output='cuda') that torch.from_dlpack turns into CUDA
tensors; the results match the CPU engine."""
import numpy as np
import pytest

import kiln
import make_zoo

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not (kiln.cuda_available() and torch.cuda.is_available()),
                                reason="needs kiln built with CUDA and a GPU visible to torch")


def test_torch_cuda_in_and_out_zero_copy(tmp_path):
    path = tmp_path / "resnet.onnx"
    import onnx
    onnx.save(make_zoo.make_model("resnet50", True), path)
    x = make_zoo.make_inputs("resnet50", True, 2)["input"]
    host = "cpu" if "cpu" in kiln.build_info()["backends"] else "reference"  # GPU boxes may lack oneDNN
    want = kiln.build(str(path), device=host, input_shapes={"input": x.shape})(x)
    engine = kiln.build(str(path), device="cuda", input_shapes={"input": x.shape})
    ctx = engine.create_context()
    xt = torch.from_numpy(x).cuda()
    for _ in range(3):  # eager, capture, replay (the pooled output buffer is released each time)
        out = ctx.run({"input": xt}, output="cuda")
        (name, arr), = out.items()
        y = torch.from_dlpack(arr)
        assert y.is_cuda and tuple(y.shape) == want.shape
        np.testing.assert_allclose(y.cpu().numpy(), want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
        del y, arr, out
    host = ctx.run({"input": xt})  # CUDA input, numpy output
    np.testing.assert_allclose(next(iter(host.values())), want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))

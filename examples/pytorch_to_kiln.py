#!/usr/bin/env python3
"""From PyTorch to kiln: export a model with torch.onnx.export, build it with kiln, compare the outputs with
PyTorch and onnxruntime, and benchmark. See docs/python.md.

    python examples/pytorch_to_kiln.py                       # torchvision resnet18 (or a small CNN without torchvision)
    python examples/pytorch_to_kiln.py --model hf-bert       # a tiny Hugging Face BERT (needs transformers)
    python examples/pytorch_to_kiln.py --iterations 50 --threads 4
    python examples/pytorch_to_kiln.py --device cuda         # GPU engine, torch CUDA tensors in and out (no copies)

Where PyTorch is not installed the script says so and runs the kiln half (build, compare with onnxruntime,
benchmark) on a small ONNX model made with onnx.helper instead, so it always runs end to end on the CPU.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

import kiln


def export_torchvision(path, batch):
    import torch
    try:
        import torchvision
        model = torchvision.models.resnet18(weights=None).eval()  # random weights: no download needed
        what = "torchvision resnet18"
    except ImportError:
        print("torchvision is not installed (pip install torchvision): using a small torch CNN instead")
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2), torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10)).eval()
        what = "a small torch CNN"
    x = torch.randn(batch, 3, 224, 224)
    torch.onnx.export(model, (x,), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    return what, model, {"input": x.numpy()}


def export_hf_bert(path, batch):
    import torch
    from transformers import BertConfig, BertModel
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    model = BertModel(config).eval()  # random weights: no download needed
    ids = torch.randint(0, config.vocab_size, (batch, 16))
    mask = torch.ones_like(ids)
    torch.onnx.export(model, (ids, mask), path, input_names=["input_ids", "attention_mask"],
                      output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch"} for n in ("input_ids", "attention_mask", "last_hidden_state")})

    class FirstOutput(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return "a tiny Hugging Face BERT", FirstOutput().eval(), {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}


def make_onnx_without_torch(path, batch):
    """The same kind of small CNN, written directly with onnx.helper (no PyTorch needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((16, 3, 3, 3)) * 0.2).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((rng.standard_normal((10, 16)) * 0.2).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "small_cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                                 ["batch", 3, 64, 64])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                              initializer=[w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return "a small CNN written with onnx.helper", None, {"input": rng.standard_normal((batch, 3, 64, 64),
                                                                                     dtype=np.float32)}


def max_error(a, b):
    """Max abs error relative to the reference's scale (as `kiln compare` reports it)."""
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - b)) / max(np.max(np.abs(b)), 1e-12))


def bench(fn, iterations, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["torchvision", "hf-bert"], default="torchvision")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="kiln_example_")
    onnx_path = os.path.join(workdir, "model.onnx")
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install torch torchvision): skipping the export and the PyTorch "
              "comparison, running the kiln part on an ONNX model built with onnx.helper.")
    if torch is None:
        what, model, feeds = make_onnx_without_torch(onnx_path, args.batch)
    elif args.model == "hf-bert":
        what, model, feeds = export_hf_bert(onnx_path, args.batch)
    else:
        what, model, feeds = export_torchvision(onnx_path, args.batch)
    print(f"1. model: {what} -> {onnx_path}")

    # 2. Build with kiln (fp32, on the CPU or the GPU), save the plan, load it back.
    engine = kiln.build(onnx_path, precision="fp32", device=args.device, opt_level=3, threads=args.threads,
                        progress=True)
    plan_path = os.path.join(workdir, "model.plan")
    engine.save(plan_path)
    engine = kiln.load(plan_path, threads=args.threads)
    print(f"2. built and saved {plan_path}: {engine}")
    rep = engine.build_report
    if rep is not None:
        print(f"   {rep.imported_nodes} -> {rep.final_nodes} nodes in {rep.total_ms:.1f} ms")

    # 3. Run and compare with PyTorch and onnxruntime.
    ctx = engine.create_context()
    out = ctx.run(feeds)
    name, result = next(iter(out.items()))
    ok = True
    if model is not None:
        with torch.no_grad():
            ref = model(*[torch.from_numpy(v) for v in feeds.values()])
        err = max_error(result, ref.numpy())
        ok &= err <= args.tolerance
        print(f"3. kiln vs PyTorch     ({name}): max error {err:.2e} of the output scale")
        # inputs can also be torch tensors (DLPack, zero copy), and outputs go back to torch without a copy
        if args.device == "cuda":  # CUDA tensors in, CUDA tensors out: nothing goes through the host
            cuda_feeds = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
            t_out = torch.from_dlpack(ctx.run(cuda_feeds, output="cuda")[name])
            assert t_out.is_cuda
            err = max_error(t_out.cpu().numpy(), result)
            ok &= err <= args.tolerance
            print(f"   torch CUDA tensors in and out: max error {err:.2e} against the numpy path")
        else:
            t_out = torch.from_dlpack(ctx.run({k: torch.from_numpy(v) for k, v in feeds.items()})[name])
            assert torch.equal(t_out, torch.from_numpy(result))
    try:
        import onnxruntime as ort
    except ImportError:
        sess = None
        print("   onnxruntime is not installed (pip install onnxruntime): skipping that comparison")
    else:
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        err = max_error(result, sess.run([name], feeds)[0])
        ok &= err <= args.tolerance
        print(f"3. kiln vs onnxruntime ({name}): max error {err:.2e} of the output scale")

    # 4. Benchmark (median latency).
    print(f"4. benchmark, batch {args.batch}, {args.iterations} iterations, {args.device}:")
    print(f"   kiln         {bench(lambda: ctx.run(feeds), args.iterations):8.2f} ms  (numpy in and out)")
    if args.device == "cuda" and model is not None:
        print(f"   kiln         {bench(lambda: ctx.run(cuda_feeds, output='cuda'), args.iterations):8.2f} ms  "
              "(torch CUDA tensors in and out)")
    if sess is not None:
        print(f"   onnxruntime  {bench(lambda: sess.run(None, feeds), args.iterations):8.2f} ms")
    if model is not None:
        torch.set_num_threads(args.threads)
        dev = torch.device(args.device)
        model = model.to(dev)
        tensors = [torch.from_numpy(v).to(dev) for v in feeds.values()]

        def torch_run():
            model(*tensors)
            if args.device == "cuda":
                torch.cuda.synchronize()
        with torch.no_grad():
            print(f"   pytorch      {bench(torch_run, args.iterations):8.2f} ms  (eager)")
    print("OK: outputs match" if ok else f"MISMATCH: error above {args.tolerance}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

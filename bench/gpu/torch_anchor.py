#!/usr/bin/env python3
"""GPU anchors in the same run: PyTorch eager and PyTorch + CUDA graph vs kiln (--backend cuda), FP32 and FP16.

    python bench/gpu/torch_anchor.py --kiln build-gpu/kiln [--models resnet50,bert_base] [--batches 1,32]

Models are built in PyTorch with random weights (torchvision ResNet-50, Hugging Face BertModel from a config; no
downloads), exported with torch.onnx.export, and the same ONNX file is given to kiln. Torch times use CUDA events
on device-resident inputs; kiln's `bench` time includes the host<->device copies of inputs and outputs (reported
as such). torch.compile(max-autotune) is left out here: it compiles for minutes (ANCHORS.md has its numbers).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch


def build_model(name, batch):
    if name == "resnet50":
        import torchvision
        m = torchvision.models.resnet50(weights=None).eval()
        x = (torch.randn(batch, 3, 224, 224),)
        return m, x, ["input"], {"input": f"input:{batch}x3x224x224"}
    if name == "bert_base":
        from transformers import BertConfig, BertModel
        cfg = BertConfig(attn_implementation="eager")
        bert = BertModel(cfg, add_pooling_layer=False).eval()

        class Wrapped(torch.nn.Module):  # positional (ids, mask) -> last hidden state, for export and timing
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        m = Wrapped().eval()
        ids = torch.randint(0, cfg.vocab_size, (batch, 128))
        mask = torch.ones(batch, 128, dtype=torch.int64)
        return m, (ids, mask), ["input_ids", "attention_mask"], {
            "input_ids": f"input_ids:{batch}x128", "attention_mask": f"attention_mask:{batch}x128"}
    raise ValueError(name)


def time_cuda(fn, warmup=10, iters=100):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2], times[int(0.99 * (len(times) - 1))]


def torch_times(model, inputs, half):
    dev = torch.device("cuda")
    m = model.to(dev)
    xs = [t.to(dev) for t in inputs]
    if half:
        m = m.half()
        xs = [t.half() if t.is_floating_point() else t for t in xs]
    with torch.inference_mode():
        eager = time_cuda(lambda: m(*xs))
        try:
            graph = capture_and_time(m, xs)
        except RuntimeError as e:  # e.g. HF masks that copy host tensors while capturing
            print(f"CUDA graph capture failed: {str(e).splitlines()[0]}", file=sys.stderr)
            graph = (float("nan"), float("nan"))
    return eager, graph


def capture_and_time(m, xs):
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            m(*xs)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        m(*xs)
    return time_cuda(g.replay)


def kiln_times(kiln, path, shapes, half):
    args = [kiln, "bench", path, "--backend", "cuda", "--warmup", "10", "--iterations", "100", "--json"]
    for s in shapes.values():
        args += ["--shape", s]
    if half:
        args.append("--fp16")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return None, proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return (r["median_ms"], r["p99_ms"]), r.get("build_s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models", default="resnet50,bert_base")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for batch in map(int, args.batches.split(",")):
                model, inputs, names, shapes = build_model(name, batch)
                path = os.path.join(tmp, f"{name}_{batch}.onnx")
                torch.onnx.export(model, inputs, path, input_names=names, opset_version=17, dynamo=False)
                for half in (False, True):
                    eager, graph = torch_times(model, inputs, half)
                    k, build_s = kiln_times(args.kiln, path, shapes, half)
                    rows.append({"model": name, "batch": batch, "precision": "fp16" if half else "fp32",
                                 "torch_eager_ms": eager[0], "torch_cuda_graph_ms": graph[0],
                                 "kiln_ms": k[0] if k else None, "kiln_p99_ms": k[1] if k else None,
                                 "kiln_build_s": build_s if k else None, "kiln_error": None if k else build_s})
                    print(json.dumps(rows[-1]), flush=True)
                    if args.json:
                        with open(args.json, "w") as f:
                            json.dump(rows, f, indent=1)
                model.cpu()
    print(f"\n{'model':<10}{'batch':>6}{'prec':>6}{'eager ms':>10}{'graph ms':>10}{'kiln ms':>10}"
          f"{'kiln/graph':>12}")
    for r in rows:
        k = r["kiln_ms"]
        print(f"{r['model']:<10}{r['batch']:>6}{r['precision']:>6}{r['torch_eager_ms']:>10.3f}"
              f"{r['torch_cuda_graph_ms']:>10.3f}{(k if k else float('nan')):>10.3f}"
              f"{(k / r['torch_cuda_graph_ms'] if k else float('nan')):>12.2f}")
    print(f"device: {torch.cuda.get_device_name()} torch {torch.__version__}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())

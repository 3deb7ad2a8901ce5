#!/usr/bin/env python3
"""GPU benchmark: kiln (--backend cuda) against PyTorch eager, PyTorch + CUDA graph and torch.compile, in one run
on one GPU, per model, batch and precision.

    python bench/gpu/gpu_bench.py --kiln build-gpu/kiln [--models resnet50,bert_base] [--batches resnet50=1,32,256]
                                  [--precisions fp32,tf32,fp16] [--compile max-autotune --compile-models resnet50]
                                  [--json out.json]

Models are built in PyTorch with random weights (torchvision ResNet-50, MobileNetV2, ViT-B/16; Hugging Face BERT-base
and GPT-2 from configs: no downloads), exported with torch.onnx.export, and the same ONNX file is built by kiln with
fixed shapes. Precisions: fp32 (TF32 off on both sides), tf32 (PyTorch's allow_tf32 on / kiln --tf32), fp16
(model.half() / kiln --fp16; kiln keeps fp32 I/O). Every time is a median (and p99) of CUDA-event intervals on
device-resident inputs: kiln's comes from `kiln bench` (device buffers + enqueue; host<->device copies are reported
in their own columns), PyTorch's from events around the call or the graph replay. Build/compile seconds are wall time.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

DEFAULT_BATCHES = {"resnet50": [1, 32, 256], "bert_base": [1, 32], "mobilenetv2": [1, 32], "vit_b16": [1, 32],
                   "gpt2": [1, 32]}


def hf_wrapper(core, kind):
    class Wrapped(torch.nn.Module):  # positional inputs -> last hidden state, for export and timing
        def __init__(self):
            super().__init__()
            self.core = core

        def forward(self, input_ids, attention_mask=None):
            if kind == "gpt2":  # an explicit all-ones mask keeps transformers' packed-sequence check (aten::diff,
                # which torch.onnx.export cannot export) out of the graph; the math is the same
                return self.core(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                 use_cache=False).last_hidden_state
            return self.core(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return Wrapped().eval()


def build_model(name, batch):
    """(module, example inputs, input names, kiln --shape specs)."""
    import torchvision
    if name in ("resnet50", "mobilenetv2", "vit_b16"):
        ctor = {"resnet50": torchvision.models.resnet50, "mobilenetv2": torchvision.models.mobilenet_v2,
                "vit_b16": torchvision.models.vit_b_16}[name]
        return ctor(weights=None).eval(), (torch.randn(batch, 3, 224, 224),), ["input"], [f"input:{batch}x3x224x224"]
    seq = 128
    if name == "bert_base":
        from transformers import BertConfig, BertModel
        cfg = BertConfig(attn_implementation="eager")
        m = hf_wrapper(BertModel(cfg, add_pooling_layer=False), "bert")
        ids = torch.randint(0, cfg.vocab_size, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.int64)
        return m, (ids, mask), ["input_ids", "attention_mask"], [f"input_ids:{batch}x{seq}",
                                                                 f"attention_mask:{batch}x{seq}"]
    if name == "gpt2":
        from transformers import GPT2Config, GPT2Model
        cfg = GPT2Config(attn_implementation="eager")
        m = hf_wrapper(GPT2Model(cfg), "gpt2")
        return m, (torch.randint(0, cfg.vocab_size, (batch, seq)),), ["input_ids"], [f"input_ids:{batch}x{seq}"]
    raise ValueError(f"unknown model {name}")


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


def set_tf32(on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


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


NAN = (float("nan"), float("nan"))


def torch_times(model, inputs, precision, compile_mode):
    dev = torch.device("cuda")
    set_tf32(precision == "tf32")
    m = model.to(dev)
    xs = [t.to(dev) for t in inputs]
    if precision == "fp16":
        m = m.half()
        xs = [t.half() if t.is_floating_point() else t for t in xs]
    res = {}
    with torch.inference_mode():
        res["eager"] = time_cuda(lambda: m(*xs))
        try:
            res["graph"] = capture_and_time(m, xs)
        except RuntimeError as e:  # e.g. HF masks that copy host tensors while capturing
            print(f"  PyTorch CUDA graph capture failed: {str(e).splitlines()[0][:200]}", file=sys.stderr)
            res["graph"] = NAN
            if len(xs) == 2:  # BERT: the benchmark's mask is all ones, so no mask is the same math and may capture
                try:
                    res["graph"] = capture_and_time(m, xs[:1])
                    print("  PyTorch CUDA graph: captured without the (all-ones) attention mask", file=sys.stderr)
                except RuntimeError as e2:
                    print(f"  ... and without the mask: {str(e2).splitlines()[0][:200]}", file=sys.stderr)
        res["compile"], res["compile_s"] = NAN, float("nan")
        if compile_mode:
            t0 = time.time()
            try:
                cm = torch.compile(m, mode=compile_mode)
                for _ in range(3):
                    cm(*xs)
                torch.cuda.synchronize()
                res["compile_s"] = time.time() - t0
                res["compile"] = time_cuda(lambda: cm(*xs))
            except Exception as e:  # noqa: BLE001  (report and go on)
                print(f"  torch.compile failed: {str(e).splitlines()[0][:200]}", file=sys.stderr)
            torch._dynamo.reset()
    set_tf32(False)
    return res


def kiln_times(kiln, path, shapes, precision):
    args = [kiln, "bench", path, "--backend", "cuda", "--warmup", "10", "--iterations", "200", "--json"]
    for s in shapes:
        args += ["--shape", s]
    if precision != "fp32":
        args.append(f"--{precision}")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        msg = " | ".join(proc.stderr.strip().splitlines()[-4:]) if proc.stderr.strip() else "failed"
        print(f"  kiln failed: {msg}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def kiln_profile(kiln, path, shapes, precision, top):
    """kiln's per-layer GPU times (CUDA events around each layer, no CUDA graph) summed per op type, and the slowest
    layers, printed to stderr."""
    flags = ["--backend", "cuda"] + [a for s in shapes for a in ("--shape", s)]
    flags += [] if precision == "fp32" else [f"--{precision}"]
    proc = subprocess.run([kiln, "bench", path, "--warmup", "5", "--iterations", "20", "--profile", "100000"] + flags,
                          capture_output=True, text=True, timeout=600)
    insp = subprocess.run([kiln, "inspect", path, "--json"] + flags, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or insp.returncode != 0:
        print(f"  kiln profile failed: {(proc.stderr + insp.stderr).strip()[-300:]}", file=sys.stderr)
        return
    nodes = {n["name"]: n for n in json.loads(insp.stdout)["nodes"]}
    layers = []
    for line in proc.stderr.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "ms" and parts[2].endswith("%"):
            layers.append((float(parts[0]), " ".join(parts[3:])))
    per_op = {}
    for ms, name in layers:
        n = nodes.get(name, {})
        key = f'{n.get("op", "?")} [{n.get("kernel", "?").split(" [")[0]}]'
        c, t = per_op.get(key, (0, 0.0))
        per_op[key] = (c + 1, t + ms)
    total = sum(ms for ms, _ in layers)
    print(f"  profile: {len(layers)} layers, {total:.3f} ms (launched one by one: includes launch gaps)",
          file=sys.stderr)
    for key, (c, t) in sorted(per_op.items(), key=lambda kv: -kv[1][1]):
        print(f"    {t:8.3f} ms  {100 * t / max(total, 1e-9):5.1f}%  {c:4d} x  {key}", file=sys.stderr)
    for ms, name in sorted(layers, reverse=True)[:top]:
        print(f"    {ms:8.3f} ms  {name}", file=sys.stderr)


def fmt(v, w=9, p=3):
    return f"{'-':>{w}}" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:>{w}.{p}f}"


def print_table(rows):
    print(f"\n{'model':<12}{'batch':>6}{'prec':>6} | {'kiln':>9}{'p99':>9}{'img|seq/s':>11}{'build s':>9}"
          f"{'h2d':>7}{'d2h':>7} | {'eager':>9}{'graph':>9}{'compile':>9}{'comp s':>8} | {'k/graph':>8}{'k/comp':>8}")
    for r in rows:
        k = r["kiln_ms"]
        best = r["torch_graph_ms"] if not math.isnan(r["torch_graph_ms"]) else r["torch_eager_ms"]
        print(f"{r['model']:<12}{r['batch']:>6}{r['precision']:>6} | {fmt(k)}{fmt(r['kiln_p99_ms'])}"
              f"{fmt(r['kiln_throughput'], 11, 0)}{fmt(r['kiln_build_s'], 9, 2)}{fmt(r['h2d_ms'], 7)}"
              f"{fmt(r['d2h_ms'], 7)} | {fmt(r['torch_eager_ms'])}{fmt(r['torch_graph_ms'])}"
              f"{fmt(r['torch_compile_ms'])}{fmt(r['torch_compile_s'], 8, 0)} | "
              f"{fmt(k / best if k else None, 8, 2)}{fmt(k / r['torch_compile_ms'] if k else None, 8, 2)}")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; times are medians of CUDA-event "
          f"intervals in ms; k/graph = kiln / PyTorch+CUDA graph (eager where capture fails)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", required=True, help="the kiln binary (built with CUDA)")
    ap.add_argument("--models", default="resnet50,mobilenetv2,bert_base,vit_b16,gpt2")
    ap.add_argument("--batches", default="", help="per model: resnet50=1,32,256;bert_base=1 (default: the issue's)")
    ap.add_argument("--precisions", default="fp32,tf32,fp16")
    ap.add_argument("--compile", default="", help="torch.compile mode for the anchor, e.g. max-autotune (slow)")
    ap.add_argument("--compile-models", default="", help="models to compile (default: all, when --compile is set)")
    ap.add_argument("--json", default="")
    ap.add_argument("--profile", type=int, default=0, help="also print kiln's time per op type and the N slowest layers")
    ap.add_argument("--no-torch", action="store_true", help="time kiln only (no PyTorch anchors)")
    args = ap.parse_args()
    batches = dict(DEFAULT_BATCHES)
    for item in filter(None, args.batches.split(";")):
        name, bs = item.split("=")
        batches[name] = [int(b) for b in bs.split(",")]
    compile_models = set(filter(None, args.compile_models.split(","))) or set(args.models.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for batch in batches[name]:
                model, inputs, names, shapes = build_model(name, batch)
                path = os.path.join(tmp, f"{name}_{batch}.onnx")
                try:
                    torch.onnx.export(model, inputs, path, input_names=names, opset_version=17, dynamo=False)
                except Exception as e:  # noqa: BLE001  (an exporter gap: report it, go on with the next model)
                    print(f"  torch.onnx.export failed for {name}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
                    continue
                for precision in args.precisions.split(","):
                    print(f"== {name} batch {batch} {precision}", file=sys.stderr, flush=True)
                    mode = args.compile if name in compile_models else ""
                    nan = (float("nan"), float("nan"))
                    t = ({"eager": nan, "graph": nan, "compile": nan, "compile_s": float("nan")} if args.no_torch
                         else torch_times(model, inputs, precision, mode))
                    k = kiln_times(args.kiln, path, shapes, precision)
                    if args.profile:
                        kiln_profile(args.kiln, path, shapes, precision, args.profile)
                    rows.append({"model": name, "batch": batch, "precision": precision,
                                 "kiln_ms": k["median_ms"] if k else None, "kiln_p99_ms": k["p99_ms"] if k else None,
                                 "kiln_throughput": k["throughput_per_s"] if k else None,
                                 "kiln_build_s": k["build_s"] if k else None, "h2d_ms": k["h2d_ms"] if k else None,
                                 "d2h_ms": k["d2h_ms"] if k else None,
                                 "torch_eager_ms": t["eager"][0], "torch_eager_p99_ms": t["eager"][1],
                                 "torch_graph_ms": t["graph"][0], "torch_graph_p99_ms": t["graph"][1],
                                 "torch_compile_ms": t["compile"][0], "torch_compile_s": t["compile_s"],
                                 "compile_mode": mode})
                    print(json.dumps(rows[-1]), flush=True)
                    if args.json:
                        with open(args.json, "w") as f:
                            json.dump(rows, f, indent=1)
                model.cpu()
                torch.cuda.empty_cache()
    print_table(rows)


if __name__ == "__main__":
    sys.exit(main())

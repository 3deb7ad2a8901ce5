#!/usr/bin/env python3
"""Generate the kiln test model zoo: random-weight ONNX models (opset 17, IR 8).

Usage:
  python tools/make_zoo.py --out DIR [--tiny] [--only NAME[,NAME]]
      writes DIR/<name>.onnx for each model, one line per model.
  python tools/make_zoo.py --check [--full] [--only NAME[,NAME]]
      builds each model (tiny unless --full), runs onnx.checker (full_check)
      and onnxruntime at batch 1 and 4, and prints output statistics.

Python API (tests do `sys.path.insert(0, "tools"); import make_zoo`):
  MODELS                                    list of model names
  make_model(name, tiny) -> onnx.ModelProto deterministic (fixed seed per model)
  make_inputs(name, tiny, batch, seed=0)    dict of valid random input arrays

Models are generated at test time and never committed. Weights are random
but scaled so activations stay O(1) (see tools/zoo/*.py).
"""
import argparse
import os
import sys
import time
import zlib

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import onnx  # noqa: E402

import zoo  # noqa: E402

MODELS = ["resnet50", "mobilenetv2", "efficientnet_b0", "bert_base", "gpt2", "vit_b16"]
TEXT_MODELS = ("bert_base", "gpt2")


def _check_name(name):
    if name not in zoo.BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def model_config(name: str, tiny: bool) -> dict:
    """The size configuration (hidden size, seq length, image size, ...) of a model."""
    _check_name(name)
    return dict(zoo.CONFIGS[name][bool(tiny)])


def make_model(name: str, tiny: bool) -> onnx.ModelProto:
    """Build model `name` (full size, or the tiny variant). Deterministic."""
    _check_name(name)
    seed = zlib.crc32(f"{name}:{'tiny' if tiny else 'full'}".encode())
    model = zoo.BUILDERS[name](model_config(name, tiny), seed)
    bad = {n.op_type for n in model.graph.node} - zoo.ALLOWED_OPS
    assert not bad, f"{name}: unsupported ops {bad}"
    return model


def make_inputs(model_name: str, tiny: bool, batch: int, seed: int = 0) -> dict:
    """Valid random inputs for `model_name` with the given batch size.

    Vision: "input" float32 [batch,3,H,W] ~ N(0,1).
    BERT: "input_ids" int64 in [0,vocab) and "attention_mask" int64 of ones with
    trailing zeros (row i pads (i % 4 + 1) * seq/8 positions; never all zero).
    GPT-2: "input_ids" int64 in [0,vocab).
    """
    cfg = model_config(model_name, tiny)
    rng = np.random.default_rng(seed)
    if model_name not in TEXT_MODELS:
        s = cfg["image"]
        return {"input": rng.standard_normal((batch, 3, s, s), dtype=np.float32)}
    seq = cfg["seq"]
    feeds = {"input_ids": rng.integers(0, cfg["vocab"], (batch, seq), dtype=np.int64)}
    if model_name == "bert_base":
        mask = np.ones((batch, seq), dtype=np.int64)
        for i in range(batch):
            pad = min(seq - 1, (i % 4 + 1) * max(1, seq // 8))
            mask[i, seq - pad:] = 0
        feeds["attention_mask"] = mask
    return feeds


def _stats(a):
    a = np.asarray(a, dtype=np.float64)
    return f"shape={list(a.shape)} mean={a.mean():+.4f} std={a.std():.4f} absmax={np.abs(a).max():.4f}"


def _semantic_checks(sess, name, feeds, out):
    """BERT: padded tokens must not affect other positions. GPT-2: causality."""
    problems = []
    if name == "bert_base":
        ids, mask = feeds["input_ids"].copy(), feeds["attention_mask"]
        keep = mask[0] == 1
        ids[0, ~keep] = (ids[0, ~keep] + 1) % (ids.max() + 1)
        o = sess.run(None, {**feeds, "input_ids": ids})[0]
        d = float(np.abs(o[0, keep] - out[0, keep]).max())
        if d > 1e-4:
            problems.append(f"attention_mask ignored (diff {d:g})")
    elif name == "gpt2":
        ids = feeds["input_ids"].copy()
        ids[:, -1] = (ids[:, -1] + 1) % (ids.max() + 1)
        o = sess.run(None, {"input_ids": ids})[0]
        d = float(np.abs(o[:, :-1] - out[:, :-1]).max())
        if d > 1e-4:
            problems.append(f"not causal (diff {d:g})")
    return problems


def check(names, tiny):
    """checker + onnxruntime at batch 1 and 4; returns True if all pass."""
    import onnxruntime as ort

    ok_all = True
    for name in names:
        t0 = time.perf_counter()
        model = make_model(name, tiny)
        onnx.checker.check_model(model, full_check=True)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        del model
        feeds4 = make_inputs(name, tiny, 4)
        out4 = sess.run(None, feeds4)[0]
        out1 = sess.run(None, {k: v[:1] for k, v in feeds4.items()})[0]
        out1b = sess.run(None, make_inputs(name, tiny, 1, seed=1))[0]
        std = float(out4.std())
        problems = []
        for label, o in (("b4", out4), ("b1", out1), ("b1'", out1b)):
            if not np.isfinite(o).all():
                problems.append(f"{label} non-finite")
        if not (1e-2 < std < 1e2):
            problems.append(f"std {std:g} out of range")
        if out4.shape[0] != 4 or out1.shape[0] != 1:
            problems.append("bad batch dim")
        diff = float(np.abs(out4[:1] - out1).max())
        if diff > 1e-3 * max(1.0, float(np.abs(out1).max())):
            problems.append(f"batch-1 vs batch-4 row 0 differ by {diff:g}")
        problems += _semantic_checks(sess, name, feeds4, out4)
        ok = not problems
        ok_all &= ok
        print(f"{'OK  ' if ok else 'FAIL'} {name:16s} b4 {_stats(out4)} | b1 {_stats(out1b)} "
              f"| b1/b4 maxdiff={diff:.2e} ({time.perf_counter() - t0:.1f}s)"
              + ("" if ok else "  <- " + "; ".join(problems)), flush=True)
    return ok_all


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="output directory for <name>.onnx files")
    ap.add_argument("--tiny", action="store_true", help="generate the tiny variants")
    ap.add_argument("--only", help="comma-separated subset of: " + ",".join(MODELS))
    ap.add_argument("--check", action="store_true",
                    help="run checker + onnxruntime (tiny models unless --full)")
    ap.add_argument("--full", action="store_true", help="with --check: check full-size models")
    args = ap.parse_args(argv)

    names = MODELS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            ap.error(f"unknown model(s) {unknown}; choose from {MODELS}")
    if args.check:
        return 0 if check(names, tiny=not args.full) else 1
    if not args.out:
        ap.error("--out DIR is required (or use --check)")
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        t0 = time.perf_counter()
        model = make_model(name, args.tiny)
        path = os.path.join(args.out, f"{name}.onnx")
        onnx.save(model, path)
        print(f"{path}: {len(model.graph.node)} nodes, {zoo.count_params(model):,} params, "
              f"{os.path.getsize(path) / 2**20:.1f} MiB, {time.perf_counter() - t0:.2f}s",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

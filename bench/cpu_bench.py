#!/usr/bin/env python3
"""CPU benchmark: kiln vs onnxruntime on the zoo models, in the same run on the same machine.

    .venv/bin/python bench/cpu_bench.py [--models resnet50,bert_base] [--tiny] [--batch 1] [--threads 1]

Prints a table of median/p99 latency for both and the ratio kiln/onnxruntime (lower is better for kiln).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_zoo  # noqa: E402


def bench_ort(path, feeds, threads, seconds, warmup=3):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        sess.run(None, feeds)
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def bench_kiln(kiln, path, feeds, tmp, threads, seconds, shapes):
    args = [kiln, "bench", path, "--json", "--duration", str(seconds), "--warmup", "3", "--threads", str(threads)]
    for i, (k, v) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}", "--shape", f"{k}:{'x'.join(map(str, v.shape))}"]
    r = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    return r["median_ms"], r["p99_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(make_zoo.MODELS))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = os.path.join(tmp, f"{name}.onnx")
            onnx.save(make_zoo.make_model(name, args.tiny), path)
            feeds = make_zoo.make_inputs(name, args.tiny, args.batch)
            km, kp = bench_kiln(args.kiln, path, feeds, tmp, args.threads, args.seconds, True)
            om, op = bench_ort(path, feeds, args.threads, args.seconds)
            rows.append((name, km, kp, om, op, km / om))
    print(f"{'model':<18}{'kiln med ms':>12}{'kiln p99':>10}{'ort med ms':>12}{'ort p99':>10}{'kiln/ort':>10}")
    for r in rows:
        print(f"{r[0]:<18}{r[1]:>12.3f}{r[2]:>10.3f}{r[3]:>12.3f}{r[4]:>10.3f}{r[5]:>10.2f}")
    print(f"(batch {args.batch}, {args.threads} thread(s), {'tiny' if args.tiny else 'full'} models)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""CPU benchmark: kiln vs onnxruntime on the zoo models, in the same run on the same machine.

    .venv/bin/python bench/cpu_bench.py [--models resnet50,bert_base] [--tiny] [--batch 1] [--threads 2]
                                        [--rounds 3] [--seconds 2] [--baseline] [--json]
                                        [--bf16 | --also-bf16] [--kiln-baseline OTHER_KILN]
                                        [--kiln-args "--disable-pass fuse_matmul_transpose"]

For each model, kiln (`kiln bench --backend cpu` with fixed `--shape`s, so the static-shape paths and the memory
arena are used) and onnxruntime (graph optimisations ON: ORT_ENABLE_ALL, same intra-op threads) run in alternation
for `--rounds` rounds of `--seconds` each; the table shows medians over all rounds and the ratio kiln/onnxruntime
(lower is better for kiln). `--baseline` adds kiln's reference backend (slow: one short round). `--bf16` builds
kiln with --bf16 (onnxruntime stays FP32: the anchor); `--also-bf16` times kiln in fp32 and with --bf16 in the same
rounds; `--kiln-baseline` times a second kiln binary (e.g. main's) in the same rounds; `--kiln-args` passes more
options to `kiln bench`.
"""
import argparse
import json
import os
import shlex
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


class OrtRunner:
    def __init__(self, path, threads):
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

    def run(self, feeds, seconds, warmup=2):
        for _ in range(warmup):
            self.sess.run(None, feeds)
        times, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 3:
            t0 = time.perf_counter()
            self.sess.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        return times


def kiln_round(kiln, path, feeds, tmp, threads, seconds, backend, iterations=None, extra=()):
    args = [kiln, "bench", path, "--json", "--backend", backend, "--warmup", "2", "--threads", str(threads)]
    args += list(extra)
    args += ["--iterations", str(iterations)] if iterations else ["--duration", str(seconds)]
    for i, (k, v) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}", "--shape", f"{k}:{'x'.join(map(str, v.shape))}"]
    r = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    return r["median_ms"], r["p99_ms"]


def p99(times):
    times = sorted(times)
    return times[min(len(times) - 1, int(0.99 * len(times)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(make_zoo.MODELS))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="kiln/onnxruntime alternations per model")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each round")
    ap.add_argument("--baseline", action="store_true", help="also time kiln's reference backend")
    ap.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    ap.add_argument("--bf16", action="store_true", help="build kiln with --bf16 (onnxruntime stays FP32)")
    ap.add_argument("--kiln-args", default="", help="more options for `kiln bench`, one shell-quoted string")
    ap.add_argument("--also-bf16", action="store_true",
                    help="time kiln --bf16 too, in the same alternating rounds (extra columns)")
    ap.add_argument("--kiln-baseline", default="",
                    help="another kiln binary (e.g. a build of main) timed in the same rounds (extra columns)")
    args = ap.parse_args()
    kiln_extra = (["--bf16"] if args.bf16 else []) + shlex.split(args.kiln_args)
    # (label, binary, extra args): the first is the main kiln column; the others are timed in the same rounds
    variants = [("kiln", args.kiln, kiln_extra)]
    if args.also_bf16 and not args.bf16:
        variants.append(("bf16", args.kiln, kiln_extra + ["--bf16"]))
    if args.kiln_baseline:
        variants.append(("base", args.kiln_baseline, shlex.split(args.kiln_args)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = os.path.join(tmp, f"{name}.onnx")
            onnx.save(make_zoo.make_model(name, args.tiny), path)
            feeds = make_zoo.make_inputs(name, args.tiny, args.batch)
            ort_runner = OrtRunner(path, args.threads)
            meds = {label: [] for label, _, _ in variants}
            p99s = {label: [] for label, _, _ in variants}
            ort_times = []
            for _ in range(args.rounds):  # alternate so that machine drift hits both sides alike
                for label, binary, extra in variants:
                    km, kp = kiln_round(binary, path, feeds, tmp, args.threads, args.seconds, "cpu", extra=extra)
                    meds[label].append(km)
                    p99s[label].append(kp)
                ort_times += ort_runner.run(feeds, args.seconds)
            row = {"model": name, "batch": args.batch, "threads": args.threads, "tiny": args.tiny,
                   "kiln_precision": "bf16" if args.bf16 else "fp32", "kiln_args": " ".join(kiln_extra),
                   "kiln_median_ms": statistics.median(meds["kiln"]), "kiln_p99_ms": max(p99s["kiln"]),
                   "ort_median_ms": statistics.median(ort_times), "ort_p99_ms": p99(ort_times)}
            row["ratio"] = row["kiln_median_ms"] / row["ort_median_ms"]
            for label, _, _ in variants[1:]:
                row[f"{label}_median_ms"] = statistics.median(meds[label])
                row[f"{label}_p99_ms"] = max(p99s[label])
                row[f"{label}_ratio"] = row[f"{label}_median_ms"] / row["ort_median_ms"]
            if args.baseline:
                row["reference_median_ms"] = kiln_round(args.kiln, path, feeds, tmp, args.threads, 0, "reference",
                                                        iterations=2)[0]
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if args.json:
        return
    ref = " ref med ms" if args.baseline else ""
    more = "".join(f"{label + ' med':>12}{label + '/ort':>10}" for label, _, _ in variants[1:])
    print(f"{'model':<18}{'kiln med ms':>12}{'kiln p99':>10}{'ort med ms':>12}{'ort p99':>10}{'kiln/ort':>10}"
          f"{more}{ref}")
    for r in rows:
        extra = "".join(f"{r[label + '_median_ms']:>12.3f}{r[label + '_ratio']:>10.2f}" for label, _, _ in variants[1:])
        extra += f"{r['reference_median_ms']:>11.1f}" if args.baseline else ""
        print(f"{r['model']:<18}{r['kiln_median_ms']:>12.3f}{r['kiln_p99_ms']:>10.3f}{r['ort_median_ms']:>12.3f}"
              f"{r['ort_p99_ms']:>10.3f}{r['ratio']:>10.2f}{extra}")
    print(f"(batch {args.batch}, {args.threads} thread(s), {'tiny' if args.tiny else 'full'} models, "
          f"{args.rounds} alternating rounds of {args.seconds:g} s, kiln {' '.join(kiln_extra) or 'fp32'}"
          f"{', bf16 = kiln --bf16' if args.also_bf16 else ''}"
          f"{', base = ' + args.kiln_baseline if args.kiln_baseline else ''}, onnxruntime FP32 ORT_ENABLE_ALL)")

if __name__ == "__main__":
    main()

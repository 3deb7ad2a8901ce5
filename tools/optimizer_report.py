#!/usr/bin/env python3
"""Regenerates the numbers of docs/OPTIMIZER.md: node counts -O0 -> -O3 for every zoo model (tiny and full), what
each -O3 pass removed on the full models, op histograms at -O3 for full ResNet-50 and BERT-base, the memory plan
(`kiln inspect --json`: planned vs naive vs lower bound) at batch 1 and fixed shapes, and the `kiln build --verbose`
time of the full ResNet-50 at -O3. Prints Markdown.

Usage: .venv/bin/python tools/optimizer_report.py [--kiln build/kiln] [--workdir /tmp/kiln_zoo] [--tiny-only]

"dynamic" keeps the models' symbolic dims; "fixed" passes `--shape` for every input at batch 1 (vision at its image
size, text at its configured sequence length: tiny 16, full 128).
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_zoo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def model_path(workdir, name, tiny):
    path = os.path.join(workdir, f"{name}_{'tiny' if tiny else 'full'}.onnx")
    if not os.path.exists(path):
        import onnx
        onnx.save(make_zoo.make_model(name, tiny), path)
    return path


def shape_args(name, tiny):
    feeds = make_zoo.make_inputs(name, tiny, 1)
    return [a for k, v in feeds.items() for a in ("--shape", f"{k}:{'x'.join(map(str, v.shape))}")]


def inspect(kiln, path, level, shapes):
    out = subprocess.run([kiln, "inspect", path, "--json", "--opt-level", str(level)] + shapes, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def mib(b):
    return f"{b / 2**20:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build", "kiln"))
    ap.add_argument("--workdir", default="/tmp/kiln_zoo")
    ap.add_argument("--tiny-only", action="store_true", help="skip the full-size models (quick check)")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    sizes = [True] if args.tiny_only else [True, False]

    reports = {}  # (name, tiny, level, fixed) -> inspect json
    for name in make_zoo.MODELS:
        for tiny in sizes:
            path = model_path(args.workdir, name, tiny)
            for fixed in (False, True):
                for level in (0, 3):
                    reports[name, tiny, level, fixed] = inspect(args.kiln, path, level,
                                                                shape_args(name, tiny) if fixed else [])

    print("### Node counts, -O0 -> -O3\n")
    cols = [(tiny, fixed) for tiny in sizes for fixed in (False, True)]
    heads = [f"{'tiny' if t else 'full'}, {'fixed' if f else 'dynamic'}" for t, f in cols]
    print("| model | " + " | ".join(heads) + " |")
    print("|" + "---|" * (len(cols) + 1))
    for name in make_zoo.MODELS:
        cells = [f"{len(reports[name, t, 0, f]['nodes'])} -> {len(reports[name, t, 3, f]['nodes'])}" for t, f in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")

    tiny = sizes[-1]
    label = "tiny" if tiny else "full"
    print(f"\n### Nodes removed by each pass at -O3 ({label} models, fixed shapes)\n")
    names = [p["name"] for p in reports[make_zoo.MODELS[0], tiny, 3, True]["passes"]]
    print("| pass | " + " | ".join(make_zoo.MODELS) + " |")
    print("|" + "---|" * (len(make_zoo.MODELS) + 1))
    for i, pname in enumerate(names):
        cells = []
        for name in make_zoo.MODELS:
            p = reports[name, tiny, 3, True]["passes"][i]
            cells.append(str(p["nodes_before"] - p["nodes_after"]))
        print(f"| {pname} | " + " | ".join(cells) + " |")

    for name in ("resnet50", "bert_base"):
        c = collections.Counter(n["op"] for n in reports[name, tiny, 3, True]["nodes"])
        print(f"\n### Op histogram at -O3: {name} ({label}, fixed shapes)\n")
        print(", ".join(f"{op} {k}" for op, k in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))))

    print("\n### Memory plan at -O3, batch 1, fixed shapes (MiB of activations; weights apart)\n")
    print("| model | size | planned | naive | lower bound | planned / lower bound | weights |")
    print("|---|---|---|---|---|---|---|")
    for name in make_zoo.MODELS:
        for t in sizes:
            m = reports[name, t, 3, True]["memory"]
            ratio = m["planned_bytes"] / m["lower_bound_bytes"] if m["lower_bound_bytes"] else float("nan")
            print(f"| {name} | {'tiny' if t else 'full'} | {mib(m['planned_bytes'])} | {mib(m['naive_bytes'])} | "
                  f"{mib(m['lower_bound_bytes'])} | {ratio:.3f} | {mib(m['weight_bytes'])} |")

    path = model_path(args.workdir, "resnet50", tiny)
    plan = os.path.join(args.workdir, "resnet50.plan")
    t0 = time.perf_counter()
    proc = subprocess.run([args.kiln, "build", path, "-O", "3", "--verbose", "-o", plan], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    passes = reports["resnet50", tiny, 3, False]["passes"]
    print(f"\n### `kiln build --verbose` of {label} ResNet-50 at -O3\n")
    print(f"wall {wall:.2f} s; passes (from `kiln inspect --json`, dynamic shapes): "
          + ", ".join(f"{p['name']} {p['ms']:.1f} ms" for p in passes)
          + f"; total of passes {sum(p['ms'] for p in passes):.1f} ms.")
    log = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ms" in ln or "layers" in ln]
    if log:
        print("\n```\n" + "\n".join(log[-12:]) + "\n```")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Runs an ONNX model with onnxruntime (CPU) on .npy inputs and writes one <output>.npy per output.

Used by `kiln compare` as the reference; usable by hand:
    python tools/ort_reference.py model.onnx --input x=x.npy --output-dir ref/
"""
import argparse
import os
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--output-dir", required=True)
    args = ap.parse_args()
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed in this Python; run scripts/install_deps.sh or set KILN_PYTHON",
              file=sys.stderr)
        return 4
    feeds = {}
    for spec in args.input:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    os.makedirs(args.output_dir, exist_ok=True)
    for meta, value in zip(sess.get_outputs(), outs):
        fname = meta.name.replace("/", "_").replace("\\", "_").replace(":", "_")
        np.save(os.path.join(args.output_dir, fname + ".npy"), np.asarray(value))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Exports one of gpu_bench.py's models to ONNX and prints the `--shape` flags that fix its input shapes.

    python bench/gpu/export_model.py bert_base 1 /tmp/bert.onnx    # -> --shape input_ids:1x128 --shape ...
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402


def main():
    name, batch, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    model, inputs, names, shapes = gpu_bench.build_model(name, batch)
    torch.onnx.export(model, inputs, path, input_names=names, opset_version=17, dynamo=False)
    print(" ".join(f"--shape {s}" for s in shapes))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How close can any fp16 engine get to the fp32 reference on a zoo classifier? An emulation on the CPU: the model's
weights rounded to fp16 and every float activation rounded to fp16 where it is stored (a Cast to fp16 and back after
each node), arithmetic in fp32 (onnxruntime), as an fp16 engine with fp32 accumulation does it. Prints the cosine and
top-1 agreement against plain fp32 over N seeded N(0, 1) inputs (the same inputs as accuracy.py), and the fp32
top-1/top-2 logit margins, which say how many inputs sit so near a tie that fp16 rounding can flip them.

    python bench/gpu/fp16_headroom.py [--models mobilenetv2,resnet50] [--n 1000] [--fp32-tail K]

--fp32-tail K keeps the last K nodes (the classifier end) in fp32: what a per-layer precision policy would buy.
--round weights|activations|both (default both) says which of the two roundings to emulate.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import make_zoo  # noqa: E402


def emulate_fp16(model, fp32_tail, rounding, float_values):
    """A Cast to fp16 and back after every float32 node output in `float_values` (not after shape arithmetic, not
    after the last `fp32_tail` nodes, not at all with rounding == "weights"); float32 weights rounded unless
    rounding == "activations"."""
    g = model.graph
    for init in g.initializer:
        if init.data_type == onnx.TensorProto.FLOAT and rounding != "activations":
            a = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(a, init.name))
    nodes = list(g.node)
    graph_outputs = {o.name for o in g.output}
    new_nodes = []
    renames = {}
    for idx, node in enumerate(nodes):
        node.input[:] = [renames.get(i, i) for i in node.input]
        new_nodes.append(node)
        if idx >= len(nodes) - fp32_tail or rounding == "weights":
            continue
        for k, out in enumerate(node.output):
            if not out or out in graph_outputs or out not in float_values:
                continue
            half, back = out + "__f16", out + "__r"
            new_nodes += [helper.make_node("Cast", [out], [half], to=onnx.TensorProto.FLOAT16),
                          helper.make_node("Cast", [half], [back], to=onnx.TensorProto.FLOAT)]
            renames[out] = back
    del g.node[:]
    g.node.extend(new_nodes)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenetv2,resnet50")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--fp32-tail", type=int, default=0)
    ap.add_argument("--round", default="both", choices=["weights", "activations", "both"])
    args = ap.parse_args()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every Cast pair
    for name in args.models.split(","):
        model = make_zoo.make_model(name, False)
        ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        # Cast pairs only after float outputs (shape arithmetic stays int64)
        onnx.checker.check_model(model)
        inferred = onnx.shape_inference.infer_shapes(model)
        float_values = {v.name for v in list(inferred.graph.value_info) + list(inferred.graph.output)
                        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
        emu_model = emulate_fp16(onnx.load_from_string(model.SerializeToString()), args.fp32_tail, args.round,
                                 float_values)
        emu = ort.InferenceSession(emu_model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        in_name, out_name = ref.get_inputs()[0].name, ref.get_outputs()[0].name
        rng = np.random.default_rng(0)
        cos, agree, margins, total = [], 0, [], 0
        for _ in range(0, args.n, args.batch):
            x = rng.standard_normal((args.batch, 3, 224, 224), dtype=np.float32)
            want = ref.run([out_name], {in_name: x})[0].astype(np.float64)
            got = emu.run([out_name], {in_name: x})[0].astype(np.float64)
            for g, w in zip(got, want):
                cos.append(float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w))))
                top2 = np.sort(w)[-2:]
                margins.append((top2[1] - top2[0]) / (np.abs(w).max() + 1e-30))
            agree += int((got.argmax(1) == want.argmax(1)).sum())
            total += len(x)
        c, m = np.array(cos), np.array(margins)
        print(f"{name}: emulated fp16 ({args.round}, fp32 tail {args.fp32_tail}): {total} inputs, cosine min {c.min():.6f} "
              f"median {np.median(c):.6f}, top-1 agreement {agree}/{total} = {100 * agree / total:.1f}%; fp32 "
              f"top-1/top-2 margin / max|logit|: median {np.median(m):.2e}, "
              f"{100 * (m < 1e-3).mean():.1f}% below 1e-3, {100 * (m < 1e-2).mean():.1f}% below 1e-2")
    return 0


if __name__ == "__main__":
    sys.exit(main())

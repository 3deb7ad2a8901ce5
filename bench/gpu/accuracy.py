#!/usr/bin/env python3
"""Reduced-precision accuracy of kiln's CUDA engines against the FP32 onnxruntime reference on the zoo classifiers:
cosine similarity of the logits and top-1 agreement over N random inputs (the CUDA issue asks for cosine >= 0.999
and the same top-1 class on >= 99% of 1,000 inputs).

    python bench/gpu/accuracy.py --kiln build-gpu/kiln [--models resnet50,mobilenetv2] [--n 1000] [--precision fp16]
                                 [--torchvision]

Inputs are seeded N(0, 1) images in batches of --batch; kiln runs through `kiln run` on .npy files (no Python
package needed), onnxruntime on the CPU. --torchvision takes torchvision's models (seeded random weights, exported with
torch.onnx.export) instead of the zoo's and also scores PyTorch's own fp16 (model.half() on the GPU) against the same
reference: how often any fp16 engine can keep the top-1 class of a random-weight network.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import make_zoo  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--models", default="resnet50,mobilenetv2")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--torchvision", action="store_true")
    args = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = os.path.join(tmp, f"{name}.onnx")
            tmodel = None
            if args.torchvision:
                import torch
                import torchvision
                torch.manual_seed(0)
                tmodel = {"resnet50": torchvision.models.resnet50,
                          "mobilenetv2": torchvision.models.mobilenet_v2}[name](weights=None).eval()
                torch.onnx.export(tmodel, (torch.randn(1, 3, 224, 224),), path, input_names=["input"],
                                  opset_version=17, dynamo=False, dynamic_axes={"input": {0: "n"}})
                tmodel = tmodel.cuda().half() if args.precision == "fp16" else tmodel.cuda().bfloat16()
            else:
                onnx.save(make_zoo.make_model(name, False), path)
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
            plan = os.path.join(tmp, f"{name}.plan")
            subprocess.run([args.kiln, "build", path, "-o", plan, "--backend", "cuda", f"--{args.precision}",
                            "--shape", f"{in_name}:{args.batch}x3x224x224"], check=True, capture_output=True)
            rng = np.random.default_rng(0)
            cosines, agree, total = [], 0, 0
            t_cosines, t_agree = [], 0
            for b in range(0, args.n, args.batch):
                x = rng.standard_normal((args.batch, 3, 224, 224), dtype=np.float32)
                np.save(os.path.join(tmp, "x.npy"), x)
                subprocess.run([args.kiln, "run", plan, "--input", f"{in_name}={tmp}/x.npy", "--output-dir",
                                os.path.join(tmp, "out")], check=True, capture_output=True)
                got = np.load(os.path.join(tmp, "out", f"{out_name}.npy")).astype(np.float64)
                want = sess.run([out_name], {in_name: x})[0].astype(np.float64)
                for g, w in zip(got, want):
                    cosines.append(float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w))))
                agree += int((got.argmax(1) == want.argmax(1)).sum())
                total += len(x)
                if tmodel is not None:
                    import torch
                    with torch.inference_mode():
                        xt = torch.from_numpy(x).cuda().to(next(tmodel.parameters()).dtype)
                        tg = tmodel(xt).float().cpu().numpy().astype(np.float64)
                    for g, w in zip(tg, want):
                        t_cosines.append(float(g @ w / (np.linalg.norm(g) * np.linalg.norm(w))))
                    t_agree += int((tg.argmax(1) == want.argmax(1)).sum())
            c = np.array(cosines)
            passed = c.min() >= 0.999 and agree / total >= 0.99
            ok &= passed
            print(f"{name} {args.precision}: {total} inputs, cosine min {c.min():.6f} median {np.median(c):.6f}, "
                  f"top-1 agreement {agree}/{total} = {100 * agree / total:.1f}%  {'PASS' if passed else 'FAIL'}")
            if t_cosines:
                tc = np.array(t_cosines)
                print(f"{name} PyTorch {args.precision} (same inputs, same reference): cosine min {tc.min():.6f} "
                      f"median {np.median(tc):.6f}, top-1 agreement {t_agree}/{total} = {100 * t_agree / total:.1f}%")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Quick start: install dependencies, build kiln, then do kiln's main job on a sample model: generate ResNet-50 (tiny
# variant by default; --full for the real size), build an engine plan, run it, benchmark it and compare it with
# onnxruntime on the CPU, and on the GPU too when one is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
SIZE=--tiny
[ "${1:-}" = "--full" ] && SIZE=""
mkdir -p zoo
.venv/bin/python tools/make_zoo.py --out zoo --only resnet50 $SIZE
echo "== kiln build"
build/kiln build zoo/resnet50.onnx -o zoo/resnet50.plan --verbose
echo "== kiln run"
build/kiln run zoo/resnet50.plan --output-dir zoo/out
echo "== kiln bench"
build/kiln bench zoo/resnet50.plan --duration 2
echo "== kiln compare (vs onnxruntime)"
build/kiln compare zoo/resnet50.onnx --batch 4
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "== GPU found: the same model on kiln's CUDA backend"
  if build/kiln compare zoo/resnet50.onnx --backend cuda --batch 4; then
    build/kiln bench zoo/resnet50.onnx --backend cuda --duration 2
  else
    echo "(this kiln was built without the CUDA backend: install the CUDA toolkit + cuDNN and rebuild)"
  fi
fi

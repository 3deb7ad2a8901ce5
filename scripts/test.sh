#!/usr/bin/env bash
# Runs the whole test suite: installs dependencies if needed, builds, runs the C++ tests (ctest) and the Python
# tests (pytest: every op against onnxruntime / the ONNX reference, every zoo model, the CLI and its errors).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
echo "== C++ tests"
(cd build && ctest --output-on-failure -j"$(nproc)")
echo "== Python tests"
.venv/bin/python -m pytest tests/python -q -p no:cacheprovider "$@"

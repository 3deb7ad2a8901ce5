#!/usr/bin/env bash
# Runs the whole test suite: installs dependencies if needed, builds, runs the C++ tests (ctest), installs the Python
# package into .venv (pip install .; incremental build in build/py) and runs the Python tests (pytest: every op
# against onnxruntime / the ONNX reference, every zoo model, the CLI and its errors, the Python API).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
echo "== C++ tests"
(cd build && ctest --output-on-failure -j"$(nproc)")
echo "== Python package (pip install . into .venv)"
.venv/bin/python -c "import nanobind, scikit_build_core" >/dev/null 2>&1 || .venv/bin/pip install -q -r requirements-dev.txt
# No build isolation: the build tools come from .venv, so build/py stays valid and reinstalls are incremental.
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  .venv/bin/pip install -q --no-build-isolation --no-deps .
echo "== Python tests"
.venv/bin/python -m pytest tests/python -q -p no:cacheprovider "$@"

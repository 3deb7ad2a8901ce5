#!/usr/bin/env bash
# Installs everything kiln needs on a fresh Debian/Ubuntu machine: the Debian packages (as root, or with sudo) and a
# project venv (.venv) with onnx, onnxruntime, numpy and pytest. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(cmake ninja-build g++ pkg-config python3-venv
      libprotobuf-dev protobuf-compiler libonnx-dev
      libflatbuffers-dev flatbuffers-compiler
      libfmt-dev nlohmann-json3-dev libcli11-dev libgtest-dev libbenchmark-dev libdnnl-dev)

missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import onnx, onnxruntime, numpy, pytest" >/dev/null 2>&1; then
  echo "== installing Python packages into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements-dev.txt
fi
echo "== dependencies ready"

#!/usr/bin/env bash
# Configures and builds kiln (Release, with tests) into build/. Extra arguments go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$PWD/.venv/bin/python" "$@" >/dev/null
ninja -C build -j"$(nproc)"

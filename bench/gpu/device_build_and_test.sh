#!/usr/bin/env bash
# Builds kiln with the CUDA backend on a GPU machine and runs the CUDA tests and a few benchmarks.
#
# Made for the `run` device tool's image (cmake/ninja/python in /opt/torch/.venv/bin, g++ 13, nvcc 13, protobuf,
# CLI11, nlohmann-json, GoogleTest; cuDNN in the venv's site-packages/nvidia/cudnn; no flatbuffers, no oneDNN).
# flatbuffers comes as Debian .debs carried in .gpu_deps/ (ignored by git). On this (GPU-less) machine:
#     mkdir -p .gpu_deps && echo /.gpu_deps/ >> .git/info/exclude
#     (cd .gpu_deps && apt-get download libflatbuffers-dev flatbuffers-compiler \
#                        flatbuffers-compiler-dev libflatbuffers2)
# then, through the device tool: run(command="bash bench/gpu/device_build_and_test.sh", carry=[".gpu_deps"]).
# Results (logs, junit xml, bench json) go to $OUT (or ./gpu_out when OUT is unset).
#
# Usage: bench/gpu/device_build_and_test.sh [all|build|test|bench]   (default: all)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
STEP=${1:-all}
OUT=${OUT:-$ROOT/gpu_out}
mkdir -p "$OUT"
export PATH=/opt/torch/.venv/bin:/usr/local/cuda/bin:$PATH
PY=$(command -v python3)
BUILD=${BUILD:-$ROOT/build-gpu}
PREFIX=/tmp/kiln_deps

# ---------------------------------------------------------------- dependencies
mkdir -p "$PREFIX"
for f in .gpu_deps/*.deb; do dpkg -x "$f" "$PREFIX"; done
CUDNN_PY=$($PY -c "import nvidia.cudnn as m; print(list(m.__path__)[0])" 2>/dev/null || true)
CUDNN=/tmp/kiln_cudnn  # include/ + lib/ with the unversioned libcudnn.so that find_library needs
mkdir -p $CUDNN/lib
if [ -n "$CUDNN_PY" ]; then
    ln -sfn "$CUDNN_PY/include" $CUDNN/include
    for l in "$CUDNN_PY"/lib/*.so*; do ln -sf "$l" $CUDNN/lib/; done
    [ -e $CUDNN/lib/libcudnn.so ] || ln -sf "$(ls "$CUDNN_PY"/lib/libcudnn.so.* | head -1)" $CUDNN/lib/libcudnn.so
fi
export LD_LIBRARY_PATH=$CUDNN/lib:$PREFIX/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
ONNX_PROTO=$($PY -c "import onnx,os;print(os.path.join(os.path.dirname(onnx.__file__),'onnx.proto'))")
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    nvcc --version | tail -1; g++ --version | head -1; cmake --version | head -1
    echo "cudnn: $CUDNN_PY"; ls $CUDNN/lib | head; which protoc; protoc --version
} 2>&1 | tee "$OUT/env.txt"

# ---------------------------------------------------------------- build
if [ "$STEP" = all ] || [ "$STEP" = build ]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_PYTHON=OFF -DKILN_WITH_CUDA=ON \
        -DCUDNN_ROOT=$CUDNN -DFLATC="$PREFIX/usr/bin/flatc" -DCMAKE_CXX_FLAGS="-I$PREFIX/usr/include" \
        -DCMAKE_PREFIX_PATH="$PREFIX/usr" -DKILN_ONNX_PROTO="$ONNX_PROTO" 2>&1 | tail -15 | tee "$OUT/configure.txt"
    ninja -C "$BUILD" -j"$(nproc)" kiln_cli kiln_tests > "$OUT/build.txt" 2>&1
    rc=$?
    tail -30 "$OUT/build.txt"
    [ $rc -eq 0 ] || { echo "BUILD FAILED"; grep -m20 -B2 -A6 "error" "$OUT/build.txt"; exit 1; }
fi

# ---------------------------------------------------------------- tests
if [ "$STEP" = all ] || [ "$STEP" = test ]; then
    "$BUILD/tests/kiln_tests" --gtest_filter='CudaBackend.*:CudaEngine.*:Enqueue.*' 2>&1 | tail -12 | tee "$OUT/gtest.txt"
    KILN_BIN="$BUILD/kiln" PYTHONUNBUFFERED=1 timeout 420 $PY -m pytest -q -p no:cacheprovider \
        tests/python/test_cuda.py tests/python/test_cuda_engine.py --maxfail=30 -o addopts="" --junitxml="$OUT/test_cuda.xml" -rs 2>&1 |
        tail -60 | tee "$OUT/pytest.txt"
fi

# ---------------------------------------------------------------- benchmarks (full-size zoo models)
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
    Z=/tmp/kiln_zoo
    mkdir -p $Z
    (cd tools && $PY -c "
import onnx, make_zoo
for n in ['resnet50', 'bert_base']:
    onnx.save(make_zoo.make_model(n, False), '$Z/' + n + '.onnx')
")
    for spec in "resnet50 input:1x3x224x224" "resnet50 input:8x3x224x224" "bert_base input_ids:1x128"; do
        set -- $spec
        for prec in "" "--fp16"; do
            shapes="--shape $2"
            [ "$1" = bert_base ] && shapes="--shape input_ids:${2#input_ids:} --shape attention_mask:${2#input_ids:}"
            echo "== $1 $2 cuda $prec"
            timeout 120 "$BUILD/kiln" bench "$Z/$1.onnx" --backend cuda $prec $shapes --warmup 10 --iterations 100 \
                --json 2>&1 | tail -3
        done
    done 2>&1 | tee "$OUT/bench.txt"
    # where the time goes: per-layer GPU time (CUDA events) of the slowest layers, ResNet-50 batch 1 FP32
    "$BUILD/kiln" bench "$Z/resnet50.onnx" --backend cuda --shape input:1x3x224x224 --warmup 5 --iterations 50 \
        --profile 8 2>&1 | tail -12 | tee -a "$OUT/bench.txt"
fi

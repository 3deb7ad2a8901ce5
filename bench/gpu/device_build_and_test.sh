#!/usr/bin/env bash
# Builds kiln with the CUDA backend on a GPU machine and runs the CUDA tests and a few benchmarks.
#
# Made for the `run` device tool's image (cmake/ninja/python in /opt/torch/.venv/bin, g++ 13, nvcc 13, protobuf,
# CLI11, nlohmann-json, GoogleTest; cuDNN in the venv's site-packages/nvidia/cudnn; no flatbuffers, no oneDNN).
# flatbuffers and oneDNN (for the cpu backend) come as Debian .debs carried in .gpu_deps/ (ignored by git). On this
# (GPU-less) machine:
#     mkdir -p .gpu_deps && echo /.gpu_deps/ >> .git/info/exclude
#     (cd .gpu_deps && apt-get download libflatbuffers-dev flatbuffers-compiler \
#                        flatbuffers-compiler-dev libflatbuffers2 libdnnl-dev libdnnl2)
# then, through the device tool: run(command="bash bench/gpu/device_build_and_test.sh", carry=[".gpu_deps"]).
# Results (logs, junit xml, bench json) go to $OUT (or ./gpu_out when OUT is unset).
#
# Usage: bench/gpu/device_build_and_test.sh [all|build|test|bench|python|profile|ncu]   (default: all)
# The GPU benchmark of docs/PERFORMANCE.md is `bash bench/gpu/device_build_and_test.sh bench` after `build`.
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
        -DCUDNN_ROOT=$CUDNN -DFLATC="$PREFIX/usr/bin/flatc" -DCMAKE_CXX_FLAGS="-I$PREFIX/usr/include ${KILN_EXTRA_CXX_FLAGS:-}" \
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
        tests/python/test_cuda.py tests/python/test_cuda_engine.py tests/python/test_cuda_attention.py --maxfail=30 -o addopts="" --junitxml="$OUT/test_cuda.xml" -rs 2>&1 |
        tail -60 | tee "$OUT/pytest.txt"
fi

# ---------------------------------------------------------------- Python package on the GPU
# nanobind comes as a wheel carried in .gpu_deps/ (pip download nanobind --no-deps -d .gpu_deps); the extension is
# built by CMake in the same build dir and assembled with the package sources under /tmp/kiln_py.
if [ "$STEP" = python ]; then
    NB=/tmp/kiln_nb
    rm -rf $NB && $PY -m zipfile -e .gpu_deps/nanobind-*.whl $NB
    export PYTHONPATH=$NB:${PYTHONPATH:-}
    [ -f "$BUILD/build.ninja" ] || { echo "run the build step first"; exit 1; }
    cmake -S . -B "$BUILD" -G Ninja -DKILN_BUILD_PYTHON=ON -DPython_EXECUTABLE="$PY" > "$OUT/configure_py.txt" 2>&1
    ninja -C "$BUILD" _kiln > "$OUT/build_py.txt" 2>&1 || { tail -30 "$OUT/build_py.txt"; exit 1; }
    PKG=/tmp/kiln_py/kiln
    rm -rf /tmp/kiln_py && mkdir -p $PKG/bin
    cp python/kiln/*.py python/kiln/*.pyi python/kiln/py.typed $PKG/ && cp "$BUILD"/python/_kiln*.so $PKG/
    cp "$BUILD/kiln" $PKG/bin/
    PYTHONPATH=/tmp/kiln_py:tools:tests/python $PY -m pytest -q -p no:cacheprovider -o addopts="" -rs \
        tests/python/test_python_cuda.py 2>&1 | tail -15 | tee "$OUT/pytest_python_cuda.txt"
    PYTHONPATH=/tmp/kiln_py $PY examples/pytorch_to_kiln.py --device cuda --iterations 50 2>&1 | tail -15 |
        tee "$OUT/example_cuda.txt"
    PYTHONPATH=/tmp/kiln_py $PY examples/pytorch_to_kiln.py --device cpu --iterations 20 2>&1 | tail -15 |
        tee "$OUT/example_cpu.txt"
fi

# ---------------------------------------------------------------- per-kernel GPU time (Nsight Systems)
if [ "$STEP" = profile ]; then
    Z=/tmp/kiln_zoo
    mkdir -p $Z
    (cd tools && $PY -c "
import onnx, make_zoo
for n in ['resnet50', 'bert_base']:
    onnx.save(make_zoo.make_model(n, False), '$Z/' + n + '.onnx')
")
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
    for spec in "resnet50 --shape input:1x3x224x224" "bert_base --shape input_ids:1x128 --shape attention_mask:1x128"; do
        set -- $spec; m=$1; shift
        for prec in ${PROFILE_PRECISIONS:---fp16}; do
            echo "== $m $* $prec (per inference: a plan load tunes once, bench runs 3 more)"
            "$BUILD/kiln" build "$Z/$m.onnx" --backend cuda $prec "$@" -o "/tmp/prof_$m.plan" > /dev/null 2>&1
            "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
                "$BUILD/kiln" bench "/tmp/prof_$m.plan" --warmup 0 --iterations 1 --no-cuda-graph \
                > "/tmp/prof_$m.csv" 2>/dev/null
            $PY bench/gpu/ncu_summary.py "/tmp/prof_$m.csv" --runs 4 --top 22
        done
    done 2>&1 | tee "$OUT/profile.txt"
fi

# ---------------------------------------------------------------- per-kernel GPU time of the benchmark's models
# NCU_MODELS="bert_base=1 vit_b16=1" (gpu_bench.py's models and batches; fp16 unless NCU_PRECISION is set)
if [ "$STEP" = ncu ]; then
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
    for spec in ${NCU_MODELS:-bert_base=1}; do
        m=${spec%=*}; b=${spec#*=}
        flags=$($PY bench/gpu/export_model.py "$m" "$b" "/tmp/ncu_$m.onnx" 2>/dev/null | tail -1)
        # shellcheck disable=SC2086
        "$BUILD/kiln" build "/tmp/ncu_$m.onnx" --backend cuda ${NCU_PRECISION:---fp16} $flags -o "/tmp/ncu_$m.plan" \
            > /dev/null 2>&1 || { echo "kiln build failed for $m"; continue; }
        echo "== $m batch $b ${NCU_PRECISION:---fp16}: per inference (a plan load tunes once, bench runs 3 more)"
        "$NCU" --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base \
            "$BUILD/kiln" bench "/tmp/ncu_$m.plan" --warmup 0 --iterations 1 --no-cuda-graph > "/tmp/ncu_$m.csv" 2>/dev/null
        $PY bench/gpu/ncu_summary.py "/tmp/ncu_$m.csv" --runs 4 --top "${NCU_TOP:-14}" --name-width "${NCU_NAME_WIDTH:-90}"
    done 2>&1 | tee "$OUT/ncu.txt"
fi

# ---------------------------------------------------------------- benchmarks (full-size models, PyTorch anchors)
# GPU_BENCH_ARGS passes options to bench/gpu/gpu_bench.py, e.g. "--models resnet50 --compile max-autotune".
if [ "$STEP" = all ] || [ "$STEP" = bench ]; then
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 $PY bench/gpu/gpu_bench.py --kiln "$BUILD/kiln" --json "$OUT/gpu_bench.json" \
        ${GPU_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt"
fi

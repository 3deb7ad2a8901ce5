bash bench/gpu/device_build_and_test.sh build > $OUT/b.txt 2>&1; tail -1 $OUT/b.txt
export LD_LIBRARY_PATH=/tmp/kiln_cudnn/lib:/tmp/kiln_deps/usr/lib/x86_64-linux-gnu
R=$OUT/r; mkdir -p $R
KILN_BIN=build-gpu/kiln /opt/torch/.venv/bin/python -m pytest -q -p no:cacheprovider -o addopts="" tests/python/test_cuda.py -k "cast or logic or not or compare or bool_data or torch_exports or gelu" > $R/pytest_new.txt 2>&1; tail -3 $R/pytest_new.txt
for m in gpt2_small bert_small; do build-gpu/kiln inspect tests/data/torch_export/$m.onnx --backend cuda --fp16 > $R/inspect_$m.txt 2>&1; done
GPU_BENCH_ARGS="--models resnet50,bert_base,gpt2,vit_b16,mobilenetv2 --batches resnet50=1,32,256;bert_base=1,32;gpt2=1;vit_b16=1;mobilenetv2=1 --precisions fp16" bash bench/gpu/device_build_and_test.sh bench > $R/bench_full.txt 2>&1
grep -E "kiln failed|capture|^model|fp16 \||device:" $R/bench_full.txt | cut -c1-250
cp $OUT/gpu_bench.json $R/ 2>/dev/null
cd $OUT && tar czf r.tgz r && rm -rf r

bash bench/gpu/device_build_and_test.sh build > $OUT/b.txt 2>&1; tail -1 $OUT/b.txt
export LD_LIBRARY_PATH=/tmp/kiln_cudnn/lib:/tmp/kiln_deps/usr/lib/x86_64-linux-gnu
R=$OUT/r; mkdir -p $R
KILN_BIN=build-gpu/kiln /opt/torch/.venv/bin/python -m pytest -q -p no:cacheprovider -o addopts="" tests/python/test_cuda.py -k "cast or logic or test_not or compare or bool_data or torch_exports or gelu or attention" > $R/pytest_new.txt 2>&1; tail -3 $R/pytest_new.txt
KILN_BIN=build-gpu/kiln /opt/torch/.venv/bin/python -m pytest -q -p no:cacheprovider -o addopts="" tests/python/test_cuda_engine.py -x > $R/pytest_engine.txt 2>&1; tail -3 $R/pytest_engine.txt
for m in gpt2_small bert_small; do build-gpu/kiln inspect tests/data/torch_export/$m.onnx --backend cuda --fp16 > $R/inspect_$m.txt 2>&1; done
GPU_BENCH_ARGS="--models bert_base,gpt2,vit_b16 --batches bert_base=1,32;gpt2=1;vit_b16=1 --precisions fp16" bash bench/gpu/device_build_and_test.sh bench > $R/bench_full.txt 2>&1
grep -E "kiln failed|capture|^model|fp16 \||device:" $R/bench_full.txt | cut -c1-250
(cd tools && /opt/torch/.venv/bin/python -c "
import onnx, make_zoo
for n in ['bert_base', 'vit_b16']: onnx.save(make_zoo.make_model(n, False), '/tmp/' + n + '.onnx')")
build-gpu/kiln bench /tmp/bert_base.onnx --backend cuda --fp16 --shape input_ids:32x128 --shape attention_mask:32x128 --iterations 20 --profile 25 > $R/prof_bert32.txt 2>&1
build-gpu/kiln bench /tmp/vit_b16.onnx --backend cuda --fp16 --shape input:1x3x224x224 --iterations 20 --profile 25 > $R/prof_vit1.txt 2>&1
cp $OUT/gpu_bench.json $R/ 2>/dev/null
cd $OUT && tar czf r.tgz r && rm -rf r

bash bench/gpu/device_build_and_test.sh build > $OUT/b.txt 2>&1; tail -1 $OUT/b.txt
export LD_LIBRARY_PATH=/tmp/kiln_cudnn/lib:/tmp/kiln_deps/usr/lib/x86_64-linux-gnu
R=$OUT/r; mkdir -p $R
GPU_BENCH_ARGS="--models resnet50,mobilenetv2,bert_base,vit_b16,gpt2 --batches resnet50=1,32,256;mobilenetv2=1,32;bert_base=1,32;vit_b16=1,32;gpt2=1,32 --precisions fp16" bash bench/gpu/device_build_and_test.sh bench > $R/bench_full.txt 2>&1
grep -E "^model|fp16 \||device:" $R/bench_full.txt | cut -c1-250
cp $OUT/gpu_bench.json $R/ 2>/dev/null
/opt/torch/.venv/bin/python bench/gpu/accuracy.py --kiln build-gpu/kiln --models resnet50,mobilenetv2 --n 1000 > $R/accuracy.txt 2>&1; tail -4 $R/accuracy.txt
bash bench/gpu/device_build_and_test.sh test > $R/test.txt 2>&1; grep -E "PASSED|FAILED|passed|failed" $R/test.txt | tail -4
bash bench/gpu/device_build_and_test.sh python > $R/python.txt 2>&1; grep -E "passed|failed|OK|error" $R/python.txt | tail -4
(cd tools && /opt/torch/.venv/bin/python -c "
import onnx, make_zoo
onnx.save(make_zoo.make_model('resnet50', False), '/tmp/r50.onnx')")
build-gpu/kiln build /tmp/r50.onnx --backend cuda --fp16 -o /tmp/r50.plan > /dev/null 2>&1; build-gpu/kiln inspect /tmp/r50.plan > $R/inspect_r50.txt 2>&1
build-gpu/kiln bench /tmp/r50.onnx --backend cuda --fp16 --iterations 20 --profile 12 > $R/prof_r50.txt 2>&1
cd $OUT && tar czf r.tgz r && rm -rf r

export OUT_FINAL=$OUT OUT=/tmp/o; mkdir -p $OUT
bash bench/gpu/device_build_and_test.sh build > $OUT/b.txt 2>&1; tail -1 $OUT/b.txt; grep -i "dnnl\|cpu backend" $OUT/configure.txt
export LD_LIBRARY_PATH=/tmp/kiln_cudnn/lib:/tmp/kiln_deps/usr/lib/x86_64-linux-gnu
GPU_BENCH_ARGS="--models resnet50,mobilenetv2,vit_b16 --batches resnet50=1,32,256;mobilenetv2=1,32;vit_b16=1,32 --precisions fp16" bash bench/gpu/device_build_and_test.sh bench > $OUT/bench_full.txt 2>&1
grep -E "^model|fp16 \||device:" $OUT/bench_full.txt | cut -c1-250
bash bench/gpu/device_build_and_test.sh python > $OUT/python.txt 2>&1; grep -E "passed|failed|OK|rror|kiln  |onnxrun|pytorch" $OUT/python.txt | tail -14
(cd tools && /opt/torch/.venv/bin/python -c "
import onnx, make_zoo
onnx.save(make_zoo.make_model('resnet50', False), '/tmp/r50.onnx')")
build-gpu/kiln bench /tmp/r50.onnx --backend cuda --fp16 --shape input:256x3x224x224 --iterations 10 --profile 15 > $OUT/prof_r50_256.txt 2>&1; head -17 $OUT/prof_r50_256.txt
cd $OUT && tar czf $OUT_FINAL/r.tgz . 

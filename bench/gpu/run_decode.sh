#!/bin/bash
# One device call for the decode path (issue #6), from the checkout root with $CARRY holding app.tar.xz and bench/gpu's
# scripts: every oracle through --target cuda at fp32 (1e-4) and fp16 (1e-2), the llama-110M-shape decode bench at fp32
# and fp16 (512-token prompt), Hugging Face's decode in the same run, and a compute-sanitizer memcheck of one oracle.
CARRY=${CARRY:-.gpu-gpu}
set -o pipefail
nvidia-smi -L | tee $OUT/device.txt
mkdir -p /tmp/r && tar xJf $CARRY/app.tar.xz -C /tmp/r || exit 1
MC=/tmp/r/app/mc
export MC_HAS_GPU=1
timeout 170 python3 $CARRY/check_oracles.py $MC tests/oracles $OUT/oracles_fp32.json fp32 2>&1 | tail -3
timeout 120 python3 $CARRY/check_oracles.py $MC tests/oracles $OUT/oracles_fp16.json fp16 2>&1 | tail -3
for dt in fp32 fp16; do
  timeout 100 $MC bench examples/llama.arch --set dim=768 n_layers=12 n_heads=12 n_kv_heads=4 ffn_dim=2048 vocab=32000 \
    --prompt 512 --gen 128 --reps 3 --target cuda --dtype $dt --json 2>&1 | tail -1 | tee $OUT/bench_$dt.json | cut -c1-700
done
timeout 100 python3 $CARRY/hf_decode.py 2>&1 | tail -1 | tee $OUT/hf_decode.json
timeout 60 compute-sanitizer --tool memcheck $MC eval tests/oracles/llama --inputs tests/oracles/llama/reference.safetensors \
  --out /tmp/s.safetensors --target cuda --generate 2 > $OUT/memcheck.log 2>&1; echo "memcheck exit $?" | tee -a $OUT/memcheck.log
tail -3 $OUT/memcheck.log

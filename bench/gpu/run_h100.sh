#!/bin/bash
# One device call: unpack the self-contained mc, check every oracle on the GPU, memcheck one model, time HF's decode peer.
# Run from the checkout root with .gpu-carry holding app.tar.xz and this folder's scripts.
set -o pipefail
nvidia-smi -L | tee $OUT/device.txt
mkdir -p /tmp/r && tar xJf .gpu-carry/app.tar.xz -C /tmp/r || exit 1
MC=/tmp/r/app/mc
$MC eval tests/oracles/llama --inputs tests/oracles/llama/reference.safetensors --out /tmp/x.safetensors --target cuda --json 2>&1 | tail -3
python3 .gpu-carry/check_oracles.py $MC tests/oracles $OUT/oracles.json 2>&1 | tee $OUT/oracles.log
timeout 240 compute-sanitizer --tool memcheck $MC eval tests/oracles/llama --inputs tests/oracles/llama/reference.safetensors --out /tmp/s.safetensors --target cuda --generate 4 > $OUT/memcheck.log 2>&1; echo "memcheck exit $?" | tee -a $OUT/memcheck.log
tail -5 $OUT/memcheck.log

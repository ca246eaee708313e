#!/bin/bash
# One device call, from the checkout root with .gpu-carry holding app.tar.xz and this folder's scripts:
# every oracle on the GPU, the llama-110M-shape bench with single-kernel timings, PyTorch's peers, a memcheck.
set -o pipefail
nvidia-smi -L | tee $OUT/device.txt
mkdir -p /tmp/r && tar xJf .gpu-carry/app.tar.xz -C /tmp/r && tar xJf .gpu-carry/extra.tar.xz -C /tmp/r || exit 1
MC=/tmp/r/app/mc
$MC eval tests/oracles/llama --inputs tests/oracles/llama/reference.safetensors --out /tmp/x.safetensors --target cuda --json 2>&1 | tail -3
timeout 200 python3 .gpu-carry/check_oracles.py $MC tests/oracles $OUT/oracles.json 2>&1 | tee $OUT/oracles.log | tail -40
timeout 150 $MC bench examples/llama.arch --set dim=768 n_layers=12 n_heads=12 n_kv_heads=4 ffn_dim=2048 vocab=32000 --prompt 512 --gen 128 --reps 3 --target cuda --kernels --json 2>&1 | tee $OUT/bench.json | tail -5
[ -n "$PEERS" ] && timeout 150 python3 .gpu-carry/peers.py 2>&1 | tee $OUT/peers.json | tail -3
timeout 90 compute-sanitizer --tool memcheck $MC eval tests/oracles/llama --inputs tests/oracles/llama/reference.safetensors --out /tmp/s.safetensors --target cuda --generate 2 > $OUT/memcheck.log 2>&1; echo "memcheck exit $?" | tee -a $OUT/memcheck.log
tail -4 $OUT/memcheck.log

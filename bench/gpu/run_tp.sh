#!/bin/bash
# One device call on nvidia-h200-x2, from the checkout root, with .gpu-tp/ holding app.tar.xz and this folder's
# scripts: --tp 2 against one GPU on every oracle, then a LLaMA-7B-shaped model (seeded random fp32 weights) at TP 1
# and TP 2 with NCCL's own all-reduce measured in the same process. Results under $OUT.
set -o pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONUNBUFFERED=1 NCCL_DEBUG=WARN MC_DEBUG=1 MC_HAS_GPU=1
CARRY=${CARRY:-.gpu-tp}
date -u | tee $OUT/device.txt
nvidia-smi -L | tee -a $OUT/device.txt
nvidia-smi topo -m >> $OUT/device.txt 2>&1
# PyTorch's wheel carries NCCL (nvidia-nccl-cu13); point mc at it.
export MC_NCCL_PATH=$(python3 -c "import nvidia.nccl as n, os; print(os.path.join(list(n.__path__)[0], 'lib'))")
ls $MC_NCCL_PATH | tee -a $OUT/device.txt
python3 -c "import torch; print('torch', torch.__version__, 'nccl', torch.cuda.nccl.version(), 'gpus', torch.cuda.device_count())" | tee -a $OUT/device.txt
mkdir -p /tmp/r && tar xJf $CARRY/app.tar.xz -C /tmp/r || exit 1
MC=/tmp/r/app/mc
O=tests/oracles/llama
timeout 60 $MC eval $O --inputs $O/reference.safetensors --out /tmp/smoke.safetensors --target cuda --tp 2 --generate 2 --json 2>&1 | tee $OUT/smoke.txt | tail -3
timeout 110 python3 $CARRY/check_tp.py $MC tests/oracles $OUT/oracles_tp.json 2>&1 | tail -3
S="--set dim=4096 n_layers=32 n_heads=32 n_kv_heads=32 ffn_dim=11008 vocab=32000"
B="--prompt ${PROMPT:-256} --gen ${GEN:-32} --reps ${REPS:-2} --target cuda --json"
timeout ${T1:-120} $MC bench examples/llama.arch $S $B 2>&1 | tee $OUT/bench_tp1.json | tail -c 600
timeout ${T2:-130} $MC bench examples/llama.arch $S $B --tp 2 2>&1 | tee $OUT/bench_tp2.json | tail -c 1500
python3 - <<'PY'
import json, os
o = os.environ["OUT"]
def last(p):
    try: return json.loads(open(p).read().strip().splitlines()[-1])
    except Exception as e: return {"error": str(e)}
a, b = last(f"{o}/bench_tp1.json"), last(f"{o}/bench_tp2.json")
for k in ("pp_tokens_per_s", "ms_per_token", "launches_per_token"):
    print(k, a.get(k), b.get(k))
if a.get("ms_per_token") and b.get("ms_per_token"):
    print("decode TP2/TP1 speedup", round(a["ms_per_token"] / b["ms_per_token"], 3), "prefill", round(b["pp_tokens_per_s"] / a["pp_tokens_per_s"], 3))
print("all-reduce ms/token (estimate)", b.get("all_reduce_ms_per_token_estimate"), "sweep", b.get("nccl_all_reduce"))
PY

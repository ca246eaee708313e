#!/bin/bash
# One device call for the tensor-core kernels, from the checkout root with $CARRY holding app.tar.xz and this folder:
# `mc kernels` (timings, float64 checks, PTX contents) + PyTorch's outputs and peers in the same run -> $OUT/kernels.json.
set -o pipefail
CARRY=${CARRY:-.gpu-carry}
nvidia-smi -L | tee $OUT/device.txt
mkdir -p /tmp/r && tar xJf $CARRY/app.tar.xz -C /tmp/r || exit 1
PYTHONUNBUFFERED=1 timeout ${KERNELS_TIMEOUT:-400} python3 $CARRY/kernels.py /tmp/r/app/mc $OUT/kernels.json "$@" 2>&1 | tee $OUT/kernels.log

#!/bin/bash
# After run_kernels.sh (which leaves the kernels' post-processed PTX in /tmp/mck): ptxas resource usage of each kernel,
# the SASS instruction mix of the tensor-core kernels, and one Nsight Compute profile of the pipelined GEMM.
cd /tmp/mck || exit 1
for f in *.ptx; do echo "== $f"; ptxas -arch=sm_90 -v "$f" -o "${f%.ptx}.cubin" 2>&1 | grep -E "registers|spill|smem|error"; done > $OUT/ptxas.txt 2>&1
for k in TensorCoreGemmPipelined.Gemm FlashAttention.Attention; do
  cuobjdump -sass $k.cubin > /tmp/$k.sass 2>&1
  echo "== $k"; grep -oE "^\s+/\*[0-9a-f]+\*/\s+[A-Z0-9_.]+" /tmp/$k.sass | awk '{print $2}' | sed 's/\..*//' | sort | uniq -c | sort -rn | head -40
done > $OUT/sass_mix.txt 2>&1
cp /tmp/TensorCoreGemmPipelined.Gemm.sass $OUT/gemm.sass
cat $OUT/ptxas.txt
timeout ${NCU_TIMEOUT:-150} ncu --kernel-name Kernel_Gemm --launch-count 1 --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats --section MemoryWorkloadAnalysis \
  /tmp/r/app/mc kernels --gemm-size 4096 --seq 128 --batches 3 > $OUT/ncu.txt 2>&1
grep -E "Duration|Throughput|Registers|Occupancy|Stall|Warp Cycles|Block Limit|Shared Memory Config|L2 Hit|Bank" $OUT/ncu.txt | head -60

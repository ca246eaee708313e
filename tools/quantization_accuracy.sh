#!/bin/bash
# The pystories accuracy protocol of docs/quantization.md (issue 8): calibrate on the first 64 windows of 256 tokens
# of examples/pystories/eval.txt, score with `mc perplexity --skip-windows 64`, group size 64.
# usage: tools/quantization_accuracy.sh OUT_DIR [MC]      (MC: the mc executable; default: dotnet run --project src/Cli -c Release)
# Prints one line per scheme: name, perplexity, tokens, model.safetensors bytes. CPU-heavy: runs at nice 10, one at a time.
set -euo pipefail
out=${1:?usage: quantization_accuracy.sh OUT_DIR [MC]}
mc=${2:-"dotnet run --project src/Cli -c Release --"}
mkdir -p "$out"
run() {
  local name=$1; shift
  local model=examples/pystories
  if [ "$name" != fp32 ]; then
    model=$out/$name
    nice -n 10 $mc quantize examples/pystories "$@" --group-size 64 --calibration examples/pystories/eval.txt \
      --calibration-windows 64 -o "$model" > "$out/$name.quantize.log" 2>&1
  fi
  nice -n 10 $mc perplexity "$model" --text examples/pystories/eval.txt --skip-windows 64 --json > "$out/$name.json"
  echo "$name $(tr -d '\n ' < "$out/$name.json") $(stat -c %s "$model/model.safetensors")"
}
run fp32
run int8 --quantize int8
run int4 --quantize int4
run awq-int4 --quantize awq-int4
run w8a8 --quantize w8a8
run smoothquant --quantize smoothquant --smooth-alpha 0.5
run magnitude-0.5 --prune magnitude:0.5
run wanda-0.5 --prune wanda:0.5
run wanda-2-4 --prune wanda:2:4

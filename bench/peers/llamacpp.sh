#!/usr/bin/env bash
# Side by side with llama.cpp, in one run: the same LLaMA shapes with the same seeded random f32 weights through
# llama.cpp's llama-bench and through `mc bench`, alternating, then one table of medians, spreads and ratios.
#
#   LLAMA_CPP=/path/to/llama.cpp bench/peers/llamacpp.sh [reps] [shape...]     shapes: llama-110M llama-1B
#
# LLAMA_CPP is a llama.cpp source tree of the pinned commit below, built (CMake, Release, -DGGML_NATIVE=ON) so that
# $LLAMA_CPP/build/bin/llama-bench exists; its gguf-py folder writes the GGUF. This script does not fetch or build
# llama.cpp (see docs/performance.md). Needs python3 with numpy and sentencepiece (gguf-py imports it; Debian: python3-numpy python3-sentencepiece) and the .NET SDK.
# Environment: THREADS (2), PROMPT (512), GEN (128), WORK (scratch folder for the weights, default .scratch/peers),
# PYTHON, MC (command that runs mc; default: the Release build of src/Cli, built if missing), NICE (nice level, 10).
set -euo pipefail

LLAMA_CPP_COMMIT=c5d91a74006c49376590ef2b67420bc7ce206397   # tag b4747 (2025-02-20)
REPS=${1:-5}; shift || true
SHAPES=("$@"); [ ${#SHAPES[@]} -gt 0 ] || SHAPES=(llama-110M llama-1B)
THREADS=${THREADS:-2}; PROMPT=${PROMPT:-512}; GEN=${GEN:-128}; NICE=${NICE:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${WORK:-$ROOT/.scratch/peers}
: "${LLAMA_CPP:?set LLAMA_CPP to a llama.cpp tree (commit $LLAMA_CPP_COMMIT) built with cmake -DGGML_NATIVE=ON}"
LLAMA_BENCH=$LLAMA_CPP/build/bin/llama-bench
[ -x "$LLAMA_BENCH" ] || { echo "no $LLAMA_BENCH: build llama-bench first" >&2; exit 1; }
if [ -z "${MC:-}" ]; then
  MC_DLL=$ROOT/src/Cli/bin/Release/net10.0/mc.dll
  [ -f "$MC_DLL" ] || dotnet build "$ROOT/src/Cli" -c Release -v q >&2
  MC="dotnet $MC_DLL"
fi
mkdir -p "$WORK"
# Debian's python3-numpy lives in the system python; a pyenv shim earlier on PATH may lack it.
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import numpy' 2>/dev/null || PYTHON=/usr/bin/python3

# name: dim layers heads kv_heads ffn vocab
shape_args() {
  case $1 in
    llama-110M) echo "768 12 12 4 2048 32000" ;;
    llama-1B) echo "2048 16 32 8 5632 32000" ;;
    *) echo "unknown shape $1 (llama-110M, llama-1B)" >&2; exit 2 ;;
  esac
}

RESULTS=$WORK/results.jsonl
: > "$RESULTS"
for shape in "${SHAPES[@]}"; do
  read -r dim layers heads kv ffn vocab <<< "$(shape_args "$shape")"
  set_args=(--set "dim=$dim" "n_layers=$layers" "n_heads=$heads" "n_kv_heads=$kv" "ffn_dim=$ffn" "vocab=$vocab")
  st=$WORK/$shape.safetensors; gg=$WORK/$shape-f32.gguf
  if [ ! -f "$gg" ]; then
    echo "== $shape: writing the seeded weights and the GGUF" >&2
    $MC bench "$ROOT/examples/llama.arch" "${set_args[@]}" --save-weights "$st"
    "$PYTHON" "$ROOT/bench/peers/safetensors_to_gguf.py" "$st" "$gg" --gguf-py "$LLAMA_CPP/gguf-py" \
      --heads "$heads" --kv-heads "$kv" --name "$shape"
    rm -f "$st"
  fi
  for rep in $(seq 1 "$REPS"); do
    echo "== $shape rep $rep/$REPS: llama-bench" >&2
    nice -n "$NICE" "$LLAMA_BENCH" -m "$gg" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r 1 -o json 2>/dev/null \
      | "$PYTHON" -c 'import json,sys
for r in json.load(sys.stdin):
    test = "pp" if r["n_gen"] == 0 else "tg"
    print(json.dumps({"shape": sys.argv[1], "rep": int(sys.argv[2]), "who": "llama.cpp", "test": test, "t_s": r["avg_ts"]}))' "$shape" "$rep" >> "$RESULTS"
    echo "== $shape rep $rep/$REPS: mc bench" >&2
    nice -n "$NICE" $MC bench "$ROOT/examples/llama.arch" "${set_args[@]}" --prompt "$PROMPT" --gen "$GEN" \
      --threads "$THREADS" --reps 1 --json \
      | "$PYTHON" -c 'import json,sys
r = json.load(sys.stdin)
for test, key in (("pp", "pp_tokens_per_s"), ("tg", "tg_tokens_per_s")):
    print(json.dumps({"shape": sys.argv[1], "rep": int(sys.argv[2]), "who": "mc", "test": test, "t_s": r[key]}))' "$shape" "$rep" >> "$RESULTS"
  done
done

"$PYTHON" - "$RESULTS" "$PROMPT" "$GEN" "$THREADS" "$LLAMA_CPP_COMMIT" <<'EOF'
import json, statistics, sys
path, prompt, gen, threads, commit = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
def vals(shape, who, test): return [r["t_s"] for r in rows if r["shape"] == shape and r["who"] == who and r["test"] == test]
def fmt(v): return f"{statistics.median(v):.1f} [{min(v):.1f}..{max(v):.1f}]"
print(f"llama.cpp {commit[:10]} (f32 GGUF) vs mc bench, {threads} threads; medians [min..max] of {len(vals(rows[0]['shape'], 'mc', 'pp'))} alternating reps, tokens/s")
print("| shape | test | llama.cpp | mc | ratio mc/llama.cpp (median of per-rep ratios [min..max]) |")
print("| --- | --- | ---: | ---: | ---: |")
for shape in dict.fromkeys(r["shape"] for r in rows):
    for test, n in (("pp", prompt), ("tg", gen)):
        l, m = vals(shape, "llama.cpp", test), vals(shape, "mc", test)
        ratios = [b / a for a, b in zip(l, m)]
        print(f"| {shape} | {test}{n} | {fmt(l)} | {fmt(m)} | {statistics.median(ratios):.2f} [{min(ratios):.2f}..{max(ratios):.2f}] |")
EOF

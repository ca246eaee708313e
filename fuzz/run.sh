#!/usr/bin/env bash
# Coverage-guided fuzzing of one reader with AFL++ and SharpFuzz (not part of CI).
#   fuzz/run.sh <dsl|safetensors|config|tokenizer-json|sentencepiece|quantized-folder|gguf> <seconds>
# Needs afl-fuzz (Debian: apt-get install afl++). Builds the harness once into fuzz/.build, instruments the
# project's assemblies with the sharpfuzz tool (installed into fuzz/.tools), regenerates the seed corpus if it
# is missing, and fuzzes for <seconds>. Findings go to fuzz/findings/<target>/ (crashes/, hangs/, queue/,
# fuzzer_stats). Instrumented assemblies only run under afl-fuzz; replay inputs with the plain build:
#   dotnet fuzz/.build/replay/ModelCompiler.Fuzz.dll <target> <file>...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
targets="dsl safetensors config tokenizer-json sentencepiece quantized-folder gguf"
if [ $# -ne 2 ] || ! [[ " $targets " == *" $1 "* ]] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: fuzz/run.sh <$(echo $targets | tr ' ' '|')> <seconds>" >&2; exit 2
fi
target=$1 seconds=$2
command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 1; }

build="${MC_FUZZ_BUILD:-$here/.build}" bin="$build/bin"   # MC_FUZZ_BUILD: a separate build, so one can be rebuilt while another fuzzes
mkdir -p "$build"
# One build and instrumentation shared by every target; the lock lets several targets start at once.
(
  flock 9
  if [ ! -f "$build/instrumented" ]; then
    if [ ! -x "$here/.tools/sharpfuzz" ]; then
      dotnet tool install --tool-path "$here/.tools" SharpFuzz.CommandLine --version 2.3.0 >&2
    fi
    rm -rf "$bin" "$build/replay"
    dotnet build "$here/ModelCompiler.Fuzz/ModelCompiler.Fuzz.csproj" -c Release -o "$build/replay" -p:UseAppHost=false >&2
    dotnet build "$here/ModelCompiler.Fuzz/ModelCompiler.Fuzz.csproj" -c Release -o "$bin" -p:UseAppHost=false >&2
    for assembly in ModelCompiler.Frontend ModelCompiler.IR ModelCompiler.Runtime ModelCompiler.Passes ModelCompiler.Backends; do
      "$here/.tools/sharpfuzz" "$bin/$assembly.dll" >&2
    done
    touch "$build/instrumented"
  fi
) 9>"$build/lock"

[ -d "$here/seeds/$target" ] || python3 "$here/tools/make_seeds.py"

findings="$here/findings/$target"
resume=(-i "$here/seeds/$target")
# A finished run resumes from its queue rather than starting over.
if [ -f "$findings/fuzzer_stats" ]; then resume=(-i -); fi
mkdir -p "$here/findings"

export MC_FUZZ_DATA="$here/data"         # fixed files a target reads beside its input (quantized-folder: the model)
export AFL_SKIP_BIN_CHECK=1            # a dotnet program has no AFL instrumentation of its own
export AFL_NO_AFFINITY=1               # several targets share the cores
export AFL_SKIP_CPUFREQ=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1                     # status lines instead of the curses screen
export AFL_AUTORESUME=1
# -t: per-input limit in ms (a .NET start plus a JIT on a loaded machine); -m none: the CLR reserves lots of address space.
dicts=()
case $target in safetensors|config|tokenizer-json|quantized-folder) dicts+=(-x "$here/dict/json.dict") ;; esac
[ -f "$here/dict/$target.dict" ] && dicts+=(-x "$here/dict/$target.dict")
exec afl-fuzz "${resume[@]}" "${dicts[@]}" -o "$findings" -t 10000 -m none -V "$seconds" -- \
  dotnet "$bin/ModelCompiler.Fuzz.dll" "$target"

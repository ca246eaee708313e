"""Quantized models on the GPU against the interpreter (the op's definition): for each scheme, `mc quantize` an oracle
folder, then `mc eval --target interpreter` and `--target cuda` on its reference inputs (prefill: GEMM / int8 mma.sync
paths) and with --generate (decode: the GEMV), logits within 1e-4 relative to max|ref|, greedy ids equal.
opt (q/k/v/o and the LM head, with biases) and gpt2 (its LM head) have linears whose widths are multiples of 64: their W8A8
prefill takes the int8 mma.sync kernel.
Usage: check_quantized.py MC ORACLES_DIR OUT_JSON"""
import json, os, subprocess, sys
import numpy as np
from safetensors.numpy import load_file

mc, root, out = sys.argv[1], sys.argv[2], sys.argv[3]
rows = []
for family, scheme, group in (("llama", "int8", None), ("llama", "int4", "32"), ("llama", "w8a8", None), ("opt", "w8a8", None), ("gpt2", "w8a8", "64"), ("opt", "int4", "32")):
    folder = os.path.join(root, family)
    ref_path = os.path.join(folder, "reference.safetensors")
    q = f"/tmp/q-{family}-{scheme}-{group}"
    args = [mc, "quantize", folder, "--quantize", scheme, "-o", q] + (["--group-size", group] if group else [])
    p = subprocess.run(args, capture_output=True, text=True)
    row = {"family": family, "scheme": scheme, "group": group, "quantize_exit": p.returncode}
    if p.returncode != 0:
        row["stderr"] = p.stderr[-300:]; rows.append(row); print(json.dumps(row), flush=True); continue
    got = {}
    for target in ("interpreter", "cuda"):
        o = f"{q}-{target}.safetensors"
        p = subprocess.run([mc, "eval", q, "--inputs", ref_path, "--out", o, "--target", target, "--generate", "3"], capture_output=True, text=True)
        row[f"{target}_exit"] = p.returncode
        if p.returncode != 0: row[f"{target}_stderr"] = p.stderr[-300:]
        else: got[target] = load_file(o)
    if len(got) == 2:
        e, a = got["interpreter"]["logits"].astype(np.float64), got["cuda"]["logits"].astype(np.float64)
        row["relative_error"] = float(np.abs(e - a).max() / np.abs(e).max())
        row["greedy_equal"] = bool(np.array_equal(got["interpreter"]["greedy_ids"], got["cuda"]["greedy_ids"]))
        row["ok"] = row["relative_error"] <= 1e-4 and row["greedy_equal"]
    rows.append(row)
    print(json.dumps(row), flush=True)
json.dump(rows, open(out, "w"), indent=1)
print(f"{sum(1 for r in rows if r.get('ok'))}/{len(rows)} quantized schemes match the interpreter on the GPU")

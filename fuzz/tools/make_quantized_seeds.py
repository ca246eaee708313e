#!/usr/bin/env python3
"""Writes fuzz/data/quantized-llama/ (config.json, model.safetensors) and fuzz/seeds/quantized-folder/*.json from
three folders `mc quantize tests/oracles/llama --quantize int4|int8|w8a8 --group-size 32 -o <folder>` wrote.
The three models' compressed tensors go into one model.safetensors (int8 and w8a8 ones renamed apart), so every
seed manifest loads completely and the fuzzer starts from inputs that reach the weight checks.
    python3 fuzz/tools/make_quantized_seeds.py <int4 folder> <int8 folder> <w8a8 folder>"""
import json, os, struct, sys

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
data_dir = os.path.join(root, "fuzz", "data", "quantized-llama")
seed_dir = os.path.join(root, "fuzz", "seeds", "quantized-folder")
os.makedirs(data_dir, exist_ok=True); os.makedirs(seed_dir, exist_ok=True)

def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8]); header = json.loads(raw[8:8 + n]); body = raw[8 + n:]
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}

tensors, seeds = {}, {}
for folder, scheme in zip(sys.argv[1:4], ("int4", "int8", "w8a8")):
    manifest = json.load(open(os.path.join(folder, "quantization.json")))
    suffix = "" if scheme == "int4" else "." + scheme   # int4 keeps the names mc quantize gives
    rename = {}
    for e in manifest["linears"]:
        for key in ("codes", "scales", "zeros", "input_scale"):
            if e.get(key): rename[e[key]] = e[key] + suffix; e[key] = e[key] + suffix
    for name, t in read(os.path.join(folder, "model.safetensors")).items():
        tensors[rename.get(name, name)] = t
    seeds[scheme] = manifest
    if scheme == "int4":
        open(os.path.join(data_dir, "config.json"), "wb").write(open(os.path.join(folder, "config.json"), "rb").read())

header, body = {}, b""
for name in sorted(tensors):
    dtype, shape, raw = tensors[name]
    header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
    body += raw
h = json.dumps(header, separators=(",", ":")).encode(); h += b" " * (-len(h) % 8)
open(os.path.join(data_dir, "model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + body)
for scheme, manifest in seeds.items():
    # Compact JSON: AFL mutates small inputs faster.
    open(os.path.join(seed_dir, scheme + ".json"), "w").write(json.dumps(manifest, separators=(",", ":")))
print(f"wrote {data_dir} ({len(tensors)} tensors) and {len(seeds)} seeds in {seed_dir}")

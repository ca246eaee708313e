#!/usr/bin/env python3
"""Writes the fuzz seed corpora under fuzz/seeds/<target>/ from examples/, tests/oracles and shared/tokenizers.
AFL works best on small seeds, so large inputs are trimmed (vocabularies cut, tensors small)."""
import json, os, shutil, struct, sys, glob

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shared = os.environ.get("MC_SHARED", os.path.join(os.path.dirname(root), "shared"))
seeds = os.path.join(root, "fuzz", "seeds")

def out(target, name, data):
    d = os.path.join(seeds, target); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f: f.write(data if isinstance(data, bytes) else data.encode())

# dsl: every example. The harness's file sits at the root of the built-in library (which mirrors examples/),
# so std/'s own imports are rewritten to that root.
for p in sorted(glob.glob(os.path.join(root, "examples", "**", "*.arch"), recursive=True)):
    rel = os.path.relpath(p, os.path.join(root, "examples"))
    text = open(p, "rb").read()
    if rel.startswith("std/"): text = text.replace(b'import "', b'import "std/')
    out("dsl", rel.replace("/", "_"), text)

# config: every oracle's config.json.
for p in sorted(glob.glob(os.path.join(root, "tests", "oracles", "*", "config.json"))):
    out("config", os.path.basename(os.path.dirname(p)) + ".json", open(p, "rb").read())

# safetensors: small files of every dtype the reader converts, plus metadata and an empty tensor.
def st(tensors, metadata=None):
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None: header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data
out("safetensors", "f32.safetensors", st([("w", "F32", [2, 3], struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, 7))]))
out("safetensors", "mixed.safetensors", st([
    ("a.f16", "F16", [2], struct.pack("<2e", 1.5, -2)), ("b.bf16", "BF16", [2], b"\x80\x3f\x00\xc0"),
    ("c.f64", "F64", [1], struct.pack("<d", 3.25)), ("d.i64", "I64", [2], struct.pack("<2q", -1, 5)),
    ("e.i32", "I32", [1, 1], struct.pack("<i", 9)), ("f.u8", "U8", [3], b"\x01\x02\xff"),
    ("g.bool", "BOOL", [2], b"\x00\x01"), ("h.empty", "F32", [0, 4], b"")], {"format": "pt"}))
out("safetensors", "scalar.safetensors", st([("s", "I8", [], b"\xfe")], {}))

# tokenizer-json: the wordpiece tokenizer, and the BPE / Unigram ones with their vocabularies cut.
tok = os.path.join(shared, "tokenizers")
wp = json.load(open(os.path.join(tok, "wordpiece_bert", "tokenizer.json")))
wp["model"]["vocab"] = dict(list(wp["model"]["vocab"].items())[:300])
out("tokenizer-json", "wordpiece.json", json.dumps(wp, ensure_ascii=False))
bpe = json.load(open(os.path.join(tok, "bpe_bytelevel", "tokenizer.json")))
keep = dict(list(bpe["model"]["vocab"].items())[:400])
bpe["model"]["vocab"] = keep
pairs = lambda m: m.split(" ") if isinstance(m, str) else m
bpe["model"]["merges"] = [m for m in bpe["model"]["merges"][:300]
                          if all(t in keep for t in pairs(m)) and "".join(pairs(m)) in keep]
out("tokenizer-json", "bpe_bytelevel.json", json.dumps(bpe, ensure_ascii=False))
uni = json.load(open(os.path.join(tok, "unigram_t5", "tokenizer.json")))
uni["model"]["vocab"] = uni["model"]["vocab"][:300]
out("tokenizer-json", "unigram.json", json.dumps(uni, ensure_ascii=False))

# sentencepiece: the .model files with most pieces dropped (raw protobuf: field 1 = pieces).
def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1; v |= (c & 0x7f) << s; s += 7
        if c < 0x80: return v, i
def trim(data, max_pieces, drop_charsmap):
    i, kept, pieces = 0, b"", 0
    while i < len(data):
        start = i; key, i = varint(data, i); field, wire = key >> 3, key & 7
        if wire == 2: n, i = varint(data, i); i += n
        elif wire == 0: _, i = varint(data, i)
        elif wire == 5: i += 4
        elif wire == 1: i += 8
        if field == 1:
            pieces += 1
            if pieces > max_pieces: continue
        if field == 3 and drop_charsmap: continue
        kept += data[start:i]
    return kept
for name in ("sentencepiece_bpe", "sentencepiece_unigram"):
    data = open(os.path.join(tok, name, "tokenizer.model"), "rb").read()
    out("sentencepiece", name + ".model", trim(data, 300, True))
    if name.endswith("unigram"):  # one seed with the (large) precompiled normalizer; AFL is slow on big inputs
        out("sentencepiece", name + "_charsmap.model", trim(data, 300, False))

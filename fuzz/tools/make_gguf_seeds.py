#!/usr/bin/env python3
"""Writes fuzz/seeds/gguf/: tiny GGUF files (a one-layer LLaMA of width 32 in F16, Q8_0 and Q4_0, and a
byte-level BPE vocabulary) with llama.cpp's gguf-py, so the fuzzer starts from files llama.cpp's own writer made.
AFL works best on small inputs, so the model is a few KB.
    python3 fuzz/tools/make_gguf_seeds.py /path/to/llama.cpp/gguf-py"""
import os, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import gguf

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = os.path.join(root, "fuzz", "seeds", "gguf"); os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
dim, ffn, vocab, heads, kv = 32, 32, 8, 2, 1

def model(name, qtype):
    w = gguf.GGUFWriter(os.path.join(out, name), "llama")
    w.add_context_length(16); w.add_embedding_length(dim); w.add_block_count(1); w.add_feed_forward_length(ffn)
    w.add_head_count(heads); w.add_head_count_kv(kv); w.add_rope_dimension_count(dim // heads); w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>", "\u2581a", "b", "<0x41>", "\u2581", "ab"]); w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, 0.0, -3.0, -4.0])
    w.add_token_types([2, 3, 3, 1, 1, 1, 1, 1]); w.add_bos_token_id(1); w.add_eos_token_id(2)   # no byte pieces: byte fallback needs all 256
    def add(n, shape):
        a = rng.standard_normal(shape).astype(np.float32)
        if len(shape) == 1: w.add_tensor(n, a)
        elif qtype == "f16": w.add_tensor(n, a.astype(np.float16))
        elif qtype == "f32": w.add_tensor(n, a)
        else:
            t = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0}[qtype]
            w.add_tensor(n, gguf.quants.quantize(a, t), raw_dtype=t)
    add("token_embd.weight", (vocab, dim))
    for n, s in [("attn_norm", (dim,)), ("attn_q", (dim, dim)), ("attn_k", (dim // heads * kv, dim)), ("attn_v", (dim // heads * kv, dim)),
                 ("attn_output", (dim, dim)), ("ffn_norm", (dim,)), ("ffn_gate", (ffn, dim)), ("ffn_up", (ffn, dim)), ("ffn_down", (dim, ffn))]:
        add(f"blk.0.{n}.weight", s)
    add("output_norm.weight", (dim,)); add("output.weight", (vocab, dim))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

for q in ("f16", "q8_0", "q4_0"): model(f"llama-{q}.gguf", q)   # F32 is in every file (the norms); a whole f32 model is too big a seed

w = gguf.GGUFWriter(os.path.join(out, "tokenizer-gpt2.gguf"), "llama")
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("gpt-2")
w.add_token_list(["<|endoftext|>", "a", "b", "c", "\u0120", "ab", "\u0120a", "abc"]); w.add_token_types([3, 1, 1, 1, 1, 1, 1, 1])
w.add_token_merges(["a b", "\u0120 a", "ab c"]); w.add_bos_token_id(0); w.add_eos_token_id(0)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
for f in sorted(os.listdir(out)): print(f, os.path.getsize(os.path.join(out, f)))

#!/usr/bin/env python3
"""Converts the f32 LLaMA-shaped checkpoint `mc bench --save-weights` writes (Hugging Face tensor names) into a
GGUF file that llama.cpp's llama-bench loads, so both programs run the same model with the same weights.

Uses llama.cpp's own gguf-py (pass its folder with --gguf-py) and numpy. The tensor names and the Q/K row
permutation follow llama.cpp's convert_hf_to_gguf.py (LlamaModel): llama.cpp applies RoPE to adjacent pairs of a
head's rows, Hugging Face to its two halves, so Q and K rows are interleaved here. The vocabulary is a placeholder
(llama-bench feeds random token ids; nothing is tokenized), with the checkpoint's vocab size.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    header.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {info['dtype']}; this converter takes the f32 file mc bench writes")
        start, end = info["data_offsets"]
        tensors[name] = data[start:end].view(np.float32).reshape(info["shape"])
    return tensors


def permute_for_rope(w, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute: rows of each head reordered from [half0 | half1] to interleaved pairs.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("safetensors")
    ap.add_argument("gguf")
    ap.add_argument("--gguf-py", required=True, help="llama.cpp's gguf-py folder")
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--kv-heads", type=int, required=True)
    ap.add_argument("--eps", type=float, default=1e-5)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--name", default="mc-bench")
    args = ap.parse_args()
    sys.path.insert(0, args.gguf_py)
    import gguf

    t = read_safetensors(args.safetensors)
    vocab, dim = t["model.embed_tokens.weight"].shape
    n_layers = 1 + max(int(k.split(".")[2]) for k in t if k.startswith("model.layers."))
    ffn = t["model.layers.0.mlp.gate_proj.weight"].shape[0]
    head_dim = t["model.layers.0.self_attn.q_proj.weight"].shape[0] // args.heads

    w = gguf.GGUFWriter(args.gguf, "llama")
    w.add_name(args.name)
    w.add_context_length(args.context)
    w.add_embedding_length(dim)
    w.add_block_count(n_layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(args.heads)
    w.add_head_count_kv(args.kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(args.rope_theta)
    w.add_layer_norm_rms_eps(args.eps)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"<t{i}>" for i in range(3, vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (vocab - 3))
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    w.add_tensor("token_embd.weight", t["model.embed_tokens.weight"])
    for i in range(n_layers):
        hf, blk = f"model.layers.{i}", f"blk.{i}"
        w.add_tensor(f"{blk}.attn_norm.weight", t[f"{hf}.input_layernorm.weight"])
        w.add_tensor(f"{blk}.attn_q.weight", permute_for_rope(t[f"{hf}.self_attn.q_proj.weight"], args.heads))
        w.add_tensor(f"{blk}.attn_k.weight", permute_for_rope(t[f"{hf}.self_attn.k_proj.weight"], args.kv_heads))
        w.add_tensor(f"{blk}.attn_v.weight", t[f"{hf}.self_attn.v_proj.weight"])
        w.add_tensor(f"{blk}.attn_output.weight", t[f"{hf}.self_attn.o_proj.weight"])
        w.add_tensor(f"{blk}.ffn_norm.weight", t[f"{hf}.post_attention_layernorm.weight"])
        w.add_tensor(f"{blk}.ffn_gate.weight", t[f"{hf}.mlp.gate_proj.weight"])
        w.add_tensor(f"{blk}.ffn_up.weight", t[f"{hf}.mlp.up_proj.weight"])
        w.add_tensor(f"{blk}.ffn_down.weight", t[f"{hf}.mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", t["model.norm.weight"])
    w.add_tensor("output.weight", t.get("lm_head.weight", t["model.embed_tokens.weight"]))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.gguf}: llama, dim {dim}, {n_layers} layers, {args.heads}/{args.kv_heads} heads, ffn {ffn}, vocab {vocab}, f32", file=sys.stderr)


if __name__ == "__main__":
    main()

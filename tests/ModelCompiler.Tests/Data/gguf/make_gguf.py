#!/usr/bin/env python3
"""Writes the GGUF test files from the zoo's tiny LLaMA oracle (tests/oracles/llama) and pystories' tokenizer, with
llama.cpp's own tools, so that what our reader is checked against is written by code nobody here wrote:
  llama-f32.gguf, llama-f16.gguf   gguf-py's GGUFWriter, tensor names and Q/K row permutation as convert_hf_to_gguf.py
  llama-q8_0.gguf, llama-q4_0.gguf llama.cpp's llama-quantize --pure from llama-f32.gguf
  llama-q8_0.dequant.safetensors, llama-q4_0.dequant.safetensors
                                   every tensor of the quantized file dequantized by gguf-py's quants.dequantize,
                                   un-permuted, under Hugging Face names: the fp32 reference for the quantized files
  tokenizer-gpt2.gguf              pystories' byte-level BPE vocabulary (tokens, merges, token types, special ids),
                                   no tensors; the special ids come from gguf-py's SpecialVocab
  tokenizer-llama.gguf             tests/tokenizers/sentencepiece_bpe's pieces (text, score, type) as a llama vocabulary,
                                   as convert_hf_to_gguf.py's _create_vocab_sentencepiece copies them
Usage (llama.cpp checkout with gguf-py and a build of llama-quantize; python with numpy):
  python3 make_gguf.py --llama-cpp /path/to/llama.cpp [--pystories OUT_DIR]"""
import argparse, json, os, struct, subprocess, sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", "..", ".."))


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8)); header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    return {k: np.array(data[v["data_offsets"][0]:v["data_offsets"][1]].view(np.float32).reshape(v["shape"])) for k, v in header.items()}


def write_safetensors(path, tensors):
    header, body = {}, b""
    for name in sorted(tensors):
        raw = np.ascontiguousarray(tensors[name], dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header, separators=(",", ":")).encode(); h += b" " * (-len(h) % 8)
    with open(path, "wb") as f: f.write(struct.pack("<Q", len(h)) + h + body)


def permute(w, n_head):
    # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


NAMES = {"attn_norm.weight": "input_layernorm.weight", "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
         "attn_v.weight": "self_attn.v_proj.weight", "attn_output.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
         "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight", "ffn_down.weight": "mlp.down_proj.weight"}


def hf_name(gguf_name):
    top = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
    if gguf_name in top: return top[gguf_name]
    _, layer, rest = gguf_name.split(".", 2)
    return f"model.layers.{layer}.{NAMES[rest]}"


def write_model(gguf, path, t, cfg, f16, tokenizer_folder=None):
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("zoo-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(cfg["head_dim"])
    w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    if tokenizer_folder is not None: add_gpt2_vocabulary(gguf, w, tokenizer_folder)
    else: add_placeholder_vocabulary(gguf, w, cfg)

    def add(name, a):
        # As convert_hf_to_gguf.py: 1-D tensors (norms) stay f32 in an f16 file.
        w.add_tensor(name, a.astype(np.float16) if f16 and a.ndim > 1 else a.astype(np.float32))
    add("token_embd.weight", t["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        for g, h in NAMES.items():
            a = t[f"model.layers.{i}.{h}"]
            if g == "attn_q.weight": a = permute(a, heads)
            if g == "attn_k.weight": a = permute(a, kv)
            add(f"blk.{i}.{g}", a)
    add("output_norm.weight", t["model.norm.weight"])
    add("output.weight", t["lm_head.weight"])
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def add_placeholder_vocabulary(gguf, w, cfg):
    # A placeholder SentencePiece vocabulary of the model's size (the oracle has no tokenizer; llama.cpp's tools want one).
    vocab = cfg["vocab_size"]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"<t{i}>" for i in range(3, vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (vocab - 3))
    w.add_unk_token_id(0); w.add_bos_token_id(cfg["bos_token_id"]); w.add_eos_token_id(cfg["eos_token_id"])


def dequantized(gguf, path, cfg):
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    out = {}
    for t in gguf.GGUFReader(path).tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape([int(d) for d in reversed(t.shape)])
        name = hf_name(t.name)
        if name.endswith("q_proj.weight"): a = unpermute(a, heads)
        if name.endswith("k_proj.weight"): a = unpermute(a, kv)
        out[name] = a
    return out


def write_tokenizer(gguf, path, folder):
    w = gguf.GGUFWriter(path, "llama")
    add_gpt2_vocabulary(gguf, w, folder)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def add_gpt2_vocabulary(gguf, w, folder):
    tok = json.load(open(os.path.join(folder, "tokenizer.json"), encoding="utf-8"))
    vocab = tok["model"]["vocab"]
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    n = max(list(vocab.values()) + list(added)) + 1
    tokens, types = [None] * n, [gguf.TokenType.NORMAL] * n
    for s, i in vocab.items(): tokens[i] = s
    for i, a in added.items():
        # As convert_hf_to_gguf.py's get_vocab_base: special added tokens are CONTROL, the others USER_DEFINED.
        tokens[i] = a["content"]; types[i] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True)   # merges and bos/eos ids from tokenizer.json / config files
    special.add_to_gguf(w)


def sentencepiece_pieces(path):
    """(piece, score, type) of a SentencePiece .model (ModelProto field 1), read without the sentencepiece module."""
    data = open(path, "rb").read()
    def varint(b, i):
        v = shift = 0
        while True:
            c = b[i]; i += 1; v |= (c & 0x7F) << shift; shift += 7
            if c < 0x80: return v, i
    def fields(b):
        i = 0
        while i < len(b):
            key, i = varint(b, i); wire = key & 7
            if wire == 0: v, i = varint(b, i)
            elif wire == 1: v = b[i:i + 8]; i += 8
            elif wire == 5: v = b[i:i + 4]; i += 4
            elif wire == 2: n, i = varint(b, i); v = b[i:i + n]; i += n
            else: raise ValueError(f"wire type {wire}")
            yield key >> 3, v
    pieces = []
    for field, value in fields(data):
        if field != 1: continue
        piece, score, kind = "", 0.0, 1
        for f, v in fields(value):
            if f == 1: piece = v.decode("utf-8")
            elif f == 2: score = struct.unpack("<f", v)[0]
            elif f == 3: kind = v
        pieces.append((piece, score, kind))
    return pieces


def write_llama_tokenizer(gguf, path, model):
    pieces = sentencepiece_pieces(model)
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list([p for p, _, _ in pieces])
    w.add_token_scores([s for _, s, _ in pieces])
    w.add_token_types([t for _, _, t in pieces])
    w.add_unk_token_id(0); w.add_bos_token_id(1); w.add_eos_token_id(2)   # the trainer's defaults, which this model keeps
    w.add_add_bos_token(True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True)
    ap.add_argument("--pystories", metavar="DIR", help="instead: write pystories-{f32,q8_0,q4_0}.gguf (with its vocabulary) into DIR; too big to commit")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.llama_cpp, "gguf-py"))
    import gguf
    quantize = os.path.join(args.llama_cpp, "build", "bin", "llama-quantize")
    if args.pystories:
        folder = os.path.join(root, "examples", "pystories")
        cfg = json.load(open(os.path.join(folder, "config.json")))
        f32 = os.path.join(args.pystories, "pystories-f32.gguf")
        write_model(gguf, f32, read_safetensors(os.path.join(folder, "model.safetensors")), cfg, f16=False, tokenizer_folder=folder)
        for q in ("q8_0", "q4_0"):
            subprocess.run([quantize, "--pure", f32, os.path.join(args.pystories, f"pystories-{q}.gguf"), q], check=True, stdout=subprocess.DEVNULL)
        return

    oracle = os.path.join(root, "tests", "oracles", "llama")
    cfg = json.load(open(os.path.join(oracle, "config.json")))
    t = read_safetensors(os.path.join(oracle, "model.safetensors"))
    write_model(gguf, os.path.join(here, "llama-f32.gguf"), t, cfg, f16=False)
    write_model(gguf, os.path.join(here, "llama-f16.gguf"), t, cfg, f16=True)
    for q in ("q8_0", "q4_0"):
        out = os.path.join(here, f"llama-{q}.gguf")
        subprocess.run([quantize, "--pure", os.path.join(here, "llama-f32.gguf"), out, q], check=True, stdout=subprocess.DEVNULL)
        write_safetensors(os.path.join(here, f"llama-{q}.dequant.safetensors"), dequantized(gguf, out, cfg))
    write_tokenizer(gguf, os.path.join(here, "tokenizer-gpt2.gguf"), os.path.join(root, "examples", "pystories"))
    write_llama_tokenizer(gguf, os.path.join(here, "tokenizer-llama.gguf"), os.path.join(root, "tests", "tokenizers", "sentencepiece_bpe", "tokenizer.model"))
    for f in sorted(os.listdir(here)):
        print(f"{f}: {os.path.getsize(os.path.join(here, f))} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()

# Copied from the team's shared tools (shared/tools/gen_oracles.py) so the device run can use it; run on the GPU machine.
# Builds tiny, randomly initialised Hugging Face models of every architecture family the
# compiler must cover, and records their outputs as reference ("oracle") data.
# Runs where torch + transformers are installed (the GPU machine); needs no network.
# usage: python3 gen_oracles.py OUT_DIR [SEED_OFFSET]   (writes OUT_DIR/<family>/ and OUT_DIR/../oracles.tar.gz)
# Each family folder holds config.json + model.safetensors (Hugging Face layout) and
# reference.safetensors: input_ids, logits, hidden_states.N (embedding output, then each layer;
# the last one is after the final norm), greedy_ids (prompt + 10 greedy tokens, batch row 0).
import json, os, sys, traceback, tarfile, io
import torch
import transformers as T
from safetensors.torch import save_file

OUT = sys.argv[1]
OFFSET = int(sys.argv[2]) if len(sys.argv) > 2 else 100  # seed offset: pick your own to get fresh weights and inputs
os.makedirs(OUT, exist_ok=True)
torch.set_grad_enabled(False)
V = 256

def perturb(model, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    for n, p in model.named_parameters():
        if p.dim() == 1:  # norm scales and biases: make them non-trivial
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        else:
            p.mul_(2.5)  # widen the default 0.02 init so activations and softmax are exercised

def causal_case(name, cfg_cls, model_cls, cfg_kw, seed0, seq=12, batch=2, gen=True, note=""):
    seed = seed0 + OFFSET
    torch.manual_seed(seed)
    cfg = cfg_cls(**cfg_kw)
    try:
        cfg._attn_implementation = "eager"
    except Exception:
        pass
    model = model_cls(cfg).eval().float()
    perturb(model, seed)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=g)
    out = model(input_ids=ids, output_hidden_states=True)
    ref = {"input_ids": ids.to(torch.int64).contiguous(), "logits": out.logits.float().contiguous()}
    for i, h in enumerate(out.hidden_states):
        ref[f"hidden_states.{i}"] = h.float().contiguous()
    if gen:
        # An explicit all-ones mask: without it, generate() treats prompt tokens equal to pad_token_id
        # as padding (and OPT shifts its positions), which no caller of mc eval asked for.
        g_ids = model.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), max_new_tokens=10, do_sample=False,
                               min_new_tokens=10, eos_token_id=None, pad_token_id=0)
        ref["greedy_ids"] = g_ids.to(torch.int64).contiguous()
    save_file(ref, os.path.join(d, "reference.safetensors"))
    meta = {"family": name, "class": model_cls.__name__, "transformers": T.__version__,
            "torch": torch.__version__, "note": note, "seed": seed,
            "params": sum(p.numel() for p in model.parameters())}
    json.dump(meta, open(os.path.join(d, "oracle.json"), "w"), indent=1)
    return out.logits

def run(name, fn):
    try:
        fn()
        print("OK  ", name, flush=True)
    except Exception as e:
        print("FAIL", name, repr(e)[:300], flush=True)
        traceback.print_exc(limit=2)

base_llama = dict(vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                  rms_norm_eps=1e-5, tie_word_embeddings=False)

run("llama", lambda: causal_case("llama", T.LlamaConfig, T.LlamaForCausalLM, base_llama, 1,
    note="pre-RMSNorm, SwiGLU, RoPE, GQA 4q/2kv"))
run("llama_mha", lambda: causal_case("llama_mha", T.LlamaConfig, T.LlamaForCausalLM,
    {**base_llama, "num_key_value_heads": 4}, 2, note="multi-head attention"))
run("llama_mqa", lambda: causal_case("llama_mqa", T.LlamaConfig, T.LlamaForCausalLM,
    {**base_llama, "num_key_value_heads": 1}, 3, note="multi-query attention"))

def rope_variant(name, scaling, seed, seq=24, maxpos=16):
    kw = {**base_llama, "max_position_embeddings": maxpos}
    try:
        kw2 = {**kw, "rope_scaling": scaling}
        causal_case(name, T.LlamaConfig, T.LlamaForCausalLM, kw2, seed, seq=seq,
                    note=f"RoPE scaling {scaling}, max_position_embeddings={maxpos}, seq={seq}")
    except Exception:
        kw2 = {**kw, "rope_parameters": {**scaling, "rope_theta": 10000.0}}
        causal_case(name, T.LlamaConfig, T.LlamaForCausalLM, kw2, seed, seq=seq,
                    note=f"RoPE parameters {scaling}, max_position_embeddings={maxpos}, seq={seq}")

run("llama_rope_linear", lambda: rope_variant("llama_rope_linear", {"rope_type": "linear", "factor": 2.0}, 4))
run("llama_rope_dynamic", lambda: rope_variant("llama_rope_dynamic", {"rope_type": "dynamic", "factor": 2.0}, 5))
run("llama_rope_theta", lambda: causal_case("llama_rope_theta", T.LlamaConfig, T.LlamaForCausalLM,
    {**base_llama, "rope_theta": 500000.0}, 6, note="RoPE base 500000"))

run("mistral_swa", lambda: causal_case("mistral_swa", T.MistralConfig, T.MistralForCausalLM,
    {**base_llama, "sliding_window": 4}, 7, seq=12, note="sliding-window attention w=4, GQA"))
run("mixtral_moe", lambda: causal_case("mixtral_moe", T.MixtralConfig, T.MixtralForCausalLM,
    {**base_llama, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": None}, 8,
    note="mixture of experts, 4 experts, top-2"))
run("qwen2", lambda: causal_case("qwen2", T.Qwen2Config, T.Qwen2ForCausalLM,
    {**base_llama}, 9, note="qkv bias, GQA, RoPE"))
run("gemma", lambda: causal_case("gemma", T.GemmaConfig, T.GemmaForCausalLM,
    dict(vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
         num_key_value_heads=1, head_dim=16, max_position_embeddings=64, hidden_activation="gelu_pytorch_tanh"), 10,
    note="GeGLU (tanh gelu), RMSNorm (1+w), embedding scaled by sqrt(d), MQA, tied embeddings"))
run("gpt2", lambda: causal_case("gpt2", T.GPT2Config, T.GPT2LMHeadModel,
    dict(vocab_size=V, n_embd=64, n_layer=2, n_head=4, n_positions=64, activation_function="gelu_new"), 11,
    note="learned absolute positions, pre-LayerNorm, GELU(tanh), fused c_attn Conv1D weights, tied embeddings"))
run("opt", lambda: causal_case("opt", T.OPTConfig, T.OPTForCausalLM,
    dict(vocab_size=V, hidden_size=64, ffn_dim=160, num_hidden_layers=2, num_attention_heads=4,
         max_position_embeddings=64, word_embed_proj_dim=64, do_layer_norm_before=True), 12,
    note="learned positions with offset 2, pre-LN, ReLU"))
run("opt_postln", lambda: causal_case("opt_postln", T.OPTConfig, T.OPTForCausalLM,
    dict(vocab_size=V, hidden_size=64, ffn_dim=160, num_hidden_layers=2, num_attention_heads=4,
         max_position_embeddings=64, word_embed_proj_dim=64, do_layer_norm_before=False), 13,
    note="post-LN transformer (do_layer_norm_before=False), ReLU"))
run("bloom", lambda: causal_case("bloom", T.BloomConfig, T.BloomForCausalLM,
    dict(vocab_size=V, hidden_size=64, n_layer=2, n_head=4), 14,
    note="ALiBi, LayerNorm after embeddings, GELU"))
run("bloom_alibi6", lambda: causal_case("bloom_alibi6", T.BloomConfig, T.BloomForCausalLM,
    dict(vocab_size=V, hidden_size=96, n_layer=2, n_head=6), 15,
    note="ALiBi with a head count that is not a power of two"))
run("falcon_mqa", lambda: causal_case("falcon_mqa", T.FalconConfig, T.FalconForCausalLM,
    dict(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
         parallel_attn=True, new_decoder_architecture=False, bias=False, alibi=False), 16,
    note="multi-query attention, parallel attention+MLP, RoPE"))
run("gptneox", lambda: causal_case("gptneox", T.GPTNeoXConfig, T.GPTNeoXForCausalLM,
    dict(vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
         rotary_pct=0.25, use_parallel_residual=True, max_position_embeddings=64), 17,
    note="parallel residual, partial rotary (25%)"))

def bert():
    seed = 18 + OFFSET
    torch.manual_seed(seed)
    cfg = T.BertConfig(vocab_size=V, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=160, max_position_embeddings=64)
    cfg._attn_implementation = "eager"
    model = T.BertForMaskedLM(cfg).eval()
    perturb(model, seed)
    d = os.path.join(OUT, "bert"); os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (2, 12), generator=g)
    tt = torch.zeros_like(ids); tt[:, 6:] = 1
    out = model(input_ids=ids, token_type_ids=tt, output_hidden_states=True)
    ref = {"input_ids": ids, "token_type_ids": tt, "logits": out.logits.contiguous()}
    for i, h in enumerate(out.hidden_states):
        ref[f"hidden_states.{i}"] = h.contiguous()
    save_file(ref, os.path.join(d, "reference.safetensors"))
    json.dump({"family": "bert", "class": "BertForMaskedLM", "note": "encoder-only, bidirectional, post-LN, GELU, token types",
               "transformers": T.__version__}, open(os.path.join(d, "oracle.json"), "w"), indent=1)
run("bert", bert)

def t5(name, ff, seed):
    seed = seed + OFFSET
    torch.manual_seed(seed)
    cfg = T.T5Config(vocab_size=V, d_model=64, d_kv=16, d_ff=160, num_layers=2, num_decoder_layers=2, num_heads=4,
                     relative_attention_num_buckets=8, relative_attention_max_distance=16, feed_forward_proj=ff,
                     decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, tie_word_embeddings=(ff == "relu"))
    cfg._attn_implementation = "eager"
    model = T.T5ForConditionalGeneration(cfg).eval()
    perturb(model, seed)
    d = os.path.join(OUT, name); os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(seed)
    enc = torch.randint(2, V, (2, 12), generator=g)
    dec = torch.randint(2, V, (2, 7), generator=g); dec[:, 0] = 0
    out = model(input_ids=enc, decoder_input_ids=dec, output_hidden_states=True)
    ref = {"input_ids": enc, "decoder_input_ids": dec, "logits": out.logits.contiguous(),
           "encoder_last_hidden_state": out.encoder_last_hidden_state.contiguous()}
    gi = model.generate(enc[:1], max_new_tokens=8, min_new_tokens=8, do_sample=False)
    ref["greedy_ids"] = gi
    save_file(ref, os.path.join(d, "reference.safetensors"))
    json.dump({"family": name, "class": "T5ForConditionalGeneration", "note": f"encoder-decoder, relative position buckets, RMS-style T5 LayerNorm, feed_forward_proj={ff}",
               "transformers": T.__version__}, open(os.path.join(d, "oracle.json"), "w"), indent=1)
run("t5", lambda: t5("t5", "relu", 19))
run("t5_geglu", lambda: t5("t5_geglu", "gated-gelu", 20))

# package everything
buf = os.path.join(OUT, "..", "oracles.tar.gz")
with tarfile.open(buf, "w:gz") as tf:
    tf.add(OUT, arcname="oracles")
print("size", os.path.getsize(buf))

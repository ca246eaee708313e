# Extra oracles for options the standard set leaves untested (run on the GPU machine, like gen_oracles.py):
# python3 gen_extra_oracles.py OUT_DIR
import json, os, sys
import torch
import transformers as T
from safetensors.torch import save_file

OUT = sys.argv[1]
torch.set_grad_enabled(False)
V = 256

def perturb(model, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    for n, p in model.named_parameters():
        if p.dim() == 1:
            p.add_(0.2 * torch.randn(p.shape, generator=g))
        else:
            p.mul_(2.5)

def case(name, cfg_cls, model_cls, kw, seed, note, seq=12):
    torch.manual_seed(seed)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).eval().float()
    perturb(model, seed)
    d = os.path.join(OUT, name); os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, cfg.vocab_size, (2, seq), generator=g)
    out = model(input_ids=ids)
    gi = model.generate(ids[:1], attention_mask=torch.ones_like(ids[:1]), max_new_tokens=10, min_new_tokens=10,
                        do_sample=False, eos_token_id=None, pad_token_id=0)
    save_file({"input_ids": ids, "logits": out.logits.float().contiguous(), "greedy_ids": gi}, os.path.join(d, "reference.safetensors"))
    json.dump({"family": name, "class": model_cls.__name__, "transformers": T.__version__, "note": note, "seed": seed,
               "params": sum(p.numel() for p in model.parameters()), "made_by": "tools/gen_extra_oracles.py"},
              open(os.path.join(d, "oracle.json"), "w"), indent=1)
    print("OK", name, flush=True)

base = dict(vocab_size=V, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5)
case("llama_bias_tied", T.LlamaConfig, T.LlamaForCausalLM, {**base, "attention_bias": True, "mlp_bias": True,
     "tie_word_embeddings": True, "head_dim": 32, "eos_token_id": [3, 7]}, 401,
     "attention_bias (q/k/v/o), mlp_bias, tied head, head_dim 32 != hidden/heads, eos list")
case("gpt2_layerscale", T.GPT2Config, T.GPT2LMHeadModel, dict(vocab_size=V, n_embd=64, n_layer=3, n_head=2, n_positions=32,
     n_inner=96, activation_function="gelu", scale_attn_by_inverse_layer_idx=True, layer_norm_epsilon=1e-6), 402,
     "scale_attn_by_inverse_layer_idx, n_inner 96, exact gelu, 2 heads, 3 layers")

"""Hugging Face transformers' batch-1 greedy decode of the llama-110M shape (random weights) after a 512-token prompt:
the peer of `mc bench --target cuda` in the same run. Prints one JSON object."""
import json, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

cfg = LlamaConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                  intermediate_size=2048, vocab_size=32000, max_position_embeddings=2048)
out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}
for dt, label in [(torch.float32, "fp32"), (torch.float16, "fp16")]:
    model = LlamaForCausalLM(cfg).to("cuda", dt).eval()
    ids = torch.randint(0, 32000, (1, 512), device="cuda")
    runs = []
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        for _ in range(3):
            torch.cuda.synchronize(); t = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False); torch.cuda.synchronize()
            prefill = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(ids, max_new_tokens=129, min_new_tokens=129, do_sample=False); torch.cuda.synchronize()
            runs.append((time.perf_counter() - t - prefill) / 128 * 1e3)
    runs.sort()
    out[f"hf_llama110m_{label}"] = {"decode_ms_per_token_median": runs[1], "runs": runs}
print(json.dumps(out))

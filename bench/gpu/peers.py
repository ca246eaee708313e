"""PyTorch peers of the cuda target's figures, on the same GPU in the same run. Prints one JSON object.
Medians over timed repetitions with CUDA events after warm-up; random inputs (never zeros)."""
import json, statistics, time
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
out = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}

def bench(fn, reps=20, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)

n = 4096
for name, dt in [("gemm_fp32", torch.float32), ("gemm_fp16", torch.float16)]:
    a = torch.randn(n, n, device=dev, dtype=dt); w = torch.randn(n, n, device=dev, dtype=dt)
    ms = bench(lambda: a @ w.t())
    out[name] = {"ms": ms, "tflops": 2 * n**3 / (ms * 1e-3) / 1e12}

B, H, S, D = 1, 16, 4096, 128
for dt, backend, label in [(torch.float16, torch.nn.attention.SDPBackend.FLASH_ATTENTION, "fp16_flash"),
                           (torch.float32, torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION, "fp32_efficient")]:
    q, k, v = (torch.randn(B, H, S, D, device=dev, dtype=dt) for _ in range(3))
    for causal in (False, True):
        with torch.nn.attention.sdpa_kernel(backend):
            ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), reps=10)
        flops = 4 * B * H * S * S * D / (2 if causal else 1)
        out[f"attention_{label}{'_causal' if causal else ''}"] = {"ms": ms, "tflops": flops / (ms * 1e-3) / 1e12}

# Hugging Face transformers: LlamaForCausalLM of the llama-110M shape, batch-1 greedy decode, random weights.
from transformers import LlamaConfig, LlamaForCausalLM
cfg = LlamaConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                  intermediate_size=2048, vocab_size=32000, max_position_embeddings=2048)
for dt, label in [(torch.float32, "fp32"), (torch.float16, "fp16")]:
    model = LlamaForCausalLM(cfg).to(dev, dt).eval()
    ids = torch.randint(0, 32000, (1, 512), device=dev)
    with torch.no_grad():
        model.generate(ids, max_new_tokens=8, min_new_tokens=8, do_sample=False)
        torch.cuda.synchronize()
        t = time.perf_counter(); model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False); torch.cuda.synchronize()
        prefill = time.perf_counter() - t
        t = time.perf_counter(); model.generate(ids, max_new_tokens=129, min_new_tokens=129, do_sample=False); torch.cuda.synchronize()
        total = time.perf_counter() - t
    out[f"hf_llama110m_{label}"] = {"prefill512_ms": prefill * 1e3, "decode_ms_per_token": (total - prefill) / 128 * 1e3}
print(json.dumps(out))

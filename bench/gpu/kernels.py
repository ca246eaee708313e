"""Tensor-core kernel figures for the cuda target, in one call on the GPU machine:
runs `mc kernels` (our kernels: timings, sampled float64 errors, PTX contents, raw dumps), compares the dumped outputs
with PyTorch (cuBLAS matmul, scaled_dot_product_attention) on the same inputs, times PyTorch's peers at the same shapes
in the same run, and writes one results JSON (per kernel: error vs PyTorch, TFLOP/s, PyTorch's TFLOP/s, ratio, PTX).
Usage: python3 kernels.py <mc> <results.json> [--gemm-size N] [--seq S]"""
import datetime, json, os, statistics, subprocess, sys
import numpy as np
import torch
import torch.nn.functional as F

mc, results = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
dump = "/tmp/mck"
torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"

proc = subprocess.run([mc, "kernels", "--json", "--simt", "--dump", dump] + extra, capture_output=True, text=True)
sys.stderr.write(proc.stderr[-3000:])
if proc.returncode != 0:
    print(proc.stdout[-3000:]); sys.exit(f"mc kernels exited with {proc.returncode}")
# mc writes NaN (no figure) as the string "NaN"
ours = json.loads(proc.stdout, object_hook=lambda o: {k: float("nan") if v in ("NaN", "Infinity", "-Infinity") else v for k, v in o.items()})

def bench(fn, reps=30, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)

def halves(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype=np.float16).reshape(shape)).to(dev)

def floats(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype=np.float32).reshape(shape)).to(dev)

def rel(got, ref):
    return ((got.double() - ref.double()).abs().max() / ref.double().abs().max()).item()

peers = {}
for row in ours["rows"]:
    dumped = row.get("Dump")
    if row["Kernel"].startswith("gemm"):
        n = int(row["Shape"].split("x")[0])
        key = ("gemm_fp16", n)
        if key not in peers:
            a = torch.randn(n, n, device=dev, dtype=torch.float16); w = torch.randn(n, n, device=dev, dtype=torch.float16)
            ms = bench(lambda: a @ w.t())
            peers[key] = {"name": "torch.matmul fp16 (cuBLAS)", "ms": ms, "tflops": 2 * n**3 / (ms * 1e-3) / 1e12}
        if dumped:
            a = halves(f"{dump}/gemm_a.bin", (n, n)); w = halves(f"{dump}/gemm_w.bin", (n, n))
            ref = (a.float() @ w.float().t())
            row["error_vs_torch"] = rel(floats(dumped + "_c.bin", (n, n)), ref)
    elif row["Kernel"].startswith("flash"):
        hq = int(row["Shape"].split()[1][2:]); hkv = int(row["Shape"].split()[2][3:]); s = int(row["Shape"].split()[3][1:])
        causal = row["Variant"] != "noncausal"
        key = ("attention", hq, hkv, s, causal)
        if key not in peers:
            q = torch.randn(1, hq, s, 128, device=dev, dtype=torch.float16)
            k = torch.randn(1, hkv, s, 128, device=dev, dtype=torch.float16); v = torch.randn_like(k)
            if hkv != hq:
                k = k.repeat_interleave(hq // hkv, dim=1); v = v.repeat_interleave(hq // hkv, dim=1)
            with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.FLASH_ATTENTION):
                ms = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), reps=20)
            flops = 4 * hq * s * s * 128 / (2 if causal else 1)
            peers[key] = {"name": "SDPA FlashAttention-2 backend fp16", "ms": ms, "tflops": flops / (ms * 1e-3) / 1e12}
        if dumped:
            q = halves(dumped + "_q.bin", (1, s, hq, 128)).transpose(1, 2)
            k = halves(dumped + "_k.bin", (1, s, hkv, 128)).transpose(1, 2)
            v = halves(dumped + "_v.bin", (1, s, hkv, 128)).transpose(1, 2)
            o = floats(dumped + "_o.bin", (1, s, hq, 128)).transpose(1, 2)
            if hkv != hq:
                k = k.repeat_interleave(hq // hkv, dim=1); v = v.repeat_interleave(hq // hkv, dim=1)
            ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal)
            row["error_vs_torch"] = rel(o, ref)
    else:
        row["torch"], row["ratio"] = None, None  # a probe with no PyTorch equivalent
        continue
    peer = peers[key]
    row["torch"] = peer
    row["ratio"] = row["Tflops"] / peer["tflops"] if row["Tflops"] == row["Tflops"] else None

simt = ours.get("simt") or []
fp32 = None
if simt:
    a = torch.randn(4096, 4096, device=dev); w = torch.randn(4096, 4096, device=dev)
    ms = bench(lambda: a @ w.t())
    fp32 = {"name": "torch.matmul fp32 (cuBLAS, no TF32)", "ms": ms, "tflops": 2 * 4096**3 / (ms * 1e-3) / 1e12}
    for r in simt:
        if r["Kernel"].startswith("gemm_fp32"):
            r["torch"] = fp32; r["ratio"] = r["Tflops"] / fp32["tflops"]

out = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "device": ours["device"], "torch": torch.__version__,
       "gpu": torch.cuda.get_device_name(0), "command": "python3 bench/gpu/kernels.py <mc> <results.json> " + " ".join(extra),
       "rows": ours["rows"], "simt": simt}
def strict(x):  # NaN (no figure) as null, so that the file is strict JSON
    if isinstance(x, float) and x != x: return None
    if isinstance(x, dict): return {k: strict(v) for k, v in x.items()}
    if isinstance(x, list): return [strict(v) for v in x]
    return x
with open(results, "w") as f:
    json.dump(strict(out), f, indent=1)
print(f"{'kernel':26} {'shape':26} {'variant':24} {'ms':>8} {'TFLOP/s':>8} {'torch':>8} {'ratio':>6} {'err/torch':>9} {'err/f64':>9} mma ld.local")
for r in ours["rows"] + [x for x in simt if "torch" in x]:
    print(f"{r['Kernel']:26} {r['Shape']:26} {r.get('Variant', ''):24} {r['MedianMs']:8.3f} {r['Tflops']:8.1f} {(r['torch'] or {}).get('tflops', float('nan')):8.1f} "
          f"{(r['ratio'] or float('nan')):6.3f} {r.get('error_vs_torch', float('nan')):9.2e} {r['SampledRelativeError']:9.2e} "
          f"{r.get('PtxMmaSync', '-')} {r.get('PtxLocalAccesses', '-')} {r.get('Error') or ''}")

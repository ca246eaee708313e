"""pystories (examples/pystories, fp32) greedy generation on the GPU against the oracle's recorded greedy text.
Usage: check_pystories.py MC ORACLE_JSON OUT_JSON"""
import json, subprocess, sys
import numpy as np
from safetensors.numpy import save_file, load_file
from tokenizers import Tokenizer

mc, oracle, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
tok = Tokenizer.from_file("examples/pystories/tokenizer.json")
rows = []
for i, g in enumerate(oracle["generations"]):
    save_file({"input_ids": np.array([g["prompt_ids"]], dtype=np.int64)}, f"/tmp/p{i}.safetensors")
    p = subprocess.run([mc, "eval", "examples/pystories", "--inputs", f"/tmp/p{i}.safetensors", "--out", f"/tmp/p{i}.out.safetensors",
                        "--generate", "64", "--target", "cuda"], capture_output=True, text=True)
    row = {"prompt": g["prompt"], "exit": p.returncode}
    if p.returncode == 0:
        ids = load_file(f"/tmp/p{i}.out.safetensors")["greedy_ids"].reshape(-1).tolist()
        text = tok.decode(ids)
        row["matches_oracle"] = text.startswith(g["greedy_text"])
        row["text"] = text[:len(g["greedy_text"]) + 20]
    else:
        row["stderr"] = p.stderr[-300:]
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open(out, "w"), indent=1)
print(f"{sum(1 for r in rows if r.get('matches_oracle'))}/{len(rows)} pystories prompts give the oracle's greedy text on the GPU")

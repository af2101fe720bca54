#!/usr/bin/env python3
"""PyLate side of the training-step benchmark (dev-only; see bench/train/run.sh).

Same configuration as crates/train/examples/bench_step.rs: all-MiniLM-L6-v2 converted to
ColBERT by pylate.models.ColBERT (fresh 128-d Dense), query_length 32, document_length
180, batch 32 of (query, positive, negative) rows of the shared MS MARCO toy triples,
tokenized with pad=True like PyLate's collator, model.train() (dropout on),
losses.Contrastive(temperature=0.02), clip_grad_norm_(1.0), torch.optim.AdamW. 2 torch
threads, CPU. Prints per-step wall and process CPU times and `RESULT pylate: X samples/s`.
With PYLATE_FTZ=1, torch.set_flush_denormal(True) first (what colzero does by default).

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python bench/train/pylate_step.py [steps] [shared_dir]
"""
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import torch
from pylate import losses, models

torch.set_num_threads(2)
# PYLATE_FTZ=1: flush subnormals to zero (colzero does; PyTorch's default does not).
if os.environ.get("PYLATE_FTZ") == "1":
    torch.set_flush_denormal(True)
torch.manual_seed(42)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
shared = sys.argv[2] if len(sys.argv) > 2 else "../shared"
rows = [l.rstrip("\n").split("\t") for l in open(f"{shared}/data/train/msmarco-triples-splade-toy/triples.tsv", encoding="utf-8")]
model = models.ColBERT(f"{shared}/models/sentence-transformers/all-MiniLM-L6-v2", device="cpu",
                       query_length=32, document_length=180)
model.train()
loss_fn = losses.Contrastive(model, temperature=0.02)
opt = torch.optim.AdamW(model.parameters(), lr=3e-6)
bs = 32
times = []
cpus = []
for s in range(steps + 1):
    batch = [rows[(s * bs + i) % len(rows)] for i in range(bs)]
    t = time.perf_counter()
    c = time.process_time()
    feats = [model.tokenize([r[0] for r in batch], is_query=True, pad=True),
             model.tokenize([r[1] for r in batch], is_query=False, pad=True),
             model.tokenize([r[2] for r in batch], is_query=False, pad=True)]
    loss = loss_fn(feats)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    if s == 0:
        print(f"warmup step: {dt:.2f}s loss {loss.item():.4f} cpu {cpu:.2f}s")
    else:
        print(f"step {s}: {dt:.2f}s loss {loss.item():.4f} -> {bs / dt:.2f} samples/s cpu {cpu:.2f}s")
        times.append(dt)
        cpus.append(cpu)
mean = sum(times) / len(times)
print(f"RESULT pylate: {bs / mean:.2f} samples/s (mean step {mean:.2f}s over {len(times)} steps; cpu/step {sum(cpus) / len(cpus):.2f}s)")

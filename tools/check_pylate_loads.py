#!/usr/bin/env python3
"""Check that a colzero-saved ColBERT checkpoint loads in PyLate with the same embeddings.

Dev-only. Run from the repository root (offline, CPU):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python tools/check_pylate_loads.py [--dim 128] [--seed 0]

It converts ../shared/models/sentence-transformers/all-MiniLM-L6-v2 into a ColBERT with
colzero (`cargo run -p colzero-model --example convert`, fresh seeded projection), which
saves it in PyLate's layout to a temp dir and writes colzero's embeddings of a few queries
and documents; then loads that directory with pylate.models.ColBERT, encodes the same
texts and prints the max abs difference, the token counts and the token ids PyLate uses.
Exit status 1 if PyLate fails to load it or the difference exceeds 1e-4.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINILM = os.path.join(os.path.dirname(ROOT), "shared", "models", "sentence-transformers", "all-MiniLM-L6-v2")
QUERIES = ["what is late interaction retrieval?", "Who drove to the stadium, and why?!", "a"]
DOCUMENTS = [
    "ColBERT encodes every token of a document; MaxSim compares query and document tokens.",
    "He drove to the stadium. The weather was lovely (and sunny) today!",
    "Café naïve résumé — “quotes”, numbers 3.14159 and a very long tail " + " ".join(f"w{i}" for i in range(200)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "minilm-colbert")
        texts = os.path.join(tmp, "texts.json")
        emb = os.path.join(tmp, "colzero.json")
        with open(texts, "w") as f:
            json.dump({"queries": QUERIES, "documents": DOCUMENTS}, f)
        cmd = ["cargo", "run", "-q", "-p", "colzero-model", "--example", "convert", "--",
               "--from", MINILM, "--out", out, "--dim", str(args.dim), "--seed", str(args.seed),
               "--texts", texts, "--embeddings", emb]
        subprocess.run(cmd, cwd=ROOT, check=True)
        with open(emb) as f:
            ours = json.load(f)

        from pylate import models

        model = models.ColBERT(out, device="cpu")
        print(f"PyLate loaded {out}: query_prefix_id={model.query_prefix_id} "
              f"document_prefix_id={model.document_prefix_id} query_length={model.query_length} "
              f"document_length={model.document_length} pad={model.tokenizer.pad_token_id} "
              f"len(tokenizer)={len(model.tokenizer)}")
        worst = 0.0
        for key, is_query, items in [("queries", True, QUERIES), ("documents", False, DOCUMENTS)]:
            theirs = model.encode(items, is_query=is_query, batch_size=2)
            for i, (a, b) in enumerate(zip(ours[key], theirs)):
                a = np.asarray(a, dtype=np.float32)
                if a.shape != b.shape:
                    print(f"{key}[{i}]: shape colzero {a.shape} vs PyLate {b.shape}")
                    sys.exit(1)
                d = float(np.abs(a - b).max())
                worst = max(worst, d)
                print(f"{key}[{i}]: {a.shape[0]} vectors, max abs diff {d:.2e}")
        print(f"max abs diff colzero vs PyLate on the colzero-saved checkpoint: {worst:.3e}")
        sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Side-by-side benchmark: fast-plaid (pip `fast_plaid`, CPU) on the SAME embeddings that
`cargo run --release -p colzero-index --example plaid_bench` indexes.

Reads the two colzero embedding stores (safetensors, one [tokens, dim] F32 tensor per id),
builds a fast-plaid index on CPU, and prints build time, bytes per token, peak RSS, batch
and one-query-at-a-time QPS, and recall@k against colzero's exact search (the `exact` run
written by `plaid_bench search --runs-out RUNS.json`).

Run (2 torch threads, no network):
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python3 bench/index/fast_plaid_bench.py \
        --docs DOCS.safetensors --queries QUERIES.safetensors --index /tmp/fp-index \
        --runs RUNS.json [--k 10] [--nbits 2] [--threads 2] [--n-full-scores 4096 1024]
Writes only the fast-plaid index directory given by --index.
"""
import argparse
import json
import os
import resource
import shutil
import time

import torch
from safetensors.torch import load_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--index", required=True)
    ap.add_argument("--runs", help="runs.json from plaid_bench search --runs-out")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ivf-probe", type=int, default=8)
    ap.add_argument("--n-full-scores", type=int, nargs="+", default=[4096, 1024])
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from fast_plaid import search  # imported after set_num_threads

    docs = load_file(args.docs)
    doc_ids = sorted(docs)
    doc_embs = [docs[i] for i in doc_ids]
    del docs
    queries = load_file(args.queries)
    qids = sorted(queries)
    q_embs = [queries[i] for i in qids]
    tokens = sum(int(d.shape[0]) for d in doc_embs)

    if os.path.exists(args.index):
        shutil.rmtree(args.index)
    fp = search.FastPlaid(index=args.index, device="cpu")
    t = time.time()
    fp.create(documents_embeddings=doc_embs, nbits=args.nbits, kmeans_niters=4,
              max_points_per_centroid=256, seed=42)
    build_s = time.time() - t
    size = sum(os.path.getsize(os.path.join(r, f))
               for r, _, fs in os.walk(args.index) for f in fs)
    print(f"fast-plaid {search.__name__} threads {args.threads} docs {len(doc_ids)} "
          f"tokens {tokens} queries {len(qids)} k {args.k} nbits {args.nbits}")
    print(f"build time (s)       {build_s:.2f}")
    print(f"bytes per token      {size / tokens:.2f}")

    exact = None
    if args.runs:
        with open(args.runs) as f:
            exact = json.load(f)["exact"]

    qtensor = torch.stack(q_embs) if len({q.shape for q in q_embs}) == 1 else q_embs
    for nfs in args.n_full_scores:
        kw = dict(top_k=args.k, n_full_scores=nfs, n_ivf_probe=args.n_ivf_probe,
                  show_progress=False)
        fp.search(queries_embeddings=q_embs[:8], **kw)  # warm-up
        t = time.time()
        res = fp.search(queries_embeddings=qtensor, **kw)
        batch_qps = len(qids) / (time.time() - t)
        t = time.time()
        for q in q_embs:
            fp.search(queries_embeddings=q.unsqueeze(0), **kw)
        single_ms = (time.time() - t) * 1000 / len(qids)
        line = (f"n_full_scores {nfs:5d}: batch QPS {batch_qps:.1f}, one-at-a-time "
                f"{single_ms:.2f} ms/query ({1000 / single_ms:.1f} QPS)")
        if exact is not None:
            rec = 0.0
            for qid, hits in zip(qids, res):
                want = {h["id"] for h in exact[qid][: args.k]}
                got = {doc_ids[i] for i, _ in hits}
                rec += len(got & want) / max(len(want), 1)
            line += f", recall@{args.k} vs exact {rec / len(qids):.4f}"
        print(line)
    print(f"peak RSS (MiB)       {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    main()

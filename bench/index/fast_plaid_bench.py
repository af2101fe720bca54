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
        --runs RUNS.json [--k 10 100] [--nbits 2] [--threads 2] [--n-full-scores 4096 64]
        [--qrels QRELS.tsv]
Writes only the fast-plaid index directory given by --index. Prints `RESULT <key> <value>`
lines for bench/index/run.sh (QPS per k and n_full_scores, nDCG@10 at k 10 with qrels;
nDCG@10 is linear-gain nDCG as trec_eval's ndcg_cut_10, ties by document id descending).
An n_full_scores of 0 means "colzero's n_full for that k" (64 for k <= 10, 256 for k <= 100).
"""
import argparse
import json
import math
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
    ap.add_argument("--k", type=int, nargs="+", default=[10])
    ap.add_argument("--nbits", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ivf-probe", type=int, default=8)
    ap.add_argument("--n-full-scores", type=int, nargs="+", default=[4096, 0])
    ap.add_argument("--single", action="store_true",
                    help="also time one query at a time (first k, first n_full_scores)")
    ap.add_argument("--qrels", help="BEIR qrels TSV (query-id, corpus-id, score)")
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
    print(f"RESULT fastplaid_build_s {build_s:.2f}")
    print(f"RESULT fastplaid_bytes_per_token {size / tokens:.2f}")

    exact = None
    if args.runs:
        with open(args.runs) as f:
            exact = json.load(f)["exact"]
    qrels = read_qrels(args.qrels) if args.qrels else None

    qtensor = torch.stack(q_embs) if len({q.shape for q in q_embs}) == 1 else q_embs
    for nfs_arg in args.n_full_scores:
        for k in args.k:
            nfs = nfs_arg or (64 if k <= 10 else 256 if k <= 100 else max(k, 2048))
            tag = "default" if nfs_arg == 4096 else "matched" if nfs_arg == 0 else str(nfs)
            kw = dict(top_k=k, n_full_scores=nfs, n_ivf_probe=args.n_ivf_probe,
                      show_progress=False)
            fp.search(queries_embeddings=q_embs[:8], **kw)  # warm-up
            t = time.time()
            res = fp.search(queries_embeddings=qtensor, **kw)
            batch_qps = len(qids) / (time.time() - t)
            line = (f"k {k:3d} n_full_scores {nfs:5d}: batch QPS {batch_qps:.1f}")
            print(f"RESULT fastplaid_{tag}_qps_k{k} {batch_qps:.2f}")
            if exact is not None:
                rec = 0.0
                for qid, hits in zip(qids, res):
                    want = {h["id"] for h in exact[qid][:k]}
                    got = {doc_ids[i] for i, _ in hits}
                    rec += len(got & want) / max(len(want), 1)
                line += f", recall@{k} vs exact {rec / len(qids):.4f}"
                print(f"RESULT fastplaid_{tag}_recall_k{k} {rec / len(qids):.4f}")
            if qrels is not None and k == 10:
                run = {qid: [(doc_ids[i], s) for i, s in hits] for qid, hits in zip(qids, res)}
                nd = ndcg10(qrels, run)
                line += f", nDCG@10 {nd:.4f}"
                print(f"RESULT fastplaid_{tag}_ndcg10 {nd:.4f}")
            print(line)
    if args.single:
        kw = dict(top_k=args.k[0], n_full_scores=args.n_full_scores[0],
                  n_ivf_probe=args.n_ivf_probe, show_progress=False)
        t = time.time()
        for q in q_embs:
            fp.search(queries_embeddings=q.unsqueeze(0), **kw)
        single_ms = (time.time() - t) * 1000 / len(qids)
        print(f"one query at a time: {single_ms:.2f} ms/query")
    print(f"peak RSS (MiB)       {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


def read_qrels(path):
    qrels = {}
    with open(path) as f:
        for n, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if n == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def ndcg10(qrels, run):
    """Mean nDCG@10 over run queries that have qrels (pytrec_eval / BEIR semantics)."""
    vals = []
    for qid, hits in run.items():
        judged = qrels.get(qid)
        if judged is None:
            continue
        ranked = sorted(hits, key=lambda h: (-h[1], [-ord(c) for c in h[0]]))[:10]
        dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, (d, _) in enumerate(ranked))
        ideal = sorted((r for r in judged.values() if r > 0), reverse=True)[:10]
        idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
        vals.append(dcg / idcg if idcg > 0 else 0.0)
    return sum(vals) / max(len(vals), 1)


if __name__ == "__main__":
    main()

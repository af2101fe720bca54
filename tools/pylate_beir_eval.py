#!/usr/bin/env python3
"""Reference BEIR evaluation with PyLate (dev-only; never used by the product or CI).

Encodes a BEIR dataset with a PyLate ColBERT checkpoint on CPU, scores every query against
every document with exact MaxSim over each document's kept tokens (the same definition as
`colzero eval`), and prints nDCG@10 (pytrec_eval `ndcg_cut_10`, linear gain) plus wall
times. PyLate's own zero-padded `colbert_scores` is also reported for comparison.

    HF_HUB_OFFLINE=1 python tools/pylate_beir_eval.py --model DIR --dataset BEIR_DIR \
        [--split test] [--threads 2] [--batch-size 32] [--run-out run.trec]

Documents are `f"{title} {text}".strip()` and only queries present in the split's qrels
are evaluated, as BEIR does.
"""
import argparse, json, os, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--query-prompt", default=None)
    ap.add_argument("--document-prompt", default=None)
    ap.add_argument("--run-out", default=None)
    args = ap.parse_args()

    import torch, pytrec_eval
    from pylate import models

    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = models.ColBERT(model_name_or_path=args.model, device="cpu")
    t_load = time.time() - t0

    qrels = {}
    with open(os.path.join(args.dataset, "qrels", f"{args.split}.tsv")) as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            qrels.setdefault(q, {})[d] = int(s)
    queries = {}
    with open(os.path.join(args.dataset, "queries.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r["_id"] in qrels:
                queries[r["_id"]] = r["text"]
    doc_ids, doc_texts = [], []
    with open(os.path.join(args.dataset, "corpus.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            doc_ids.append(r["_id"])
            doc_texts.append(f"{r.get('title', '')} {r['text']}".strip())

    qids = list(queries)
    t0 = time.time()
    D = model.encode(doc_texts, is_query=False, batch_size=args.batch_size,
                     prompt=args.document_prompt, show_progress_bar=True)
    t_docs = time.time() - t0
    t0 = time.time()
    Q = model.encode([queries[q] for q in qids], is_query=True, batch_size=args.batch_size,
                     prompt=args.query_prompt, show_progress_bar=True)
    t_queries = time.time() - t0

    t0 = time.time()
    Qt = torch.stack([torch.from_numpy(q) for q in Q])  # [nq, Lq, dim] (fixed length)
    exact, padded = {}, {}
    for qi, q in enumerate(qids):
        exact[q], padded[q] = {}, {}
    for di, d in enumerate(D):
        dt = torch.from_numpy(d)
        sims = torch.einsum("qsh,th->qst", Qt, dt)
        ex = sims.max(dim=2).values.sum(dim=1)            # true MaxSim over kept tokens
        pd = sims.clamp(min=0).max(dim=2).values.sum(dim=1)  # PyLate zero-padded semantics
        for qi, q in enumerate(qids):
            exact[q][doc_ids[di]] = float(ex[qi])
            padded[q][doc_ids[di]] = float(pd[qi])
    t_score = time.time() - t0

    def ndcg(run):
        top = {q: dict(sorted(r.items(), key=lambda x: -x[1])[:100]) for q, r in run.items()}
        ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
        res = ev.evaluate(top)
        return sum(v["ndcg_cut_10"] for v in res.values()) / len(res)

    out = {
        "ndcg@10": ndcg(exact),
        "ndcg@10_pylate_zero_padded": ndcg(padded),
        "queries": len(qids), "documents": len(doc_ids),
        "seconds": {"load": t_load, "encode_documents": t_docs,
                    "encode_queries": t_queries, "score": t_score},
        "threads": args.threads,
    }
    if args.run_out:
        with open(args.run_out, "w") as f:
            for q in qids:
                top = sorted(exact[q].items(), key=lambda x: -x[1])[:100]
                for rank, (d, s) in enumerate(top, 1):
                    f.write(f"{q} Q0 {d} {rank} {s:.6f} pylate\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

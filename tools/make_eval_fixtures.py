#!/usr/bin/env python3
"""Golden fixtures for colzero-eval (dev-only; never used by the product or CI).

Run from the repository root (needs pytrec-eval-terrier and numpy; ../shared for SciFact):

    python3 tools/make_eval_fixtures.py [--shared ../shared]

Writes crates/eval/tests/fixtures/ (about 1 MB, deterministic: seeded `random.Random`):

* qrels_binary.tsv     BEIR TSV qrels, relevance 0/1.
* qrels_graded.trec    TREC qrels (`qid 0 docid rel`), relevance -2..3 (negative judgments).
  Both cover: a query whose judgments are all non-relevant (`qnorel`), a query absent from
  the run (`qmissing`), judged documents the run never retrieves, and self-hits (doc id ==
  query id) judged relevant (q3) or unjudged (q5).
* run_ties.trec        TREC run: scores on a 0.25 grid (many ties) or random f32 values,
  2..130 hits per query (cutoffs beyond the hit count), unjudged documents, doc ids of
  different lengths (`d7`, `d70`, `d107`: byte order != numeric order), and a query
  (`qextra`) absent from the qrels.
* run_dupes.trec       a run listing some documents twice for one query.
* expected.json        pytrec_eval's per-query values and their mean for every case (qrels x
  run x options), for ndcg@k, recall@k, p@k, map@k and mrr@k with k in 1, 3, 5, 10, 100.
  ndcg/recall/p/map come from pytrec_eval measures ndcg_cut/recall/P/map_cut; mrr@k is
  pytrec_eval `recip_rank` on the run truncated to its top k in trec_eval order (score
  descending, ties by doc id descending). The mean is BEIR's: over the queries pytrec_eval
  returns (run queries present in the qrels). "zero" cases add an empty ranking for every
  qrels query missing from the run (trec_eval -c / ranx make_comparable). "dedupe" keeps the
  best score of a duplicated document; "remove-self-hits" drops doc id == query id.
  Also `tie_probe`: pytrec_eval's own answer on a 2-document tie.
* py_whitespace.json   every code point for which Python's str.isspace() is true (what
  str.strip() removes).
* scifact_bm25.trec    a BM25 (k1=0.9, b=0.4, lower-cased \\w+ tokens) top-100 run over the
  real ../shared SciFact test queries, documents as PyLate builds them
  (f"{title} {text}".strip()).
* scifact_expected.json pytrec_eval on that run with the real test qrels (per-query and
  mean), plus loader facts computed the way BEIR's GenericDataLoader + PyLate load_beir do
  (counts, some document texts, total UTF-8 size of all document texts, first queries in
  qrels order) and nfcorpus test facts (query count, pairs per grade).
"""
import argparse
import csv
import json
import math
import os
import random
import re
import struct
from collections import Counter, defaultdict

import numpy as np
import pytrec_eval

OUT = os.path.join("crates", "eval", "tests", "fixtures")
CUTOFFS = [1, 3, 5, 10, 100]


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def f32_text(x):
    """Shortest decimal that round-trips the f32 value (as Rust prints it)."""
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def trec_sorted(docs):
    """trec_eval order: score descending, ties by doc id descending."""
    items = sorted(docs.items(), key=lambda kv: kv[0], reverse=True)
    return sorted(items, key=lambda kv: -kv[1])


def metric_values(qrels, run, relevance_level=1):
    """Per-query {canonical metric name: value} for the queries pytrec_eval returns."""
    cut = ",".join(map(str, CUTOFFS))
    ev = pytrec_eval.RelevanceEvaluator(
        qrels, {f"ndcg_cut.{cut}", f"recall.{cut}", f"P.{cut}", f"map_cut.{cut}", "recip_rank"},
        relevance_level=relevance_level,
    )
    full = ev.evaluate(run)
    out = {}
    for q, m in full.items():
        out[q] = {}
        for k in CUTOFFS:
            out[q][f"ndcg@{k}"] = m[f"ndcg_cut_{k}"]
            out[q][f"recall@{k}"] = m[f"recall_{k}"]
            out[q][f"p@{k}"] = m[f"P_{k}"]
            out[q][f"map@{k}"] = m[f"map_cut_{k}"]
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level)
    for k in CUTOFFS:
        trunc = {q: dict(trec_sorted(d)[:k]) for q, d in run.items()}
        res = rr.evaluate(trunc)
        assert set(res) == set(out)
        for q in res:
            out[q][f"mrr@{k}"] = res[q]["recip_rank"]
            if all(len(d) <= k for qq, d in run.items() if qq == q):
                assert res[q]["recip_rank"] == full[q]["recip_rank"]
    return out


def mean(per_query):
    names = sorted(next(iter(per_query.values())))
    return {n: sum(v[n] for v in per_query.values()) / len(per_query) for n in names}


def read_run(path, dedupe=False):
    run = defaultdict(dict)
    for line in open(path):
        q, _, d, _, s, _ = line.split()
        s = float(s)
        if d in run[q]:
            assert dedupe, f"duplicate {q} {d} in {path}"
            run[q][d] = max(run[q][d], s)
        else:
            run[q][d] = s
    return dict(run)


def read_beir_qrels(path):
    """As BEIR's GenericDataLoader._load_qrels: csv, skip the header, int(score)."""
    qrels = {}
    with open(path, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL)
        next(reader)
        for row in reader:
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def read_trec_qrels(path):
    qrels = {}
    for line in open(path):
        q, _, d, r = line.split()
        qrels.setdefault(q, {})[d] = int(r)
    return qrels


def make_synthetic(rng):
    queries = [f"q{i}" for i in range(1, 11)]
    pool = [f"d{i}" for i in range(1, 151)]
    binary, graded = {}, {}
    for q in queries + ["qnorel", "qmissing"]:
        judged = rng.sample(pool, rng.randint(4, 18))
        binary[q], graded[q] = {}, {}
        for d in judged:
            if q == "qnorel":
                binary[q][d] = 0
                graded[q][d] = rng.choice([0, 0, -1])
            else:
                binary[q][d] = 1 if rng.random() < 0.45 else 0
                graded[q][d] = rng.choice([-2, -1, 0, 0, 1, 1, 2, 3]) if binary[q][d] == 0 or rng.random() < 0.3 else rng.choice([1, 2, 3])
        # make sure each normal query has at least one relevant document in both
        if q not in ("qnorel",):
            binary[q][judged[0]] = 1
            graded[q][judged[0]] = max(graded[q][judged[0]], 1)
    graded["qnorel"][next(iter(graded["qnorel"]))] = 0  # trec_eval mishandles all-negative queries
    binary["q3"]["q3"] = 1
    graded["q3"]["q3"] = 2
    sizes = [2, 7, 12, 40, 60, 101, 130, 3, 25, 80]
    run = {}
    for i, q in enumerate(queries + ["qnorel", "qextra"]):
        n = sizes[i % len(sizes)]
        # favour judged documents so that metrics are not all zero
        judged = list(graded.get(q, {}))
        docs = rng.sample(judged, min(len(judged), n // 2 + 1)) if judged else []
        docs += [d for d in rng.sample(pool, n) if d not in docs][: n - len(docs)]
        if q in ("q3", "q5"):
            docs[-1] = q
        grid = i % 3 != 2
        run[q] = {}
        for d in docs:
            s = rng.randint(0, 20) * 0.25 if grid else f32(rng.uniform(-3.0, 3.0))
            run[q][d] = s
        if q == "q3":
            run[q]["q3"] = 9.0
    return binary, graded, run


def write_run(path, run, tag):
    with open(path, "w") as f:
        for q in sorted(run):
            for rank, (d, s) in enumerate(run[q].items(), 1):
                f.write(f"{q} Q0 {d} {rank} {f32_text(s)} {tag}\n")


def synthetic_cases(rng):
    binary, graded, run = make_synthetic(rng)
    with open(os.path.join(OUT, "qrels_binary.tsv"), "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, docs in binary.items():
            for d, r in docs.items():
                f.write(f"{q}\t{d}\t{r}\n")
    with open(os.path.join(OUT, "qrels_graded.trec"), "w") as f:
        for q, docs in graded.items():
            for d, r in docs.items():
                f.write(f"{q} 0 {d} {r}\n")
    write_run(os.path.join(OUT, "run_ties.trec"), run, "ties")
    # a run with duplicated documents: every 4th hit of q1, q2 and q4 repeated with a new score
    dup_lines = []
    for q in ["q1", "q2", "q4"]:
        for i, (d, s) in enumerate(run[q].items()):
            dup_lines.append(f"{q} Q0 {d} {i + 1} {f32_text(s)} dupes\n")
            if i % 4 == 0:
                dup_lines.append(f"{q} Q0 {d} {i + 1} {f32_text(rng.randint(0, 20) * 0.25)} dupes\n")
    with open(os.path.join(OUT, "run_dupes.trec"), "w") as f:
        f.writelines(dup_lines)

    # Python reads back the committed files, so both sides see the same bytes.
    qb = read_beir_qrels(os.path.join(OUT, "qrels_binary.tsv"))
    qg = read_trec_qrels(os.path.join(OUT, "qrels_graded.trec"))
    rt = read_run(os.path.join(OUT, "run_ties.trec"))
    rd = read_run(os.path.join(OUT, "run_dupes.trec"), dedupe=True)
    no_self = {q: {d: s for d, s in docs.items() if d != q} for q, docs in rt.items()}

    def zero(qrels, r):
        r = dict(r)
        for q in qrels:
            r.setdefault(q, {})
        return r

    cases = []
    for name, qfile, qrels, rfile, r, policies, missing, level in [
        ("binary", "qrels_binary.tsv", qb, "run_ties.trec", rt, [], "skip", 1),
        ("binary_zero", "qrels_binary.tsv", qb, "run_ties.trec", zero(qb, rt), [], "zero", 1),
        ("graded", "qrels_graded.trec", qg, "run_ties.trec", rt, [], "skip", 1),
        ("graded_zero", "qrels_graded.trec", qg, "run_ties.trec", zero(qg, rt), [], "zero", 1),
        ("graded_level2", "qrels_graded.trec", qg, "run_ties.trec", rt, [], "skip", 2),
        ("graded_no_self_hits", "qrels_graded.trec", qg, "run_ties.trec", no_self, ["remove-self-hits"], "skip", 1),
        ("binary_dedupe", "qrels_binary.tsv", qb, "run_dupes.trec", rd, ["dedupe"], "skip", 1),
        ("graded_dedupe", "qrels_graded.trec", qg, "run_dupes.trec", rd, ["dedupe"], "skip", 1),
    ]:
        pq = metric_values(qrels, r, level)
        cases.append({
            "name": name, "qrels": qfile, "run": rfile, "policies": policies,
            "missing_queries": missing, "relevance_level": level,
            "num_queries": len(pq), "mean": mean(pq), "per_query": pq,
        })
    assert "qmissing" not in cases[0]["per_query"] and "qmissing" in cases[1]["per_query"]
    assert "qextra" not in cases[0]["per_query"] and "qnorel" in cases[0]["per_query"]
    probe = pytrec_eval.RelevanceEvaluator({"q": {"a": 1}}, {"P.1", "recip_rank"}).evaluate(
        {"q": {"a": 1.0, "b": 1.0}})["q"]
    return cases, {"qrels": {"q": {"a": 1}}, "run": {"q": {"a": 1.0, "b": 1.0}},
                   "p@1": probe["P_1"], "recip_rank": probe["recip_rank"]}


def load_beir(d, split):
    """GenericDataLoader.load + PyLate load_beir document texts."""
    corpus = {}
    for line in open(os.path.join(d, "corpus.jsonl"), encoding="utf-8"):
        j = json.loads(line)
        corpus[j["_id"]] = f"{j.get('title') or ''} {j['text']}".strip()
    queries = {}
    for line in open(os.path.join(d, "queries.jsonl"), encoding="utf-8"):
        j = json.loads(line)
        queries[j["_id"]] = j["text"]
    qrels = read_beir_qrels(os.path.join(d, "qrels", f"{split}.tsv"))
    queries = {q: queries[q] for q in qrels}
    return corpus, queries, qrels


def bm25_run(corpus, queries, k=100, k1=0.9, b=0.4):
    tok = lambda s: re.findall(r"\w+", s.lower())
    ids = list(corpus)
    docs = [Counter(tok(corpus[i])) for i in ids]
    lens = [sum(c.values()) for c in docs]
    avg = sum(lens) / len(lens)
    df = Counter(t for c in docs for t in c)
    n = len(docs)
    inv = defaultdict(list)
    for j, c in enumerate(docs):
        for t, tf in c.items():
            inv[t].append((j, tf))
    run = {}
    for q, text in queries.items():
        scores = defaultdict(float)
        for t in set(tok(text)):
            if t not in df:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            for j, tf in inv[t]:
                scores[j] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens[j] / avg))
        best = sorted(scores.items(), key=lambda kv: (-kv[1], ids[kv[0]]))[:k]
        run[q] = {ids[j]: f32(s) for j, s in best}
    return run


def scifact(shared):
    d = os.path.join(shared, "data", "beir", "scifact")
    corpus, queries, qrels = load_beir(d, "test")
    run = bm25_run(corpus, queries)
    write_run(os.path.join(OUT, "scifact_bm25.trec"), run, "bm25")
    run = read_run(os.path.join(OUT, "scifact_bm25.trec"))
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map_cut.100", "P.5"})
    res = ev.evaluate(run)
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(
        {q: dict(trec_sorted(x)[:10]) for q, x in run.items()})
    pq = {q: {"ndcg@10": m["ndcg_cut_10"], "recall@100": m["recall_100"],
              "map@100": m["map_cut_100"], "p@5": m["P_5"], "mrr@10": rr[q]["recip_rank"]}
          for q, m in res.items()}
    ids = list(corpus)
    raw = [json.loads(line) for line in open(os.path.join(d, "corpus.jsonl"), encoding="utf-8")]
    odd = [j["_id"] for j in raw if not j.get("title") or j["text"] != j["text"].strip()
           or j["title"] != j["title"].strip()]
    sample = [ids[0], ids[1], ids[-1]] + odd[:5]
    nf_corpus, nf_queries, nf_qrels = load_beir(os.path.join(shared, "data", "beir", "nfcorpus"), "test")
    grades = Counter(r for docs in nf_qrels.values() for r in docs.values())
    return {
        "num_docs": len(corpus), "num_queries": len(queries),
        "num_pairs": sum(len(v) for v in qrels.values()),
        "doc_texts": {i: corpus[i] for i in sample},
        "total_text_bytes": sum(len(t.encode("utf-8")) for t in corpus.values()),
        "first_queries": [[q, queries[q]] for q in list(queries)[:3]],
        "last_doc_id": ids[-1],
        "num_queries_evaluated": len(pq), "mean": mean(pq), "per_query": pq,
        "nfcorpus": {"num_queries": len(nf_queries), "num_docs": len(nf_corpus),
                     "pairs_per_grade": {str(g): c for g, c in sorted(grades.items())}},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join("..", "shared"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20240607)
    cases, probe = synthetic_cases(rng)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"cutoffs": CUTOFFS, "tie_probe": probe, "cases": cases}, f, indent=1, sort_keys=True)
    ws = [c for c in range(0x110000) if chr(c).isspace()]
    with open(os.path.join(OUT, "py_whitespace.json"), "w") as f:
        json.dump(ws, f)
    with open(os.path.join(OUT, "scifact_expected.json"), "w") as f:
        json.dump(scifact(args.shared), f, indent=1, sort_keys=True)
    for n in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, n)):>9}  {n}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixture for colzero-index's BM25 (dev-only; never used by the product or CI).

Run from the repository root (needs `pip install snowballstemmer` for the stemmed case):

    python3 tools/make_bm25_fixtures.py

Writes crates/index/tests/fixtures/bm25_golden.json (a few KB): a small hand-written corpus
and query set, the analysed tokens of every text under two analyzers, and the BM25 score of
every (query, document) pair (float64) for several (analyzer, k1, b) settings.

The reference is written here from the textbook formula, independently of the Rust code
(rank_bm25's BM25Okapi uses a different idf with an epsilon floor, so it is not used):

    analyse(text) = [lower(run) for run in re.findall(r"[^\\W_]+", text)]
                    minus Lucene's 33 English stopwords (optional),
                    then Snowball English / Porter2 stemming (optional)
    idf(t)        = ln(1 + (N - df + 0.5) / (df + 0.5))
    score(q, d)   = sum over query tokens t (repeats counted) of
                    idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl))

`[^\\W_]` (Python's alphanumeric characters) equals Rust's `char::is_alphanumeric` on every
character used here (ASCII, Latin-1 letters, Greek); they differ on a few rare code points.
"""
import json
import math
import os
import re
from collections import Counter

import snowballstemmer

OUT = os.path.join("crates", "index", "tests", "fixtures", "bm25_golden.json")

STOP = {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into",
        "is", "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then",
        "there", "these", "they", "this", "to", "was", "will", "with"}
STEM = snowballstemmer.stemmer("english")

CORPUS = {
    "d01": "The cat sat on the mat. The cat was happy.",
    "d02": "Dogs are running in the park; a dog runs faster than cats.",
    "d03": "COVID-19 vaccines reduce hospitalisation: a randomised trial of 30,000 adults.",
    "d04": "Café culture in Zürich — espresso, croissants and the Swiss lakeside.",
    "d05": "Protein folding is predicted by deep neural networks trained on structures.",
    "d06": "Neural retrieval models: ColBERT uses late interaction over token embeddings.",
    "d07": "BM25 is a bag-of-words ranking function; BM25 uses term frequency and idf.",
    "d08": "the the the the the",
    "d09": "",
    "d10": "Running running running: the runner ran a marathon in 3 hours.",
    "d11": "Greek letters αβγ appear in physics; Δ means change, snake_case_names too.",
    "d12": "Vaccine trial results: the vaccine was effective in older adults and children "
           "across many hospitals in several countries over two years of follow-up.",
}

QUERIES = {
    "q1": "cat on a mat",
    "q2": "vaccine vaccine trial adults",
    "q3": "neural networks for retrieval",
    "q4": "running dogs",
    "q5": "the",
    "q6": "BM25 term frequency idf ranking",
    "q7": "café zürich αβγ",
    "q8": "unknownword",
    "q9": "COVID 19 vaccines hospitalisation",
}

SETTINGS = [
    {"name": "default", "stopwords": False, "stem": False, "k1": 0.9, "b": 0.4},
    {"name": "english", "stopwords": True, "stem": True, "k1": 0.9, "b": 0.4},
    {"name": "robertson", "stopwords": False, "stem": False, "k1": 1.2, "b": 0.75},
    {"name": "no_length_norm", "stopwords": True, "stem": False, "k1": 1.5, "b": 0.0},
    {"name": "full_length_norm", "stopwords": False, "stem": True, "k1": 0.5, "b": 1.0},
]


def analyse(text, stopwords, stem):
    toks = [t.lower() for t in re.findall(r"[^\W_]+", text)]
    if stopwords:
        toks = [t for t in toks if t not in STOP]
    if stem:
        toks = [STEM.stemWord(t) for t in toks]
    return toks


def bm25_scores(setting):
    sw, st, k1, b = setting["stopwords"], setting["stem"], setting["k1"], setting["b"]
    docs = {i: Counter(analyse(t, sw, st)) for i, t in CORPUS.items()}
    lens = {i: sum(c.values()) for i, c in docs.items()}
    n = len(docs)
    avgdl = sum(lens.values()) / n
    df = Counter(t for c in docs.values() for t in c)
    out = {}
    for q, text in QUERIES.items():
        row = {}
        for i, c in docs.items():
            s = 0.0
            for t in analyse(text, sw, st):
                if t not in df or c[t] == 0:
                    continue
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                tf = c[t]
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lens[i] / avgdl))
            row[i] = s
        out[q] = row
    return out, avgdl


def main():
    settings = []
    for s in SETTINGS:
        scores, avgdl = bm25_scores(s)
        settings.append(dict(s, avgdl=avgdl, scores=scores))
    tokens = {
        "default": {k: analyse(v, False, False) for k, v in {**CORPUS, **QUERIES}.items()},
        "english": {k: analyse(v, True, True) for k, v in {**CORPUS, **QUERIES}.items()},
    }
    data = {"corpus": CORPUS, "queries": QUERIES, "tokens": tokens, "settings": settings}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()

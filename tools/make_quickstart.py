#!/usr/bin/env python3
"""Builds the bundle that `colzero quickstart` embeds: crates/cli/assets/quickstart/.

Contract (dev-only; the product never runs this, it only embeds what this writes):
- scifact-2k/: a BEIR-layout subset of SciFact (../shared/data/beir/scifact): every test query
  (qrels/test.tsv), every train query (qrels/train.tsv), all their judged documents, plus
  seeded random filler documents up to --docs in total. Document text is cut at a word
  boundary after --max-chars characters (titles kept whole). corpus.jsonl and
  queries.jsonl are gzipped; qrels stay plain TSV.
- tiny-bert/: a small BERT *architecture* (config.json, no weights: colzero draws them
  from a seed at run time), a WordPiece tokenizer trained here on the bundled corpus and
  the train queries only (never the test queries), and sentence-transformers files (mean
  pooling) so the untrained base can also be evaluated as a dense model.
- kd/scores.jsonl.gz: knowledge-distillation teacher scores
  `{"query_id", "document_ids", "scores"}` with BEIR ids, for the train queries only:
  candidates are BM25 top documents of the bundled corpus (positive first), scored by the
  teacher (all-MiniLM-L6-v2, dense, from ../shared) through `colzero data teacher`, whose
  cosine similarities are multiplied by --teacher-scale (the teacher's logits: PyLate's
  Distillation loss log-softmaxes raw teacher scores, and cosines in [-0.2, 0.4] would
  give a nearly uniform target).
- NOTICE.md: provenance and licence (SciFact: CC BY-NC 2.0).
Test queries and test qrels are never used for the tokenizer, the pairs or the KD scores.
Deterministic: the same inputs give byte-identical files (gzip mtime 0).

Usage: python3 tools/make_quickstart.py --colzero target/release/colzero
"""

import argparse
import gzip
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            rows.append((q, d, int(s)))
    return rows


def write_qrels(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, s in rows:
            f.write(f"{q}\t{d}\t{s}\n")


def gz_write(path, text):
    """gzip with a fixed mtime and no file name, so reruns are byte-identical."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as g:
        g.write(text.encode("utf-8"))
    with open(path, "wb") as f:
        f.write(raw.getvalue())


def jsonl_text(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def cut(text, max_chars):
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    sp = head.rfind(" ")
    return head[: sp if sp > max_chars // 2 else max_chars].rstrip()


def make_subset(src, out, n_docs, max_chars, seed):
    corpus = read_jsonl(os.path.join(src, "corpus.jsonl"))
    queries = {q["_id"]: q for q in read_jsonl(os.path.join(src, "queries.jsonl"))}
    train = read_qrels(os.path.join(src, "qrels", "train.tsv"))
    test = read_qrels(os.path.join(src, "qrels", "test.tsv"))
    judged = {d for _, d, _ in train + test}
    rest = [d["_id"] for d in corpus if d["_id"] not in judged]
    rng = random.Random(seed)
    rng.shuffle(rest)
    keep = judged | set(rest[: max(0, n_docs - len(judged))])
    docs = []
    for d in corpus:  # corpus order
        if d["_id"] in keep:
            docs.append({"_id": d["_id"], "title": d.get("title", ""),
                         "text": cut(d.get("text", ""), max_chars)})
    qids = []
    for q, _, _ in train + test:
        if q not in qids:
            qids.append(q)
    qrows = [{"_id": q, "text": queries[q]["text"]} for q in sorted(qids, key=lambda x: int(x))]
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    write_qrels(os.path.join(out, "qrels", "train.tsv"), train)
    write_qrels(os.path.join(out, "qrels", "test.tsv"), test)
    train_q = {q for q, _, _ in train}
    return docs, qrows, train_q, len(judged)


def train_tokenizer(texts, vocab_size, out):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=2,
                                        special_tokens=specials, continuing_subword_prefix="##",
                                        show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer numbers its alphabet in hash order: renumber (specials first, then the
    # rest sorted) so reruns give the same ids. WordPiece matching does not use the ids.
    vocab = tok.get_vocab()
    ordered = specials + sorted(t for t in vocab if t not in specials)
    tok.model = models.WordPiece(vocab={t: i for i, t in enumerate(ordered)}, unk_token="[UNK]",
                                 max_input_chars_per_word=100, continuing_subword_prefix="##")
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    gz_write(os.path.join(out, "tokenizer.json.gz"), tok.to_str(pretty=False))
    special_map = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(special_map, f, indent=2)
        f.write("\n")
    cfg = dict(special_map, do_lower_case=True, model_max_length=512,
               tokenizer_class="BertTokenizer", clean_up_tokenization_spaces=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    return tok


def write_config(out, vocab, args):
    cfg = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab,
        "hidden_size": args.hidden, "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads, "intermediate_size": 4 * args.hidden,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": args.max_positions, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def write_st_files(out):
    """sentence-transformers files: Transformer + mean Pooling (+ Normalize)."""
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": 256, "do_lower_case": False},
        "1_Pooling/config.json": {"word_embedding_dimension": None, "pooling_mode_cls_token": False,
                                  "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                                  "pooling_mode_mean_sqrt_len_tokens": False},
    }
    hidden = json.load(open(os.path.join(out, "config.json")))["hidden_size"]
    files["1_Pooling/config.json"]["word_embedding_dimension"] = hidden
    for rel, v in files.items():
        p = os.path.join(out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            json.dump(v, f, indent=2)
            f.write("\n")


def teacher_scores(colzero, beir_dir, teacher, n_ways, docs, qrows, train_q, scale):
    """Runs `colzero data teacher` on BM25 candidates of the train split; maps its
    interned ids back to BEIR ids by text (train queries only: a few SciFact test queries
    repeat a train query's text)."""
    tmp = tempfile.mkdtemp(prefix="qs-kd-")
    try:
        kd = os.path.join(tmp, "kd")
        subprocess.run([colzero, "--quiet", "data", "teacher", "--model", teacher, "--mode", "dense",
                        "--dataset", beir_dir, "--split", "train", "--n-ways", str(n_ways),
                        "--out", kd], check=True)
        by_text = {}
        for d in docs:
            by_text.setdefault((d["title"] + " " + d["text"]).strip(), d["_id"])
        q_by_text = {}
        for q in qrows:
            if q["_id"] not in train_q:
                continue
            q_by_text.setdefault(q["text"].strip(), q["_id"])
        qmap = {r["query_id"]: q_by_text[r["text"].strip()] for r in read_jsonl(os.path.join(kd, "queries.jsonl"))}
        dmap = {r["document_id"]: by_text[r["text"].strip()] for r in read_jsonl(os.path.join(kd, "documents.jsonl"))}
        rows = []
        for r in read_jsonl(os.path.join(kd, "train.jsonl")):
            rows.append({"query_id": qmap[r["query_id"]],
                         "document_ids": [dmap[d] for d in r["document_ids"]],
                         "scores": [round(scale * float(s), 4) for s in r["scores"]]})
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


NOTICE = """# quickstart bundle: provenance and licences

Embedded in the `colzero` binary by `crates/cli/src/cmd/quickstart/bundle.rs`; generated
by `tools/make_quickstart.py` (rerun it to reproduce these files byte for byte).

## scifact-2k/ — a subset of BEIR SciFact

- Source: SciFact (Wadden et al., "Fact or Fiction: Verifying Scientific Claims", EMNLP
  2020), in its BEIR packaging (Thakur et al., NeurIPS 2021 Datasets and Benchmarks).
- Licence: **CC BY-NC 2.0** (Creative Commons Attribution-NonCommercial 2.0). The subset is
  redistributed under the same terms: non-commercial use only, with this attribution.
- Changes: {n_docs} of the 5,183 documents (all {n_judged} documents judged for a train or
  test query, plus seeded random others); each document's text cut at a word boundary
  after {max_chars} characters; the {n_train_q} train queries and {n_test_q} test queries
  with their unchanged qrels (train {n_train} pairs, test {n_test} pairs).

## tiny-bert/ — the base model

A BERT architecture (hidden {hidden}, {layers} layers, {heads} heads; the weights are drawn
from a seed at run time, BERT's initialisation) and a WordPiece tokenizer ({vocab} tokens)
trained by the script on the bundled corpus and train queries (not the test queries).
No pretrained weights are shipped.

## kd/ — teacher scores

For each train query, BM25 (colzero's) candidates from the bundled corpus, the positive
first, scored by the dense model all-MiniLM-L6-v2 (Apache-2.0) through
`colzero data teacher`: {teacher_scale:g} x cosine similarity. Numbers only; derived from
the SciFact texts above.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--colzero", required=True, help="a built colzero binary (for the teacher scores)")
    ap.add_argument("--scifact", default=os.path.join(SHARED, "data", "beir", "scifact"))
    ap.add_argument("--teacher", default=os.path.join(SHARED, "models", "sentence-transformers", "all-MiniLM-L6-v2"))
    ap.add_argument("--out", default=os.path.join(ROOT, "crates", "cli", "assets", "quickstart"))
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--max-chars", type=int, default=700)
    ap.add_argument("--vocab", type=int, default=6000)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--max-positions", type=int, default=256)
    ap.add_argument("--n-ways", type=int, default=16)
    ap.add_argument("--teacher-scale", type=float, default=20.0,
                    help="all-MiniLM-L6-v2 was trained with cosine x 20 logits")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    beir = os.path.join(out, "scifact-2k")
    base = os.path.join(out, "tiny-bert")
    os.makedirs(beir)
    os.makedirs(base)
    os.makedirs(os.path.join(out, "kd"))

    docs, qrows, train_q, n_judged = make_subset(args.scifact, beir, args.docs, args.max_chars, args.seed)
    gz_write(os.path.join(beir, "corpus.jsonl.gz"), jsonl_text(docs))
    gz_write(os.path.join(beir, "queries.jsonl.gz"), jsonl_text(qrows))

    texts = [(d["title"] + " " + d["text"]).strip() for d in docs]
    texts += [q["text"] for q in qrows if q["_id"] in train_q]
    tok = train_tokenizer(texts, args.vocab, base)
    vocab = tok.get_vocab_size()
    write_config(base, vocab, args)
    write_st_files(base)

    # The teacher run needs a plain BEIR directory.
    with tempfile.TemporaryDirectory(prefix="qs-beir-") as plain:
        with open(os.path.join(plain, "corpus.jsonl"), "w", encoding="utf-8") as f:
            f.write(jsonl_text(docs))
        with open(os.path.join(plain, "queries.jsonl"), "w", encoding="utf-8") as f:
            f.write(jsonl_text(qrows))
        shutil.copytree(os.path.join(beir, "qrels"), os.path.join(plain, "qrels"))
        kd = teacher_scores(args.colzero, plain, args.teacher, args.n_ways, docs, qrows, train_q,
                            args.teacher_scale)
    assert all(r["query_id"] in train_q for r in kd), "KD rows must come from train queries"
    gz_write(os.path.join(out, "kd", "scores.jsonl.gz"), jsonl_text(kd))

    train = read_qrels(os.path.join(beir, "qrels", "train.tsv"))
    test = read_qrels(os.path.join(beir, "qrels", "test.tsv"))
    with open(os.path.join(out, "NOTICE.md"), "w") as f:
        f.write(NOTICE.format(n_docs=len(docs), n_judged=n_judged, max_chars=args.max_chars,
                              n_train_q=len({q for q, _, _ in train}), n_test_q=len({q for q, _, _ in test}),
                              n_train=len(train), n_test=len(test), hidden=args.hidden,
                              layers=args.layers, heads=args.heads, vocab=vocab,
                              teacher_scale=args.teacher_scale))
    total = 0
    for dp, _, fs in os.walk(out):
        for fn in fs:
            total += os.path.getsize(os.path.join(dp, fn))
    print(f"{out}: {len(docs)} docs, {len(qrows)} queries, vocab {vocab}, {len(kd)} KD rows, "
          f"{total / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()

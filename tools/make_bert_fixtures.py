#!/usr/bin/env python3
"""Golden fixtures for colzero-model's BERT ColBERT tests (dev-only; never run by tests).

Run from the repository root (offline, CPU, ~30 s):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python tools/make_bert_fixtures.py

Needs pylate 1.6.0 (+ torch, transformers, sentence-transformers) and the real
all-MiniLM-L6-v2 tokenizer in ../shared/models/sentence-transformers/all-MiniLM-L6-v2.

What it builds (all float32, seeded with torch.manual_seed(0)):
  * a SMALL random BERT (hidden 32, 2 layers, 4 heads, intermediate 64, MiniLM's
    30522-token vocabulary and tokenizer, dropout 0.1 in the config) wrapped with
    pylate.models.ColBERT(query_length=16, document_length=24, embedding_size=16), so
    PyLate adds "[Q] "/"[D] " at ids 30522/30523 (resizing the embeddings) and a
    bias-free Identity Dense head; saved with PyLate's own `save` to
      crates/model/tests/fixtures/tiny-bert-colbert/
  * the same backbone with a two-layer head (Dense 32->24 with bias and Tanh, then
    Dense 24->16 without bias, use_residual=True with residual.weight), saved to
      crates/model/tests/fixtures/tiny-bert-chain/   (built from the saved base model, so
      its backbone equals the base one; its model.safetensors is deleted to keep the
      fixtures small and the Rust test copies the base file in)
  * goldens in crates/model/tests/fixtures/tiny-bert-golden/:
      golden.json   - per variant: texts, prompts, settings, token ids, attention masks
                      and kept-vector masks for queries and documents (ColBERT.tokenize,
                      prompts prepended as encode() does), and gradient metadata;
      golden.safetensors - "{variant}.{query|document}.{i}" = PyLate encode() output
                      [n_kept, 16]; "grad.{param}" = d loss / d param, where
                      loss = colbert_scores(normalize(Q), normalize(D), documents_mask).sum()
                      over 3 queries x 3 documents of the base model, tokenized like the
                      training collator (pad=True), model in eval() mode (dropout off,
                      gradients on). The word-embedding gradient is stored sparsely:
                      "grad_rows.{param}" (row ids, int64) + "grad.{param}" (those rows).
Variants: "default" (expansion on), "prompts" (search_query: / search_document:),
"noexp" (do_query_expansion=False), "attend" (attend_to_expansion_tokens=True),
"chain" (the two-layer head model).
"""
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from pylate import models  # noqa: E402
from pylate.scores import colbert_scores  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINILM = os.path.join(os.path.dirname(ROOT), "shared", "models", "sentence-transformers", "all-MiniLM-L6-v2")
FIX = os.path.join(ROOT, "crates", "model", "tests", "fixtures")
QL, DL, DIM = 16, 24, 16

QUERIES = [
    "What is ColBERT?",
    "how do late-interaction models work, exactly?!",
    "a",
    "  Leading and trailing spaces  ",
    "an intentionally long query that certainly exceeds the sixteen token query budget of the tiny model",
]
DOCUMENTS = [
    "ColBERT is a late-interaction retrieval model. It encodes queries and documents separately.",
    "Short doc.",
    "Hello, world! (test) -- #tags & more... [brackets] {braces}; 100% sure?",
    "Café naïve résumé — “quotes” and ünïcödé text, plus 3.14159 numbers.",
    "A long document: " + " ".join(f"word{i}" for i in range(40)),
]
PROMPTS = {"query": "search_query: ", "document": "search_document: "}


def build_backbone(tmp):
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.2,
    )
    model = BertModel(cfg, add_pooling_layer=False)
    model.save_pretrained(tmp, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]:
        shutil.copy(os.path.join(MINILM, f), os.path.join(tmp, f))


def tokenize(model, texts, is_query, prompt=None, pad=False):
    if prompt:
        texts = [prompt + t for t in texts]
    f = model.tokenize(texts, is_query=is_query, pad=pad)
    ids = f["input_ids"]
    att = f["attention_mask"]
    if is_query:
        keep = torch.ones_like(ids, dtype=torch.bool) if model.do_query_expansion else att.bool()
    else:
        keep = model.skiplist_mask(ids, model.skiplist) & att.bool()
    return f, ids.tolist(), att.tolist(), keep.int().tolist()


def variant(model, name, prompts, golden, tensors):
    entry = {
        "prompts": prompts,
        "do_query_expansion": model.do_query_expansion,
        "attend_to_expansion_tokens": model.attend_to_expansion_tokens,
    }
    for kind, texts, is_query in [("query", QUERIES, True), ("document", DOCUMENTS, False)]:
        prompt = prompts.get(kind) if prompts else None
        _, ids, att, keep = tokenize(model, texts, is_query, prompt)
        out = model.encode(texts, is_query=is_query, prompt=prompt, batch_size=2, convert_to_numpy=False)
        for i, e in enumerate(out):
            tensors[f"{name}.{kind}.{i}"] = e.detach().float().contiguous()
        entry[kind] = {"texts": texts, "input_ids": ids, "attention_mask": att, "keep": keep}
    golden["variants"][name] = entry


def gradients(model, golden, tensors):
    model.eval()
    q_texts, d_texts = QUERIES[:3], DOCUMENTS[:3]
    qf, _, _, _ = tokenize(model, q_texts, True, pad=True)
    df, _, _, dkeep = tokenize(model, d_texts, False, pad=True)
    model.zero_grad()
    q = torch.nn.functional.normalize(model(dict(qf))["token_embeddings"], p=2, dim=-1)
    d = torch.nn.functional.normalize(model(dict(df))["token_embeddings"], p=2, dim=-1)
    scores = colbert_scores(q, d, documents_mask=torch.tensor(dkeep), backend="torch")
    loss = scores.sum()
    loss.backward()
    meta = {"queries": q_texts, "documents": d_texts, "loss": loss.item(), "scores": scores.tolist(), "params": []}
    for n, p in model.named_parameters():
        if p.grad is None:
            meta["params"].append({"name": n, "grad": None})
            continue
        g = p.grad.detach().float()
        if "word_embeddings" in n:
            rows = torch.nonzero(g.abs().sum(1) > 0).flatten()
            tensors[f"grad_rows.{n}"] = rows.to(torch.int64)
            g = g[rows]
        tensors[f"grad.{n}"] = g.contiguous()
        meta["params"].append({"name": n, "shape": list(p.shape)})
    golden["gradients"] = meta


def main():
    if not os.path.isdir(MINILM):
        sys.exit(f"missing {MINILM}")
    golden = {"query_length": QL, "document_length": DL, "dim": DIM, "variants": {}}
    tensors = {}
    out_base = os.path.join(FIX, "tiny-bert-colbert")
    out_chain = os.path.join(FIX, "tiny-bert-chain")
    with tempfile.TemporaryDirectory() as tmp:
        build_backbone(tmp)
        base = models.ColBERT(tmp, query_length=QL, document_length=DL, embedding_size=DIM, device="cpu")
    shutil.rmtree(out_base, ignore_errors=True)
    base.save(out_base)
    # The chain model reuses the saved base backbone (same [Q]/[D] rows) and replaces the
    # head: Dense 32->24 (bias, Tanh) then Dense 24->16 with use_residual (residual.weight).
    chain = models.ColBERT(out_base, device="cpu")
    torch.manual_seed(2)
    chain[1] = models.Dense(32, 24, bias=True, activation_function=torch.nn.Tanh())
    chain.append(models.Dense(24, 16, bias=False, use_residual=True))
    shutil.rmtree(out_chain, ignore_errors=True)
    chain.save(out_chain)
    for out in [out_base, out_chain]:
        readme = os.path.join(out, "README.md")
        if os.path.exists(readme):
            os.remove(readme)

    # Reload from disk, exactly as a user would.
    base = models.ColBERT(out_base, device="cpu")
    golden["prefix_ids"] = [base.query_prefix_id, base.document_prefix_id]
    golden["pad_token_id"] = base.tokenizer.pad_token_id
    golden["skiplist"] = base.skiplist
    variant(base, "default", None, golden, tensors)
    variant(base, "prompts", PROMPTS, golden, tensors)
    variant(models.ColBERT(out_base, device="cpu", do_query_expansion=False), "noexp", None, golden, tensors)
    variant(models.ColBERT(out_base, device="cpu", attend_to_expansion_tokens=True), "attend", None, golden, tensors)
    variant(models.ColBERT(out_chain, device="cpu"), "chain", None, golden, tensors)
    gradients(base, golden, tensors)
    # The chain backbone is byte-for-byte the base one: keep a single copy (the Rust test
    # copies tiny-bert-colbert/model.safetensors into a temp copy of tiny-bert-chain/).
    a = load_file(os.path.join(out_base, "model.safetensors"))
    b = load_file(os.path.join(out_chain, "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    os.remove(os.path.join(out_chain, "model.safetensors"))

    gdir = os.path.join(FIX, "tiny-bert-golden")
    os.makedirs(gdir, exist_ok=True)
    with open(os.path.join(gdir, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
    save_file(tensors, os.path.join(gdir, "golden.safetensors"))
    print("wrote", out_base, out_chain, gdir)


if __name__ == "__main__":
    main()

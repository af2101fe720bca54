#!/usr/bin/env python3
"""Golden fixtures for colzero's ModernBERT backbone (dev-only; never used by the product or CI).

No real ModernBERT weights or tokenizer exist offline, so this script builds tiny random ones
in the style of answerdotai/ModernBERT-base and records what PyTorch / PyLate compute with them:

    HF_HUB_OFFLINE=1 python tools/make_modernbert_fixtures.py     # from the repository root

It is deterministic (seeded, 2 torch threads) and writes, under
crates/model/tests/fixtures/:

  tiny-modernbert-colbert/    a PyLate ColBERT checkpoint saved by `ColBERT.save` (config.json in
                              the transformers 5.x schema, model.safetensors, tokenizer files with
                              the added "[Q] "/"[D] " tokens, modules.json, 1_Dense/, ...), plus
                              two extra copies of the backbone config:
                                config_original_schema.json  (global_rope_theta, local_rope_theta,
                                  global_attn_every_n_layers; no layer_types / rope_parameters)
                                config_new_schema_only.json  (layer_types + rope_parameters only)
  tiny-modernbert-golden/
      backbone.safetensors    batch{k}.input_ids / batch{k}.attention_mask (i64),
                              batch{k}.hidden and batch{k}.hidden_sdpa: f32 last_hidden_state of
                              ModernBertModel with eager / SDPA attention. They differ only in
                              rows that have no allowed key (a padded position farther than the
                              half window from every real token): eager gives them uniform
                              weights over all keys, torch SDPA gives them zero attention output
      encode.json             texts, prompts and the list of encode cases
      encode.safetensors      {case}.input_ids / {case}.attention_mask: `ColBERT.tokenize` of all
                              texts of the case as one batch (i64); {case}.emb.{i}: PyLate
                              `encode()` output for text i ([kept tokens, dim], normalised), with
                              the checkpoint loaded as PyLate does by default (SDPA on CPU)
      grads.safetensors       q.input_ids, q.attention_mask, d.input_ids, d.attention_mask, loss,
                              grad.<backbone tensor name> and grad.dense.linear.weight: PyTorch
                              gradients of loss = sum(colbert_scores(Q, D, documents_mask=d_mask))
                              with Q, D the L2-normalised token embeddings (model.eval(): dropout off;
                              eager, checked equal to SDPA's)
  tiny-modernbert-bias/       a backbone-only ModernBertModel with attention_bias, mlp_bias and
                              norm_bias on (config.json, model.safetensors, golden.safetensors
                              holding batch{k}.* like backbone.safetensors)

The fixture ColBERT is created and its backbone/gradient goldens computed with eager attention
(never flash attention).

Model: hidden 48, 4 heads, 4 layers, intermediate 64, global attention every 3 layers (layers 0
and 3 global), local_attention 8 (window |i - j| <= 4, shorter than every test sequence), global
rope theta 80000 and local rope theta 1000, dropouts 0.1 in the config (all off in eval),
initializer_range 0.2 so attention is far from uniform, LayerNorm weights randomised.
Tokenizer: ByteLevel BPE (vocab 1500) trained on the first 1500 SciFact documents, with
ModernBERT's special tokens [UNK] [CLS] [SEP] [PAD] [MASK] appended after the BPE vocabulary
("[MASK]" with lstrip) and the post-processor "[CLS] $A [SEP]".
"""
import json
import os
import shutil
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402
from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "crates", "model", "tests", "fixtures")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SCIFACT = os.path.join(SHARED, "data", "beir", "scifact")
COLBERT_DIR = os.path.join(FIX, "tiny-modernbert-colbert")
GOLDEN_DIR = os.path.join(FIX, "tiny-modernbert-golden")
BIAS_DIR = os.path.join(FIX, "tiny-modernbert-bias")
QUERY_PROMPT = "search_query: "
DOC_PROMPT = "search_document: "
QUERY_LENGTH = 24
DOCUMENT_LENGTH = 48


def read_jsonl(path, n):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def build_tokenizer(out_dir):
    docs = read_jsonl(os.path.join(SCIFACT, "corpus.jsonl"), 1500)
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens(
        [
            AddedToken("[UNK]", special=True),
            AddedToken("[CLS]", special=True),
            AddedToken("[SEP]", special=True),
            AddedToken("[PAD]", special=True),
            AddedToken("[MASK]", lstrip=True, special=True),
        ]
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="[CLS]",
        eos_token="[SEP]",
        unk_token="[UNK]",
        sep_token="[SEP]",
        cls_token="[CLS]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=8192,
        clean_up_tokenization_spaces=True,
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.save_pretrained(out_dir)
    return fast


def randomise_norms(model, with_bias):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif with_bias and name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def tiny_config(tok, **extra):
    return ModernBertConfig(
        vocab_size=len(tok),
        hidden_size=48,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        hidden_activation="gelu",
        max_position_embeddings=512,
        initializer_range=0.2,
        norm_eps=1e-5,
        global_attn_every_n_layers=3,
        local_attention=8,
        global_rope_theta=80000.0,
        local_rope_theta=1000.0,
        embedding_dropout=0.1,
        attention_dropout=0.1,
        mlp_dropout=0.1,
        pad_token_id=tok.pad_token_id,
        cls_token_id=tok.cls_token_id,
        sep_token_id=tok.sep_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        **extra,
    )


def write_schema_variants(cfg_path):
    with open(cfg_path) as f:
        cfg = json.load(f)
    assert "layer_types" in cfg and "rope_parameters" in cfg, "expected the transformers 5.x schema"
    old = {k: v for k, v in cfg.items() if k not in ("layer_types", "rope_parameters")}
    old["global_rope_theta"] = cfg["rope_parameters"]["full_attention"]["rope_theta"]
    old["local_rope_theta"] = cfg["rope_parameters"]["sliding_attention"]["rope_theta"]
    old["global_attn_every_n_layers"] = 3
    new = {k: v for k, v in cfg.items() if k != "global_attn_every_n_layers"}
    d = os.path.dirname(cfg_path)
    for name, c in [("config_original_schema.json", old), ("config_new_schema_only.json", new)]:
        with open(os.path.join(d, name), "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
            f.write("\n")


def backbone_batches(colbert, queries, docs, tok):
    """Padded batches covering padding x sliding-window interplay (docs, expanded queries, ...)."""
    batches = []
    d = colbert.tokenize(docs, is_query=False)  # dynamic padding to the longest document
    batches.append((d["input_ids"], d["attention_mask"]))
    q = colbert.tokenize(queries, is_query=True)  # [MASK]-padded to query_length, mask 0
    batches.append((q["input_ids"], q["attention_mask"]))
    batches.append((q["input_ids"], torch.ones_like(q["attention_mask"])))  # attend to expansion
    long = tok([docs[0]], truncation=True, max_length=64, return_tensors="pt")  # no padding
    batches.append((long["input_ids"], long["attention_mask"]))
    return batches


def run_backbone(model_dir, batches, out=None):
    """last_hidden_state under eager (`hidden`) and SDPA (`hidden_sdpa`) attention."""
    out = {} if out is None else out
    for impl, key in (("eager", "hidden"), ("sdpa", "hidden_sdpa")):
        model = ModernBertModel.from_pretrained(model_dir, attn_implementation=impl).eval()
        assert model.config._attn_implementation == impl
        with torch.no_grad():
            for k, (ids, mask) in enumerate(batches):
                h = model(input_ids=ids, attention_mask=mask).last_hidden_state
                out[f"batch{k}.input_ids"] = ids.to(torch.int64).clone()
                out[f"batch{k}.attention_mask"] = mask.to(torch.int64).clone()
                out[f"batch{k}.{key}"] = h.float().contiguous()
    return out


def colbert_loss_and_grads(colbert, q, d):
    """loss = sum(colbert_scores(Q, D, documents_mask)) and the gradient of every parameter."""
    from pylate.scores import colbert_scores

    colbert.zero_grad()
    qe = F.normalize(colbert(dict(q))["token_embeddings"], p=2, dim=-1)
    de = F.normalize(colbert(dict(d))["token_embeddings"], p=2, dim=-1)
    loss = colbert_scores(qe, de, documents_mask=d["attention_mask"], backend="torch").sum()
    loss.backward()
    grads = {}
    for name, p in colbert.named_parameters():
        if name.startswith("0.auto_model."):
            key = "grad." + name[len("0.auto_model."):]
        elif name.startswith("1."):
            key = "grad.dense." + name[len("1."):]
        else:
            raise SystemExit(f"unexpected parameter {name}")
        assert p.grad is not None, name
        grads[key] = p.grad.detach().float().clone()
    return loss.detach(), grads


def main():
    from pylate import models as pl_models

    torch.manual_seed(0)
    queries = [q["text"] for q in read_jsonl(os.path.join(SCIFACT, "queries.jsonl"), 3)]
    queries += ["cancer?", "What is the effect of the long-term use of low dose aspirin on the risk of "
                "colorectal cancer in adults older than sixty years in large cohorts?"]
    corpus = read_jsonl(os.path.join(SCIFACT, "corpus.jsonl"), 3)
    docs = [f"{d['title']} {d['text']}".strip() for d in corpus]
    docs += ["Short doc.", "Aspirin (ASA), a drug: does it reduce risk; or not? Yes!"]

    for d in (COLBERT_DIR, GOLDEN_DIR, BIAS_DIR):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)

    with tempfile.TemporaryDirectory() as base:
        tok = build_tokenizer(base)
        torch.manual_seed(0)
        cfg = tiny_config(tok)
        cfg._attn_implementation = "eager"
        model = ModernBertModel(cfg)
        randomise_norms(model, with_bias=False)
        model.save_pretrained(base)

        torch.manual_seed(1)
        colbert = pl_models.ColBERT(
            model_name_or_path=base,
            model_kwargs={"attn_implementation": "eager"},
            embedding_size=16,
            query_length=QUERY_LENGTH,
            document_length=DOCUMENT_LENGTH,
            prompts={"query": QUERY_PROMPT, "document": DOC_PROMPT},
            device="cpu",
        )
        colbert.save(COLBERT_DIR)
    write_schema_variants(os.path.join(COLBERT_DIR, "config.json"))

    # Everything below uses the checkpoint as reloaded from disk.
    colbert = pl_models.ColBERT(
        model_name_or_path=COLBERT_DIR, model_kwargs={"attn_implementation": "eager"}, device="cpu"
    )
    colbert.eval()
    backbone = colbert[0].auto_model
    assert backbone.config._attn_implementation == "eager", backbone.config._attn_implementation
    tok = colbert.tokenizer

    # 1. Backbone hidden states.
    golden = run_backbone(COLBERT_DIR, backbone_batches(colbert, queries, docs, tok))
    save_file(golden, os.path.join(GOLDEN_DIR, "backbone.safetensors"))

    # 2. PyLate encode() as loaded by default (SDPA on CPU): queries/documents x prompt x
    # expansion.
    eager_colbert = colbert
    colbert = pl_models.ColBERT(model_name_or_path=COLBERT_DIR, device="cpu")
    colbert.eval()
    assert colbert[0].auto_model.config._attn_implementation == "sdpa"
    cases = []
    tensors = {}
    for kind, texts in (("query", queries), ("document", docs)):
        for prompted in (False, True):
            for expansion in ((True, False) if kind == "query" else (True,)):
                name = f"{kind}.{'prompt' if prompted else 'noprompt'}"
                if kind == "query":
                    name += ".exp" if expansion else ".noexp"
                colbert.do_query_expansion = expansion
                colbert.attend_to_expansion_tokens = False
                prompt = (QUERY_PROMPT if kind == "query" else DOC_PROMPT) if prompted else None
                full = [(prompt or "") + t for t in texts]
                feats = colbert.tokenize(full, is_query=kind == "query")
                tensors[f"{name}.input_ids"] = feats["input_ids"].to(torch.int64).contiguous()
                tensors[f"{name}.attention_mask"] = feats["attention_mask"].to(torch.int64).contiguous()
                embs = colbert.encode(texts, is_query=kind == "query", prompt=prompt, batch_size=4,
                                      convert_to_numpy=False, convert_to_tensor=False)
                for i, e in enumerate(embs):
                    tensors[f"{name}.emb.{i}"] = torch.as_tensor(e).float().contiguous()
                cases.append({"name": name, "kind": kind, "prompt": prompt, "do_query_expansion": expansion})
    colbert.do_query_expansion = True
    save_file(tensors, os.path.join(GOLDEN_DIR, "encode.safetensors"))
    with open(os.path.join(GOLDEN_DIR, "encode.json"), "w") as f:
        json.dump({"queries": queries, "documents": docs, "cases": cases,
                   "query_length": QUERY_LENGTH, "document_length": DOCUMENT_LENGTH}, f, indent=2)
        f.write("\n")

    # 3. Gradients of sum(colbert_scores) w.r.t. every parameter (dropout off), eager; SDPA
    # gives the same (rows without any allowed key only exist at masked document positions).
    grad_docs = docs[:2] + ["A note about [PAD] tokens inside text.", docs[3]]
    q = eager_colbert.tokenize(queries[:3], is_query=True)
    d = eager_colbert.tokenize(grad_docs, is_query=False, pad=True)
    loss, grads = colbert_loss_and_grads(eager_colbert, q, d)
    loss_sdpa, grads_sdpa = colbert_loss_and_grads(colbert, q, d)
    assert abs(float(loss) - float(loss_sdpa)) < 1e-4, (loss, loss_sdpa)
    for k, v in grads.items():
        rel = (v - grads_sdpa[k]).abs().max() / v.abs().max()
        assert rel < 1e-5, (k, float(rel))
    g = {
        "q.input_ids": q["input_ids"].to(torch.int64).contiguous(),
        "q.attention_mask": q["attention_mask"].to(torch.int64).contiguous(),
        "d.input_ids": d["input_ids"].to(torch.int64).contiguous(),
        "d.attention_mask": d["attention_mask"].to(torch.int64).contiguous(),
        "loss": loss.reshape(1).float(),
        **grads,
    }
    pad_id = tok.convert_tokens_to_ids("[PAD]")
    assert (d["input_ids"] == pad_id).any(), "the gradient batch must contain a literal [PAD]"
    save_file(g, os.path.join(GOLDEN_DIR, "grads.safetensors"))

    # 4. A backbone with every bias flag on.
    torch.manual_seed(2)
    bcfg = tiny_config(tok, attention_bias=True, mlp_bias=True, norm_bias=True)
    bcfg._attn_implementation = "eager"
    bmodel = ModernBertModel(bcfg).eval()
    randomise_norms(bmodel, with_bias=True)
    bmodel.save_pretrained(BIAS_DIR)
    save_file(run_backbone(BIAS_DIR, backbone_batches(colbert, queries, docs, tok)),
              os.path.join(BIAS_DIR, "golden.safetensors"))

    print("loss", float(loss))
    for d_ in (COLBERT_DIR, GOLDEN_DIR, BIAS_DIR):
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d_) for f in fs)
        print(d_, f"{size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

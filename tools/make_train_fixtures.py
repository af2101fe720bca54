#!/usr/bin/env python3
"""Golden fixtures for colzero-train (dev-only; not needed to build or test).

What it writes (all under crates/train/tests/fixtures/, a few hundred KB in total):

* losses.safetensors - seeded random raw (un-normalised) token embeddings, PyLate
  masks, and, computed by the INSTALLED PyLate's own loss classes (pylate 1.6.0;
  `pylate.losses.Contrastive`, `CachedContrastive`, `Distillation`) driven through a stub
  model that returns the stored embeddings as `token_embeddings`:
  the loss value and the gradient of the loss w.r.t. every raw embedding tensor.
  Cases (key prefix):
    c_exp_   Contrastive, do_query_expansion=True (no query mask), tau 0.05, B=4, N=3
    c_noexp_ Contrastive, do_query_expansion=False (query mask used), tau 1.0
    cc_exp_  CachedContrastive(mini_batch_size=2) on the c_exp_ inputs
    c_inf_   Contrastive with masked document tokens set to -inf before the max
             (plain torch, same formula; PyLate has no such option)
    kd_      Distillation (normalize_scores=True), do_query_expansion=False, B=3, n=5
  Document masks are PyLate's: attention_mask AND NOT skiplist (ids 1..3 are in the
  stub skiplist); query masks are the attention masks. Masks are stored as f32.
* optim.safetensors - torch.optim.AdamW (betas (0.9,0.999), eps 1e-8, weight decay 0.01
  on decay params only, as HF Trainer groups them) run for 6 steps on three tensors with
  fixed gradient sequences, clip_grad_norm_(1.0) each step and HF
  get_linear_schedule_with_warmup(warmup 2, total 6) stepping the LR: initial params,
  grads per step, params after each step and the LR used at each step. Also the LR
  multipliers of get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup
  for warmup 3, total 10, steps 0..11.

How to run (from the repository root, CPU only, no network):

    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python tools/make_train_fixtures.py

* tiny_model_grads.safetensors - parameter gradients through the tiny BERT ColBERT of
  crates/model/tests/fixtures/tiny-bert-colbert (loaded with pylate.models.ColBERT,
  dropout off via .eval()) for Contrastive (tau 0.05), CachedContrastive
  (mini_batch_size 2) and Distillation on a few fixed texts tokenized by PyLate with
  pad=True. Keys: `<case>_loss` and `<case>.<param>` where param is the torch name
  (`0.<hf name>` for the backbone, `1.linear.weight` for the Dense head); the word
  embedding gradient is stored only for the rows the batch uses
  (`<case>.0.embeddings.word_embeddings.weight.rows` + `...row_ids`).

The output is deterministic for a given torch version (seeded, 2 threads).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import pylate
from pylate import losses

torch.set_num_threads(2)
OUT = Path(__file__).resolve().parent.parent / "crates" / "train" / "tests" / "fixtures"
SKIPLIST = [1, 2, 3]


class StubModel(torch.nn.Module):
    """Stands in for pylate.models.ColBERT: returns the stored embeddings."""

    def __init__(self, do_query_expansion: bool):
        super().__init__()
        self.skiplist = SKIPLIST
        self.do_query_expansion = do_query_expansion

    def forward(self, features):
        return {"token_embeddings": features["emb"]}


def make_ids(g: torch.Generator, b: int, t: int, min_len: int):
    """input_ids with some skiplist ids, attention_mask with right padding."""
    ids = torch.randint(4, 100, (b, t), generator=g)
    skip = torch.rand((b, t), generator=g) < 0.15
    ids = torch.where(skip, torch.randint(1, 4, (b, t), generator=g), ids)
    lens = torch.randint(min_len, t + 1, (b,), generator=g)
    att = (torch.arange(t)[None, :] < lens[:, None]).long()
    ids = ids * att  # padding id 0
    return ids, att


def feature(g, b, t, h, min_len):
    ids, att = make_ids(g, b, t, min_len)
    emb = torch.randn((b, t, h), generator=g).requires_grad_()
    return {"input_ids": ids, "attention_mask": att, "emb": emb}


def doc_mask(f):
    sk = pylate.models.ColBERT.skiplist_mask(f["input_ids"], SKIPLIST)
    return torch.logical_and(sk, f["attention_mask"].bool()).float()


def run_loss(loss_fn, feats, labels=None):
    for f in feats:
        f["emb"].grad = None
    loss = loss_fn(feats, labels) if labels is not None else loss_fn(feats)
    loss.backward()
    return loss.detach(), [f["emb"].grad.detach().clone() for f in feats]


def contrastive_cases(out: dict):
    g = torch.Generator().manual_seed(1234)
    B, N, S, T, H = 4, 3, 6, 9, 16
    feats = [feature(g, B, S, H, 3)] + [feature(g, B, T, H, 4) for _ in range(N)]
    for i, f in enumerate(feats):
        name = "q" if i == 0 else f"d{i - 1}"
        out[f"c_{name}_emb"] = f["emb"].detach().clone()
        mask = f["attention_mask"].float() if i == 0 else doc_mask(f)
        out[f"c_{name}_mask"] = mask

    loss, grads = run_loss(losses.Contrastive(StubModel(True), temperature=0.05), feats)
    out["c_exp_loss"] = loss.reshape(1)
    for i, gr in enumerate(grads):
        out[f"c_exp_grad{i}"] = gr

    loss, grads = run_loss(losses.Contrastive(StubModel(False), temperature=1.0), feats)
    out["c_noexp_loss"] = loss.reshape(1)
    for i, gr in enumerate(grads):
        out[f"c_noexp_grad{i}"] = gr

    cc = losses.CachedContrastive(StubModel(True), mini_batch_size=2, temperature=0.05)
    loss, grads = run_loss(cc, feats)
    out["cc_exp_loss"] = loss.reshape(1)
    for i, gr in enumerate(grads):
        out[f"cc_exp_grad{i}"] = gr

    # -inf masking variant, plain torch.
    for f in feats:
        f["emb"].grad = None
    embs = [F.normalize(f["emb"], p=2, dim=-1) for f in feats]
    q = embs[0]
    docs = torch.stack(embs[1:], dim=1).reshape(B * N, T, H)
    dmask = torch.stack([doc_mask(f) for f in feats[1:]], dim=1).reshape(B * N, T)
    sim = torch.einsum("ash,bth->abst", q, docs)
    sim = sim.masked_fill(dmask[None, :, None, :] == 0, float("-inf"))
    scores = sim.max(dim=-1).values.sum(dim=-1)
    loss = F.cross_entropy(scores / 0.05, torch.arange(B) * N)
    loss.backward()
    out["c_inf_loss"] = loss.detach().reshape(1)
    for i, f in enumerate(feats):
        out[f"c_inf_grad{i}"] = f["emb"].grad.detach().clone()


def distillation_case(out: dict):
    g = torch.Generator().manual_seed(99)
    B, NW, S, T, H = 3, 5, 6, 9, 16
    fq = feature(g, B, S, H, 3)
    fd = feature(g, B * NW, T, H, 3)
    teacher = torch.randn((B, NW), generator=g) * 4.0
    loss, grads = run_loss(losses.Distillation(StubModel(False)), [fq, fd], teacher)
    out["kd_q_emb"] = fq["emb"].detach().clone()
    out["kd_q_mask"] = fq["attention_mask"].float()
    out["kd_d_emb"] = fd["emb"].detach().clone()  # [B*n, T, H]
    out["kd_d_mask"] = doc_mask(fd)
    out["kd_teacher"] = teacher
    out["kd_loss"] = loss.reshape(1)
    out["kd_grad_q"] = grads[0]
    out["kd_grad_d"] = grads[1]


def optim_case(out: dict):
    from transformers import (
        get_cosine_schedule_with_warmup,
        get_linear_schedule_with_warmup,
    )

    g = torch.Generator().manual_seed(7)
    shapes = {"encoder.weight": (4, 5), "encoder.bias": (5,), "LayerNorm.weight": (5,)}
    params = {k: torch.nn.Parameter(torch.randn(s, generator=g)) for k, s in shapes.items()}
    for k, p in params.items():
        out[f"init.{k}"] = p.detach().clone()
    decay = [params["encoder.weight"]]
    no_decay = [params["encoder.bias"], params["LayerNorm.weight"]]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-2,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=2, num_training_steps=6)
    lrs = []
    for step in range(6):
        scale = 3.0 if step % 2 == 0 else 0.05  # some steps clip, some do not
        for k, p in params.items():
            gr = torch.randn(shapes[k], generator=g) * scale
            out[f"grad{step}.{k}"] = gr.clone()
            p.grad = gr
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        opt.zero_grad()
        for k, p in params.items():
            out[f"after{step}.{k}"] = p.detach().clone()
    out["lrs"] = torch.tensor(lrs, dtype=torch.float64)

    def lambdas(make):
        o = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        s = make(o)
        vals = []
        for _ in range(12):
            vals.append(o.param_groups[0]["lr"])
            o.step()
            s.step()
        return torch.tensor(vals, dtype=torch.float64)

    out["sched_linear"] = lambdas(lambda o: get_linear_schedule_with_warmup(o, 3, 10))
    out["sched_cosine"] = lambdas(lambda o: get_cosine_schedule_with_warmup(o, 3, 10))


TINY = Path(__file__).resolve().parent.parent / "crates" / "model" / "tests" / "fixtures" / "tiny-bert-colbert"
TINY_QUERIES = ["apple river stone", "music paper cloud", "green house light", "ocean tiger bread"]
TINY_POS = ["apple river stone music", "music paper cloud, green!", "green house light ocean", "ocean tiger bread metal"]
TINY_NEG = ["glass earth smile apple", "tiger bread metal glass", "river stone music paper", "cloud green house light"]
KD_QUERIES = ["apple river stone", "music paper cloud"]
KD_DOCS = [["apple river", "stone music paper", "cloud green", "house light ocean tiger"],
           ["music paper", "cloud", "green house light", "ocean tiger bread metal glass"]]
KD_SCORES = [[3.0, 1.0, -2.0, 0.5], [0.0, 4.0, 1.0, 2.0]]


def tiny_model_case(out: dict):
    from pylate import models

    model = models.ColBERT(str(TINY), device="cpu")
    model.eval()
    names = {f"0.{n}": p for n, p in model[0].auto_model.named_parameters()}
    names.update({f"1.{n}": p for n, p in model[1].named_parameters()})

    def tok(texts, is_query):
        return model.tokenize(texts, is_query=is_query, pad=True)

    def record(case, loss, used_ids):
        for p in names.values():
            p.grad = None
        loss.backward()
        out[f"{case}_loss"] = loss.detach().reshape(1)
        for n, p in names.items():
            if p.grad is None:
                continue
            if n.endswith("word_embeddings.weight"):
                ids = torch.unique(used_ids)
                out[f"{case}.{n}.rows"] = p.grad[ids].clone()
                out[f"{case}.{n}.row_ids"] = ids.to(torch.int64)
            else:
                out[f"{case}.{n}"] = p.grad.clone()

    feats = [tok(TINY_QUERIES, True), tok(TINY_POS, False), tok(TINY_NEG, False)]
    used = torch.cat([f["input_ids"].flatten() for f in feats])
    record("tc", losses.Contrastive(model, temperature=0.05)(feats), used)
    feats = [tok(TINY_QUERIES, True), tok(TINY_POS, False), tok(TINY_NEG, False)]
    record("tcc", losses.CachedContrastive(model, mini_batch_size=2, temperature=0.05)(feats), used)
    kd_feats = [tok(KD_QUERIES, True), tok([d for ds in KD_DOCS for d in ds], False)]
    used = torch.cat([f["input_ids"].flatten() for f in kd_feats])
    record("tkd", losses.Distillation(model)(kd_feats, torch.tensor(KD_SCORES)), used)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    contrastive_cases(out)
    distillation_case(out)
    save_file({k: v.contiguous() for k, v in out.items()}, str(OUT / "losses.safetensors"),
              metadata={"pylate": pylate.__version__, "torch": torch.__version__})
    opt: dict = {}
    optim_case(opt)
    save_file({k: v.contiguous() for k, v in opt.items()}, str(OUT / "optim.safetensors"),
              metadata={"torch": torch.__version__})
    tiny: dict = {}
    tiny_model_case(tiny)
    save_file({k: v.contiguous() for k, v in tiny.items()}, str(OUT / "tiny_model_grads.safetensors"),
              metadata={"pylate": pylate.__version__, "torch": torch.__version__})
    print("wrote", OUT / "losses.safetensors", OUT / "optim.safetensors", OUT / "tiny_model_grads.safetensors")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixture for colzero-core's token pooling (dev-only; never used by the product or CI).

Run from the repository root (needs `pip install pylate`, which brings torch and scipy):

    python3 tools/make_pooling_fixture.py

Writes crates/core/tests/fixtures/pooling.json (about 200 KB): seeded random unit token
vectors for a few documents (some with repeated tokens, so that Ward merges tie at height
0) and the output of PyLate's own `ColBERT.pool_embeddings_hierarchical` for several
(pool_factor, protected_tokens) settings. The method uses nothing of the model, so it is
called unbound; the reference is PyLate's code path itself (torch mm in float32, scipy Ward
linkage, fcluster maxclust, mean per cluster, no renormalisation).
"""
import json
import os

import numpy as np
import torch
from pylate.models.colbert import ColBERT

OUT = "crates/core/tests/fixtures/pooling.json"


def unit_rows(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    rng = np.random.default_rng(20261208)
    docs = []
    for n, dim in [(1, 16), (3, 16), (9, 16), (32, 16), (57, 32), (120, 16)]:
        docs.append(unit_rows(rng, n, dim))
    # Repeated tokens (a word used several times gives near-identical vectors).
    base = unit_rows(rng, 6, 16)
    docs.append(np.concatenate([base[[0]], base[[1]], base[[1]], base[[1]], base[2:], base[[3]]]))
    cases = []
    for pool_factor, protected in [(2, 1), (3, 1), (4, 0), (2, 2)]:
        outs = ColBERT.pool_embeddings_hierarchical(
            None,
            [torch.from_numpy(d) for d in docs],
            pool_factor=pool_factor,
            protected_tokens=protected,
        )
        cases.append(
            {
                "pool_factor": pool_factor,
                "protected_tokens": protected,
                "pooled": [o.numpy().astype(float).tolist() for o in outs],
            }
        )
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"documents": [d.astype(float).tolist() for d in docs], "cases": cases}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

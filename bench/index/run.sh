#!/usr/bin/env bash
# colzero-index benchmark: PLAID vs exact search vs fast-plaid on the same embeddings.
# Usage: bench/index/run.sh [DOCS.safetensors QUERIES.safetensors] [OUT_DIR]
#   With no stores given, seeded synthetic clustered embeddings are generated
#   (5,000 docs of 60-300 tokens, 300 queries of 32 tokens, dim 128).
# Env: THREADS (default 2), NBITS (default "2 4"), K (default 10).
# Prints figures only; writes indexes and runs under OUT_DIR (default /tmp/colzero-bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2}
NBITS=${NBITS:-"2 4"}
K=${K:-10}
if [ $# -ge 2 ]; then
  DOCS=$1; QUERIES=$2; OUT=${3:-/tmp/colzero-bench}
else
  OUT=${1:-/tmp/colzero-bench}
  DOCS=$OUT/docs.safetensors; QUERIES=$OUT/queries.safetensors
fi
mkdir -p "$OUT"
cargo build --release -p colzero-index --examples
BIN=target/release/examples
if [ $# -lt 2 ] && [ ! -f "$DOCS" ]; then
  $BIN/gen_synthetic --out "$OUT" --docs 5000 --queries 300 --dim 128 \
    --min-len 60 --max-len 300 --query-len 32 --concepts 4096 --seed 1
fi
export RAYON_NUM_THREADS=$THREADS
for nb in $NBITS; do
  echo "=== colzero PLAID nbits $nb: build ==="
  /usr/bin/time -f "wall %e s, user %U s, max RSS %M kB" \
    $BIN/plaid_bench build --docs "$DOCS" --index "$OUT/colzero-nb$nb" --nbits "$nb"
  echo "=== colzero PLAID nbits $nb vs exact: search (k $K) ==="
  $BIN/plaid_bench search --docs "$DOCS" --queries "$QUERIES" --index "$OUT/colzero-nb$nb" \
    --k "$K" --runs-out "$OUT/runs-nb$nb.json"
  echo "=== fast-plaid nbits $nb (CPU, $THREADS threads) ==="
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python3 bench/index/fast_plaid_bench.py \
    --docs "$DOCS" --queries "$QUERIES" --index "$OUT/fast-plaid-nb$nb" \
    --runs "$OUT/runs-nb$nb.json" --k "$K" --nbits "$nb" --threads "$THREADS"
done

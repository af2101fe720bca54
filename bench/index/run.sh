#!/usr/bin/env bash
# colzero-index side-by-side benchmark: colzero PLAID vs fast-plaid (CPU) vs exact search,
# on the same embeddings, the same nbits and the same thread count; prints one table.
#
# Usage: bench/index/run.sh [DOCS.safetensors QUERIES.safetensors [OUT_DIR [QRELS.tsv]]]
#   DOCS/QUERIES: colzero embedding stores (`colzero encode` / `colzero eval
#   --save-embeddings`: one [tokens, dim] F32 tensor per id). With no stores given,
#   seeded synthetic clustered embeddings are generated into OUT_DIR (5,000 docs of
#   60-300 tokens, 300 queries of 32 tokens, dim 128) and there is no nDCG.
#   QRELS: BEIR qrels TSV of the queries; adds nDCG@10 and the fidelity lines.
# Env: THREADS (2), NBITS (colzero nbits, "2"), FP_NBITS (fast-plaid nbits, = NBITS),
#      KS ("10 100"), FASTPLAID (1; 0 skips it), EXHAUSTIVE (0; 1 adds the exhaustive
#      reconstructed-vector rerank of FIDELITY.md).
# Writes indexes, logs (OUT_DIR/*.log), runs and the table (OUT_DIR/table.md) under
# OUT_DIR (default /tmp/colzero-bench). Peak RSS is /usr/bin/time -v's maximum resident
# set size: of the colzero build process alone; of the whole fast-plaid script (it loads
# every embedding into torch, builds and searches in one process).
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${THREADS:-2}
NBITS=${NBITS:-2}
FP_NBITS=${FP_NBITS:-$NBITS}
KS=${KS:-"10 100"}
FASTPLAID=${FASTPLAID:-1}
EXHAUSTIVE=${EXHAUSTIVE:-0}
QRELS=""
if [ $# -ge 2 ]; then
  DOCS=$1; QUERIES=$2; OUT=${3:-/tmp/colzero-bench}; QRELS=${4:-}
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
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
KCSV=$(echo $KS | tr ' ' ',')
QARGS=()
[ -n "$QRELS" ] && QARGS=(--qrels "$QRELS")
# value of `RESULT <key> <value>` in a log ("-" when absent)
res() { awk -v k="$2" '$1=="RESULT" && $2==k {v=$3} END {print (v=="" ? "-" : v)}' "$1"; }
rss() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }
ROWS=()
EXACT_ROW=""
for nb in $NBITS; do
  log=$OUT/colzero-build-nb$nb.log
  echo "=== colzero PLAID nbits $nb: build (log $log) ==="
  /usr/bin/time -v $BIN/plaid_bench build --docs "$DOCS" --index "$OUT/colzero-nb$nb" \
    --nbits "$nb" >"$log" 2>&1 || { cat "$log"; exit 1; }
  grep -E "^(tokens|centroids|build time|bytes per token|peak)" "$log"
  build_s=$(awk '/^build time/ {print $4}' "$log")
  build_rss=$(rss "$log")
  slog=$OUT/colzero-search-nb$nb.log
  echo "=== colzero PLAID nbits $nb vs exact: search k $KCSV (log $slog) ==="
  EX=()
  [ "$EXHAUSTIVE" = 1 ] && EX=(--exhaustive)
  $BIN/plaid_bench search --docs "$DOCS" --queries "$QUERIES" --index "$OUT/colzero-nb$nb" \
    --k "$KCSV" --runs-out "$OUT/runs-nb$nb.json" "${QARGS[@]}" "${EX[@]}" \
    --fidelity-out "$OUT/fidelity-nb$nb.json" 2>&1 | tee "$slog" | grep -v "^RESULT"
  qk() { res "$slog" "colzero_qps_k$1"; }
  ROWS+=("| colzero PLAID | $nb | $build_s | $build_rss | $(res "$slog" colzero_bytes_per_token) | $(qk 10) | $(qk 100) | $(res "$slog" colzero_ndcg10) | $(res "$slog" colzero_recall_k10) |")
  if [ -z "$EXACT_ROW" ]; then
    e=$(res "$slog" exact_qps)
    EXACT_ROW="| exact MaxSim | - | - | - | 512 (f32) | $e | $e | $(res "$slog" exact_ndcg10) | 1 |"
  fi
done
if [ "$FASTPLAID" = 1 ]; then
  first=$(echo $NBITS | awk '{print $1}')
  for nb in $FP_NBITS; do
    flog=$OUT/fast-plaid-nb$nb.log
    echo "=== fast-plaid nbits $nb (CPU, $THREADS threads; log $flog) ==="
    runs=$OUT/runs-nb$nb.json
    [ -f "$runs" ] || runs=$OUT/runs-nb$first.json
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 /usr/bin/time -v python3 bench/index/fast_plaid_bench.py \
      --docs "$DOCS" --queries "$QUERIES" --index "$OUT/fast-plaid-nb$nb" --runs "$runs" \
      --k $KS --nbits "$nb" --threads "$THREADS" --n-full-scores 4096 0 "${QARGS[@]}" \
      >"$flog" 2>&1 || { cat "$flog"; exit 1; }
    grep -v "^RESULT" "$flog" | grep -v -E "^\s|Command being|Exit status|Page size" | head -20
    for tag in default matched; do
      label="fast-plaid (n_full_scores 4096)"
      [ $tag = matched ] && label="fast-plaid (n_full_scores = colzero n_full)"
      ROWS+=("| $label | $nb | $(res "$flog" fastplaid_build_s) | $(rss "$flog") | $(res "$flog" fastplaid_bytes_per_token) | $(res "$flog" fastplaid_${tag}_qps_k10) | $(res "$flog" fastplaid_${tag}_qps_k100) | $(res "$flog" fastplaid_${tag}_ndcg10) | $(res "$flog" fastplaid_${tag}_recall_k10) |")
    done
  done
fi
{
  echo "docs $DOCS, queries $QUERIES, threads $THREADS, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "load: $(uptime | sed 's/.*load average/load average/'), $(nproc) CPUs"
  echo
  echo "| system | nbits | build (s) | peak RSS (MiB) | B/token | QPS k=10 | QPS k=100 | nDCG@10 | recall@10 vs exact |"
  echo "|---|---|---|---|---|---|---|---|---|"
  echo "$EXACT_ROW"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT/table.md"

#!/usr/bin/env bash
# Load benchmark of `colzero serve` on SciFact (issue 13), loopback only, bounded in time.
#
# 1. Builds the release binary and the load generator (crates/serve/examples/load.rs).
# 2. Makes a ColBERT from all-MiniLM-L6-v2 (`colzero convert`, or MODEL=DIR for another),
#    indexes SciFact at nbits 2, and encodes its queries to a store (embeddings mode).
# 3. Baseline: the same queries in-process, one batch (`colzero search --index --queries`).
# 4. Starts `colzero serve` (2 threads, 2 workers) and runs the generator for SECS seconds
#    at 1, 4 and 16 clients, by text (encoding in the server) and by embeddings; then a
#    mixed run on a copy of the index: 16 clients, 10% malformed requests (each must get a
#    4xx), one add every 200 ms (each acknowledged add must be found afterwards).
# Prints one JSON line per run (QPS, p50/p95/p99 ms, errors, server peak RSS) and the
# baseline QPS; writes them to $WORK/results.jsonl. Needs ../shared (COLZERO_SHARED).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${COLZERO_SHARED:-../shared}
WORK=${WORK:-target/bench-serve}
SECS=${SECS:-60}
MODEL=${MODEL:-$WORK/minilm-colbert}
BIN=target/release/colzero
LOAD=target/release/examples/load
DS=$SHARED/data/beir/scifact
mkdir -p "$WORK"
cargo build --release -p colzero
cargo build --release -p colzero-serve --example load

[ -d "$MODEL" ] || $BIN --quiet convert --from "$SHARED/models/sentence-transformers/all-MiniLM-L6-v2" --out "$MODEL"
[ -f "$WORK/scifact.plaid/manifest.json" ] || $BIN --quiet --threads 2 index build --model "$MODEL" --corpus "$DS" --out "$WORK/scifact.plaid" --nbits 2
[ -f "$WORK/queries.safetensors" ] || $BIN --quiet --threads 2 encode --model "$MODEL" --input "$DS/queries.jsonl" --kind query --output "$WORK/queries.safetensors"
nq=$(grep -c . "$DS/queries.jsonl")

t0=$(date +%s.%N)
$BIN --quiet --threads 2 search --model "$MODEL" --index "$WORK/scifact.plaid" --queries "$DS/queries.jsonl" -k 10 --output "$WORK/baseline.trec"
t1=$(date +%s.%N)
base=$(python3 -c "print(round($nq / ($t1 - $t0), 2))")
echo "{\"baseline\": \"colzero search --index, one batch, model load included\", \"queries\": $nq, \"qps\": $base}" | tee "$WORK/results.jsonl"

serve() { # $1: index dir; sets ADDR (host:port) and SERVER (pid)
  local log="$WORK/serve.log"
  $BIN --threads 2 serve --model "$MODEL" --index "scifact=$1" --port 0 --workers 2 >"$log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log" 2>/dev/null && break
    sleep 0.1
  done
  ADDR=$(grep -o "listening on http://[0-9.:]*" "$log" | sed 's/.*http:\/\///')
  [ -n "$ADDR" ] || { cat "$log" >&2; exit 1; }
}
stop() { kill -TERM "$SERVER"; wait "$SERVER" || true; }

serve "$WORK/scifact.plaid"
for c in 1 4 16; do
  $LOAD --addr "$ADDR" --index scifact --clients $c --seconds "$SECS" --queries "$DS/queries.jsonl" --pid "$SERVER" | tee -a "$WORK/results.jsonl"
  $LOAD --addr "$ADDR" --index scifact --clients $c --seconds "$SECS" --embeddings "$WORK/queries.safetensors" --pid "$SERVER" | tee -a "$WORK/results.jsonl"
done
stop

rm -rf "$WORK/mixed.plaid"; cp -r "$WORK/scifact.plaid" "$WORK/mixed.plaid"
serve "$WORK/mixed.plaid"
$LOAD --addr "$ADDR" --index scifact --clients 16 --seconds "$SECS" --queries "$DS/queries.jsonl" \
  --malformed-pct 10 --add-every-ms 200 --pid "$SERVER" | tee -a "$WORK/results.jsonl"
stop

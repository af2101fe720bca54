#!/usr/bin/env bash
# Concurrency stress of one PLAID index (issue 16 acceptance): 2 writer loops (every add
# or delete a separate process; ~30% of them SIGKILLed at a random moment or at a named
# write step) and 4 reader threads searching fresh and long-lived snapshots, for
# COLZERO_STRESS_SECS seconds (default 300). Prints the counts of operations, kills and
# searches; fails if any acknowledged change is missing, a killed operation is half
# applied, a search fails with anything but "busy", the final content is mixed, or a file
# outside the manifest is left. The same test runs for 6 s in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export COLZERO_STRESS_SECS="${COLZERO_STRESS_SECS:-300}"
cargo test --release -p colzero-index --test stress -- --nocapture two_writers_four_readers_and_kills

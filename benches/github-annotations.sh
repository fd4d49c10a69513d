#!/usr/bin/env bash
# GitHub check-run benchmark: 10 000 findings in one gate posted to the fake GitHub with 20 ms latency
# per request. Prints requests vs the 2 + ceil(N/50) minimum, wall time vs the latency floor, and the
# client's peak RSS (the fake runs in a child process). Needs scripts/install-prism.sh (for the spec
# the fake answers from).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
scripts/install-prism.sh >/dev/null
cargo build --release --example github_bench >&2
bin="$CARGO_TARGET_DIR/release/examples/github_bench"
for budget in 10000 1000; do
  for run in 1 2 3; do
    echo "# budget=$budget run=$run"
    "$bin" --findings 10000 --latency-ms 20 --budget "$budget"
  done
done

#!/bin/bash
# Gates benchmarks, side by side in one run (BENCHMARKS.md, section "## Gates"):
#   1. parsing a generated 100 000-result SARIF file and a 200 000-violation flake8 JSON file into
#      findings, against jq extracting the same fields from the same file: wall time and peak RSS
#      (/usr/bin/time -v), median of RUNS runs;
#   2. eight gates of `sleep 1` at parallelism 8 through run_gates: wall time, median of RUNS runs.
# Usage: scripts/bench-gates.sh [RUNS]   (needs jq and /usr/bin/time: apt-get install jq time)
set -euo pipefail
RUNS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
DIR=${FM_BENCH_DIR:-$HOME/.cache/fm-deploy-testbed/bench}
mkdir -p "$DIR"
command -v jq >/dev/null || { echo "jq is missing: apt-get install -y jq" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time" >&2; exit 2; }
(cd "$ROOT" && cargo build -q --release --example gates_bench)
B=$CARGO_TARGET_DIR/release/examples/gates_bench
[ -f "$DIR/sarif-100k.json" ] || "$B" gen-sarif 100000 "$DIR/sarif-100k.json"
[ -f "$DIR/flake8-200k.json" ] || "$B" gen-flake8 200000 "$DIR/flake8-200k.json"

JQ_SARIF='.runs[] | .tool.driver.name as $t | .results[] | {tool: $t, rule: .ruleId, severity: .properties.issue_severity, path: .locations[0].physicalLocation.artifactLocation.uri, line: .locations[0].physicalLocation.region.startLine, column: .locations[0].physicalLocation.region.startColumn, end_line: .locations[0].physicalLocation.region.endLine, end_column: .locations[0].physicalLocation.region.endColumn, message: .message.text}'
JQ_FLAKE8='to_entries[] | .value[] | {rule: .code, path: .filename, line: .line_number, column: .column_number, message: .text}'

# measure LABEL CMD... -> prints "LABEL median_seconds median_peak_kb" (wall from nanosecond
# clock reads around /usr/bin/time, whose own wall figure has 10 ms resolution)
measure() {
  local label=$1; shift
  local secs=() kbs=()
  for _ in $(seq "$RUNS"); do
    local out t0 t1
    t0=$(date +%s.%N)
    out=$( { /usr/bin/time -v "$@" >/dev/null; } 2>&1 )
    t1=$(date +%s.%N)
    secs+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}')")
    kbs+=("$(echo "$out" | awk -F': ' '/Maximum resident set size/ {print $2}')")
  done
  local ms mk
  ms=$(printf '%s\n' "${secs[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  mk=$(printf '%s\n' "${kbs[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$label $ms $mk"
}

size_kb() { echo $(( $(stat -c %s "$1") / 1024 )); }

for f in sarif flake8; do
  if [ $f = sarif ]; then file=$DIR/sarif-100k.json; kind=sarif; jqf=$JQ_SARIF; else file=$DIR/flake8-200k.json; kind=flake8-json; jqf=$JQ_FLAKE8; fi
  # same number of records out of both
  n_ours=$("$B" parse $kind "$file"); n_jq=$(jq -c "$jqf" "$file" | wc -l)
  [ "$n_ours" = "$n_jq" ] || { echo "record counts differ: ours $n_ours, jq $n_jq" >&2; exit 1; }
  fkb=$(size_kb "$file")
  jq_line=$(measure jq jq -c "$jqf" "$file")
  mem_line=$(measure parse "$B" parse $kind "$file")
  str_line=$(measure stream "$B" stream $kind "$file")
  echo "== $f: $(basename "$file") ${fkb} KiB, $n_ours records"
  read -r _ jt jk <<<"$jq_line"
  for line in "$mem_line" "$str_line"; do
    read -r l t k <<<"$line"
    awk -v l="$l" -v t="$t" -v k="$k" -v jt="$jt" -v jk="$jk" -v f="$fkb" 'BEGIN {
      printf "%-7s wall %.3fs  peak RSS %.1f MiB (%.2fx file)  |  jq wall %.3fs  peak RSS %.1f MiB (%.2fx file)  |  speed-up %.1fx, RSS ratio jq/ours %.1fx\n",
        l, t, k/1024, k/f, jt, jk/1024, jk/f, jt/t, jk/k }'
  done
done

echo "== 8 gates of sleep 1 at parallelism 8 (run_gates, real process runner)"
walls=()
for _ in $(seq "$RUNS"); do walls+=("$(cd "$DIR" && "$B" sleep 8 8 | awk '{print $2}')"); done
printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR]=$1} END {printf "wall median %.1f ms, min %.1f ms, max %.1f ms over %d runs (physical limit 1000 ms)\n", a[int((NR+1)/2)], a[1], a[NR], NR}'

#!/usr/bin/env bash
# `fm-deploy plan` on the bundled example vs `node -e 0` (the runtime JavaScript actions such as
# Azure/k8s-deploy start on), side by side in one run: wall time (hyperfine) and peak RSS (time -v).
#
#   benches/plan.sh            builds the release binary first
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time; }
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --locked --bin fm-deploy >&2
bin="$target/release/fm-deploy"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
plan=("$bin" plan --config "$root/examples/fm-deploy.yml" --branch main --sha 0123456789abcdef0123456789abcdef01234567 --summary "$tmp/report.md")

echo "binary: $(stat -c %s "$bin") bytes (stripped, release)"
hyperfine -N --warmup 20 --runs 200 --export-json "$tmp/h.json" \
  -n "fm-deploy plan (example, main)" "${plan[*]}" \
  -n "node -e 0" "node -e 0" >&2
python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r:
    print(f"{x['command']}: mean {x['mean']*1000:.2f} ms, median {x['median']*1000:.2f} ms, max {x['max']*1000:.2f} ms")
print(f"ratio node/fm-deploy (mean wall): {r[1]['mean']/r[0]['mean']:.1f}x")
PY
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1; }
a=$(rss "${plan[@]}"); b=$(rss node -e 0)
echo "peak RSS: fm-deploy plan ${a} KiB, node -e 0 ${b} KiB, ratio $(python3 -c "print(f'{$b/$a:.1f}')")x"

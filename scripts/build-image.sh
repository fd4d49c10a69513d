#!/usr/bin/env bash
# Builds the action's image from the repository's one Dockerfile with podman, the way this machine
# can: installs podman (Debian's, with runc) and /etc/containers/containers.conf when absent, builds
# the base image as a local stand-in of the same distribution from Debian's archive (mmdebstrap,
# cached in ~/.cache/fm-deploy-testbed/images), builds the release binary with cargo on the host
# and passes it in as the build context's `dist/fm-deploy` (BINARY_SOURCE=context). On GitHub the
# release workflow builds the same Dockerfile with its defaults: the real base images pinned by
# digest, the binary compiled in the Dockerfile's own build stage, trivy and gitleaks copied from
# their pinned images (SCANNERS=pinned; here SCANNERS=none: those images cannot be pulled).
#
#   scripts/build-image.sh            builds (layer cache in podman's storage) and prints the image
#                                     reference on its last line
#
# Idempotent and locked: concurrent callers wait for one build. FM_TESTBED_CACHE moves the cache;
# FM_IMAGE_TAG names the image (default localhost/fm-deploy-action:<Cargo.toml version>).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"
images="$cache/images"
mkdir -p "$images"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
tag="${FM_IMAGE_TAG:-localhost/fm-deploy-action:$version}"
log() { printf 'build-image: %s\n' "$*" >&2; }

exec 9>"$images/.lock"
flock 9

# --- podman, configured for this kind of host (cgroup v1, capped RLIMIT_NOFILE: runc, not crun) ---
need=()
for p in podman runc mmdebstrap uidmap fuse-overlayfs slirp4netns debian-archive-keyring; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
conf=/etc/containers/containers.conf
want_conf='[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"'
if [ ! -s "$conf" ]; then
  mkdir -p /etc/containers
  printf '%s\n' "$want_conf" > "$conf"
elif ! grep -q '^runtime = "runc"' "$conf"; then
  log "note: $conf exists and does not select runc; leaving it as it is"
fi

# --- base stand-in: python:3.11-slim-bookworm's distribution and Python, from Debian's archive ---
# Slim like debian:bookworm-slim (no man pages, docs but copyrights, locales; no apt lists), and
# python-is-python3 because the official image has `python` (the example policy runs `python …`).
base_pkgs="ca-certificates,python3,python3-venv,python-is-python3"
base_opts=(--variant=minbase --include="$base_pkgs"
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/apt "$1"/var/log/dpkg.log')
base="localhost/fm-deploy-base:bookworm"
base_stamp="$(printf '%s\n' "${base_opts[@]}" | sha256sum | cut -c1-16)"
base_tar="$images/base-bookworm-$base_stamp.tar"
if [ ! -s "$base_tar" ]; then
  log "building the base stand-in with mmdebstrap ($base_pkgs)"
  mmdebstrap --quiet --format=tar "${base_opts[@]}" bookworm "$base_tar.tmp" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  mv "$base_tar.tmp" "$base_tar"
fi
if [ "$(podman image inspect --format '{{index .Labels "fm-deploy.base-stamp"}}' "$base" 2>/dev/null || true)" != "$base_stamp" ]; then
  podman import --change "LABEL fm-deploy.base-stamp=$base_stamp" \
    --change 'CMD ["python3"]' "$base_tar" "$base" >&2
fi

# --- the binary: the release build on the host (2 cores: far cheaper than a build stage) ---
log "cargo build --release (fm-deploy)"
(cd "$root" && cargo build --release --locked --bin fm-deploy --quiet >&2)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
ctx="$images/context"
rm -rf "$ctx"
mkdir -p "$ctx/dist" "$ctx/docker"
cp "$root"/docker/requirements-*.txt "$ctx/docker/"
cp "$target_dir/release/fm-deploy" "$ctx/dist/fm-deploy"

# --- the image: one Dockerfile; only the bases, the binary's source and the scanners differ ---
log "podman build $tag"
podman build --quiet --pull=never --network host --layers \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --build-arg PYTHON_IMAGE="$base" \
  --build-arg BINARY_SOURCE=context \
  --build-arg SCANNERS=none \
  --label "org.opencontainers.image.version=$version" \
  -f "$root/Dockerfile" -t "$tag" "$ctx" >&2
echo "$tag"

#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 from Debian's `kubernetes` source package
# with Debian's Go, offline, into a cache outside the repository. Reuses the cache when present.
set -euo pipefail

CACHE="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"
BIN="$CACHE/bin"
here="$(cd "$(dirname "$0")" && pwd)"
# Bump when the build changes (patches, targets): cached binaries of another stamp are rebuilt.
STAMP="1.20.2+reflect2-go118+kubectl"
if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/kubectl" ] \
   && [ "$(cat "$BIN/.stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "kubernetes binaries cached in $BIN"
  exit 0
fi

need_pkgs=()
for p in golang-go rsync jq etcd-server dpkg-dev patch; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
fi

# Source packages need a deb-src entry; add one beside Debian's own list once.
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/fm-deploy-src.sources
  apt-get update -qq
fi

mkdir -p "$CACHE/src" "$BIN"
cd "$CACHE/src"
if ! ls kubernetes_*.orig.tar.gz >/dev/null 2>&1; then
  apt-get source --download-only kubernetes
fi
tree=$(ls -d kubernetes-1.* 2>/dev/null | head -n 1 || true)
if [ -z "$tree" ]; then
  tar xzf kubernetes_*.orig.tar.gz
  tree=$(ls -d kubernetes-1.* | head -n 1)
fi
cd "$tree"
# The vendored modern-go/reflect2 v1.0.1 reads Go's map iterator with a pre-1.18 layout: built with
# Debian's Go 1.19, kube-apiserver dies with SIGSEGV in json-iterator (e.g. writing audit events).
# reflect2 v1.0.2's fix, applied to the vendored copy.
if ! grep -q 'checkBucket' vendor/github.com/modern-go/reflect2/unsafe_link.go; then
  patch -p1 -N < "$here/reflect2-go118.patch"
fi
mkdir -p .go/src/k8s.io "$CACHE/go-build"
ln -sfn ../../.. .go/src/k8s.io/kubernetes
GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$(mktemp -d) GOCACHE="$CACHE/go-build" \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl"
for b in kube-apiserver kube-controller-manager kubectl; do
  cp "_output/local/bin/linux/amd64/$b" "$BIN/$b.new" && mv "$BIN/$b.new" "$BIN/$b"
done
echo "$STAMP" > "$BIN/.stamp"
echo "kubernetes binaries built into $BIN"

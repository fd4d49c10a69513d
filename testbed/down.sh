#!/usr/bin/env bash
# Stops every testbed process started by up.sh (TERM, then KILL after 10 s). `--purge` also removes the
# run directory (cluster state, logs, kubeconfig). Never touches processes it did not start.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
for p in prometheus kcm apiserver etcd; do
  f="$RUN/$p.pid"
  if pid_alive "$f"; then
    pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
done
rm -f "$ENV_FILE"
if [ "${1:-}" = "--purge" ]; then rm -rf "$RUN"; fi
echo "testbed down"

#!/usr/bin/env bash
# Runs one kube-apiserver of the testbed in the foreground (exec), so its pid is this script's pid.
# Usage: apiserver.sh [secure-port]. Used by up.sh and by tests that kill and restart an apiserver
# over the same etcd (a second apiserver on another port shares the cluster state).
set -euo pipefail
. "$(dirname "$0")/common.sh"
port="${1:-$APISERVER_PORT}"
exec "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$port" --insecure-port=0 \
  --cert-dir="$RUN/certs-$port" --token-auth-file="$RUN/tokens.csv" --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$RUN/sa.pub" \
  --service-account-signing-key-file="$RUN/sa.key" --service-cluster-ip-range=10.96.0.0/16 \
  --disable-admission-plugins=ServiceAccount \
  --audit-policy-file="$RUN/audit-policy.yaml" --audit-log-path="$RUN/audit-$port.log" \
  --audit-log-format=json --audit-log-mode=blocking

#!/usr/bin/env bash
# Starts the testbed on loopback: etcd, kube-apiserver (audit log on), kube-controller-manager and
# Prometheus, each waited for with a deadline. Idempotent: when everything is already running and
# ready it only prints the env file. Writes:
#   $RUN/kubeconfig    admin kubeconfig (token auth, server https://127.0.0.1:$APISERVER_PORT)
#   $RUN/testbed.env   KEY=VALUE lines the tests read (see README.md in this directory)
# Installs what is missing (Debian packages, the kubernetes binaries via build-k8s.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/common.sh"
mkdir -p "$RUN"
exec 9>"$RUN/.lock"
flock -w 900 9

need_pkgs=()
for p in etcd-server prometheus openssl curl iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
# The sample app (examples/sample-app/app.py) needs any python3 ≥ 3.7 on PATH.
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
"$here/build-k8s.sh"

# The stand-in kubelet's pod range is local to this host (as on a node, where pod IPs are
# reachable): the apiserver's service proxy dials pod IPs, and the stand-in pods answer on them.
# Needs root (CAP_NET_ADMIN); without it the tests that go through the proxy say so and fail.
if ! ip route show table local 2>/dev/null | grep -q '^local 10.244.0.0/16 dev lo'; then
  ip route add local 10.244.0.0/16 dev lo 2>/dev/null ||
    echo "testbed: could not route the pod range 10.244.0.0/16 to lo (needs root); service-proxy tests will fail" >&2
fi

token_file="$RUN/token"
readyz() { curl -skf -H "Authorization: Bearer $(cat "$token_file")" "https://127.0.0.1:$APISERVER_PORT/readyz"; }
all_up() {
  for p in etcd apiserver kcm prometheus; do pid_alive "$RUN/$p.pid" || return 1; done
  readyz && curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"
}
if [ -f "$ENV_FILE" ] && all_up >/dev/null 2>&1; then
  echo "testbed already up: $ENV_FILE"
  exit 0
fi

# Anything half-started goes; the cluster starts from an empty etcd.
"$here/down.sh" >/dev/null 2>&1 || true
rm -rf "$RUN/etcd" "$RUN/prom-data" "$RUN"/certs-* "$RUN"/*.log
mkdir -p "$RUN/prom-sd"
rm -f "$RUN"/prom-sd/*.json

start() { # start <name> <log> <command...>: detached, own session, pid in $RUN/<name>.pid
  local name=$1 log=$2; shift 2
  # 9>&-: the lock fd must not live on in the services, or the next up.sh waits for them to exit.
  setsid "$@" >"$log" 2>&1 < /dev/null 9>&- &
  echo $! >"$RUN/$name.pid"
}

# A start that fails part-way stops what it started (nothing half-up is left behind).
trap 'rc=$?; if [ $rc -ne 0 ]; then "$here/down.sh" >/dev/null 2>&1 || true; fi' EXIT

start etcd "$RUN/etcd.log" etcd --data-dir "$RUN/etcd" --name fm-testbed \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "fm-testbed=http://127.0.0.1:$ETCD_PEER_PORT"

if [ ! -f "$RUN/sa.key" ]; then
  openssl genrsa -out "$RUN/sa.key" 2048 2>/dev/null
  openssl rsa -in "$RUN/sa.key" -pubout -out "$RUN/sa.pub" 2>/dev/null
fi
umask 077
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file"
# One static identity, `admin`, for the harness (kubelet, router, test setup). The deploy under
# test runs as a ServiceAccount bound to the Role of examples/deploy/rbac.yaml, which the harness
# creates in each test's namespace (tests/support_k8s/deployer.rs), so the audit log tells their
# requests apart and the deploy has exactly the documented permissions.
echo "$(cat "$token_file"),admin,admin,\"system:masters\"" >"$RUN/tokens.csv"
cat >"$RUN/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: fm-testbed
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: "$(cat "$token_file")"}
contexts:
- name: fm-testbed
  context: {cluster: fm-testbed, user: admin, namespace: default}
current-context: fm-testbed
KC
umask 022
cat >"$RUN/audit-policy.yaml" <<'AP'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
AP

PID_HINT="$RUN/etcd.pid" LOG_HINT="$RUN/etcd.log" wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
start apiserver "$RUN/apiserver.log" "$here/apiserver.sh" "$APISERVER_PORT"
PID_HINT="$RUN/apiserver.pid" LOG_HINT="$RUN/apiserver.log" wait_for 90 kube-apiserver readyz
start kcm "$RUN/kcm.log" "$BIN/kube-controller-manager" --kubeconfig="$RUN/kubeconfig" \
  --service-account-private-key-file="$RUN/sa.key" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --port=0 --cert-dir="$RUN/certs-kcm" \
  --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-ttl,-bootstrapsigner,-tokencleaner'
PID_HINT="$RUN/kcm.pid" LOG_HINT="$RUN/kcm.log" wait_for 60 kube-controller-manager curl -skf "https://127.0.0.1:$KCM_PORT/healthz"

cat >"$RUN/prometheus.yml" <<PY
global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
- job_name: fm-apps
  file_sd_configs: [{files: ["$RUN/prom-sd/*.json"], refresh_interval: 1s}]
PY
start prometheus "$RUN/prometheus.log" prometheus --config.file="$RUN/prometheus.yml" \
  --storage.tsdb.path="$RUN/prom-data" --web.listen-address="127.0.0.1:$PROM_PORT"
PID_HINT="$RUN/prometheus.pid" LOG_HINT="$RUN/prometheus.log" wait_for 30 prometheus curl -sf "http://127.0.0.1:$PROM_PORT/-/ready"

cat >"$ENV_FILE" <<EF
FM_TESTBED_RUN=$RUN
FM_TESTBED_BIN=$BIN
FM_TESTBED_KUBECONFIG=$RUN/kubeconfig
FM_TESTBED_KUBECTL=$BIN/kubectl
FM_TESTBED_APISERVER_URL=https://127.0.0.1:$APISERVER_PORT
FM_TESTBED_APISERVER_SCRIPT=$here/apiserver.sh
FM_TESTBED_AUDIT_LOG=$RUN/audit-$APISERVER_PORT.log
FM_TESTBED_ETCD_URL=http://127.0.0.1:$ETCD_PORT
FM_TESTBED_PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
FM_TESTBED_PROM_SD_DIR=$RUN/prom-sd
EF
echo "testbed up: $ENV_FILE"

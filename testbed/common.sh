# Shared settings for the testbed scripts (sourced, not run).
CACHE="${FM_TESTBED_CACHE:-$HOME/.cache/fm-deploy-testbed}"
BIN="$CACHE/bin"
RUN="${FM_TESTBED_RUN:-$CACHE/run}"
ETCD_PORT="${FM_TESTBED_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${FM_TESTBED_ETCD_PEER_PORT:-2380}"
APISERVER_PORT="${FM_TESTBED_APISERVER_PORT:-6443}"
KCM_PORT="${FM_TESTBED_KCM_PORT:-10257}"
PROM_PORT="${FM_TESTBED_PROMETHEUS_PORT:-9090}"
ENV_FILE="$RUN/testbed.env"

# wait_for <seconds> <what> <command...>: retries the command every 0.2 s until it succeeds or the
# deadline passes, or the process in $PID_HINT exits (then prints the log tail named by $LOG_HINT and
# fails).
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); local what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    local gone=""
    if [ -n "${PID_HINT:-}" ] && ! pid_alive "$PID_HINT"; then gone=1; fi
    if [ -n "$gone" ] || [ "$(date +%s)" -ge "$deadline" ]; then
      if [ -n "$gone" ]; then echo "testbed: $what exited during start" >&2
      else echo "testbed: $what not ready after deadline" >&2; fi
      [ -n "${LOG_HINT:-}" ] && tail -n 30 "$LOG_HINT" >&2
      return 1
    fi
    sleep 0.2
  done
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

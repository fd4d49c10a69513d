#!/usr/bin/env python3
"""The bundled example service: what fm-deploy deploys in its own tests and demos.

Endpoints:
  GET  /            a page naming the version (fails with 500 at the configured error rate)
  GET  /api/solve   a small JSON API answer (same error rate and latency)
  GET  /health      200 {"status": "ok", "version": ...}, or 503 while the `healthy` knob is off
  GET  /metrics     Prometheus text format: requests by code, a latency histogram, memory
  GET  /api/health, /api/metrics   the same two under the API prefix (the example policy's
                    `app.endpoints`, which its smoke tests call)
  GET|POST /admin/knobs?error_rate=0.2&latency_ms=300&memory_mb=100&healthy=0
                    read / change the knobs at run time (query string or form body)

Standard library only. Options: --host, --port, --version, --error-rate, --latency-ms, --memory-mb,
--memory-limit-mb, --parent-pid (exit when that process is gone, so tests never leave it behind).
"""

import argparse
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.version = args.version
        self.error_rate = args.error_rate
        self.latency_ms = args.latency_ms
        self.memory_limit = args.memory_limit_mb * 1024 * 1024
        self.healthy = True
        self.ballast = b""
        self.set_memory(args.memory_mb)
        self.requests = {}  # (path, code) -> count
        self.hist = {}  # path -> [bucket counts..., +Inf count, sum]

    def set_memory(self, mb):
        self.ballast = bytearray(int(mb * 1024 * 1024))
        # Touch every page so the memory is really resident.
        for i in range(0, len(self.ballast), 4096):
            self.ballast[i] = 1

    def observe(self, path, code, seconds):
        with self.lock:
            key = (path, str(code))
            self.requests[key] = self.requests.get(key, 0) + 1
            h = self.hist.setdefault(path, [0] * (len(BUCKETS) + 2))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[len(BUCKETS)] += 1
            h[len(BUCKETS) + 1] += seconds

    def metrics(self):
        out = []
        with self.lock:
            out.append("# HELP http_requests_total Requests served, by path and status code.")
            out.append("# TYPE http_requests_total counter")
            for (path, code), n in sorted(self.requests.items()):
                out.append(f'http_requests_total{{path="{path}",code="{code}"}} {n}')
            out.append("# HELP http_request_duration_seconds Request latency.")
            out.append("# TYPE http_request_duration_seconds histogram")
            for path, h in sorted(self.hist.items()):
                for i, b in enumerate(BUCKETS):
                    out.append(f'http_request_duration_seconds_bucket{{path="{path}",le="{b}"}} {h[i]}')
                out.append(f'http_request_duration_seconds_bucket{{path="{path}",le="+Inf"}} {h[len(BUCKETS)]}')
                out.append(f'http_request_duration_seconds_count{{path="{path}"}} {h[len(BUCKETS)]}')
                out.append(f'http_request_duration_seconds_sum{{path="{path}"}} {h[len(BUCKETS) + 1]}')
            out.append("# HELP app_memory_used_bytes Resident memory of the process.")
            out.append("# TYPE app_memory_used_bytes gauge")
            out.append(f"app_memory_used_bytes {resident_bytes()}")
            out.append("# HELP app_memory_limit_bytes The memory limit the app runs under.")
            out.append("# TYPE app_memory_limit_bytes gauge")
            out.append(f"app_memory_limit_bytes {self.memory_limit}")
            out.append("# HELP app_info The running version.")
            out.append("# TYPE app_info gauge")
            out.append(f'app_info{{version="{self.version}"}} 1')
        return "\n".join(out) + "\n"


def resident_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def send(self, code, body, ctype="application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-App-Version", state.version)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.route(parse_qs(urlparse(self.path).query))

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            params = parse_qs(urlparse(self.path).query)
            params.update(parse_qs(body))
            self.route(params)

        def route(self, params):
            path = urlparse(self.path).path
            path = {"/api/health": "/health", "/api/metrics": "/metrics"}.get(path, path)
            if path == "/metrics":
                return self.send(200, state.metrics(), "text/plain; version=0.0.4")
            if path == "/admin/knobs":
                return self.knobs(params)
            start = time.monotonic()
            if path == "/health":
                ok = state.healthy
                code = 200 if ok else 503
                body = json.dumps({"status": "ok" if ok else "unhealthy", "version": state.version})
            elif path in ("/", "/api/solve"):
                if state.latency_ms:
                    time.sleep(state.latency_ms / 1000.0)
                if random.random() < state.error_rate:
                    code, body = 500, json.dumps({"error": "injected failure", "version": state.version})
                else:
                    code, body = 200, json.dumps({"version": state.version, "path": path})
            else:
                code, body = 404, json.dumps({"error": "not found"})
            state.observe(path, code, time.monotonic() - start)
            self.send(code, body)

        def knobs(self, params):
            with state.lock:
                if "error_rate" in params:
                    state.error_rate = float(params["error_rate"][0])
                if "latency_ms" in params:
                    state.latency_ms = float(params["latency_ms"][0])
                if "healthy" in params:
                    state.healthy = params["healthy"][0] not in ("0", "false", "no")
            if "memory_mb" in params:
                state.set_memory(float(params["memory_mb"][0]))
            self.send(200, json.dumps({
                "version": state.version, "error_rate": state.error_rate,
                "latency_ms": state.latency_ms, "healthy": state.healthy,
                "memory_bytes": resident_bytes(),
            }))

    return Handler


def watch_parent(pid):
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        if os.getppid() != pid:
            os._exit(0)
        time.sleep(0.5)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--version", default="v1")
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--memory-mb", type=float, default=0.0)
    p.add_argument("--memory-limit-mb", type=float, default=512.0)
    p.add_argument("--parent-pid", type=int, default=0)
    args = p.parse_args()
    state = State(args)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    server.daemon_threads = True
    if args.parent_pid:
        threading.Thread(target=watch_parent, args=(args.parent_pid,), daemon=True).start()
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()

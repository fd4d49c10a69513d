"""Measures the certsolver service and writes fm-deploy's performance JSON (fm-deploy-perf/1).

Starts the service from PROJECT on a free loopback port (or probes --url), sends --requests
requests of each kind, and writes:

  {"format": "fm-deploy-perf/1", "api_ms": <p95 GET /health>,
   "certificate_generation_ms": <p95 POST / with a 3-certificate chain>, "error_rate": <non-2xx share>}

Usage: python perf_probe.py --project DIR --out FILE [--requests N]
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request


def p95(samples):
    ordered = sorted(samples)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def timed(request):
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        ok = False
    return (time.perf_counter() - started) * 1000.0, ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()

    sys.path.insert(0, os.path.abspath(args.project))
    from http.server import HTTPServer

    from certsolver.server import Handler

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    day = 86400
    chain = json.dumps(
        {
            "certs": [
                {"subject": "root", "issuer": "root", "not_after": 400 * day},
                {"subject": "leaf", "issuer": "inter", "not_after": 20 * day},
                {"subject": "inter", "issuer": "root", "not_after": 200 * day},
            ]
        }
    ).encode()

    api, gen, failures = [], [], 0
    for _ in range(args.requests):
        ms, ok = timed(urllib.request.Request(base + "/health"))
        api.append(ms)
        failures += 0 if ok else 1
        post = urllib.request.Request(
            base + "/", data=chain, headers={"Content-Type": "application/json"}
        )
        ms, ok = timed(post)
        gen.append(ms)
        failures += 0 if ok else 1
    server.shutdown()

    result = {
        "format": "fm-deploy-perf/1",
        "api_ms": round(p95(api), 3),
        "certificate_generation_ms": round(p95(gen), 3),
        "error_rate": failures / (2.0 * args.requests),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Benchmark: notify → success page in Debian's chromium over N orders (default 50), against a
# release build on SQLite with the sandbox. Run: scripts/bench.sh notify-to-success [N].
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo leptos build --release 2>&1 | tail -n 1
port=3650
(cd end2end && E2E_PORT=$port SCANPAY_SANDBOX_TIME_SCALE=1 exec bash serve.sh release) > /dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
node end2end/bench/notify-to-success.js "http://127.0.0.1:$port" "${1:-50}"

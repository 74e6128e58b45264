#!/usr/bin/env bash
# Browser benchmarks against a release build on SQLite with the sandbox, in Debian's chromium:
#   notify-to-success [N]: notify → success page over N orders (default 50);
#   throttled [RUNS]: the checkout on a 1.6 Mbit/s, 150 ms network (QR visible, hydrated).
# Run: scripts/bench.sh notify-to-success [N] | scripts/bench.sh throttled [RUNS].
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo leptos build --release --precompress 2>&1 | tail -n 1
port=3650
(cd end2end && E2E_PORT=$port SCANPAY_SANDBOX_TIME_SCALE=1 exec bash serve.sh release) > /dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
node "end2end/bench/$1.js" "http://127.0.0.1:$port" "${@:2}"

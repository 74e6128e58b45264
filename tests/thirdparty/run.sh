#!/usr/bin/env bash
# Runs test_wechatpy.py (v2) and test_wechatpayv3.py (v3) against a freshly started scanpay binary (debug build).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
venv=${THIRDPARTY_VENV:-$HOME/.cache/scanpay/venv}
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s tests/thirdparty/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r tests/thirdparty/requirements.txt
  cp tests/thirdparty/requirements.txt "$venv/requirements.txt"
fi
port=${THIRDPARTY_PORT:-3410}  # scripts/test.sh gives each run its own
db_dir=$(mktemp -d)
LEPTOS_SITE_ADDR=127.0.0.1:$port LEPTOS_SITE_ROOT=target/site LEPTOS_OUTPUT_NAME=scanpay \
SCANPAY_DATABASE_URL=sqlite://$db_dir/wp.db SCANPAY_SANDBOX_TIME_SCALE=0.01 SCANPAY_SANDBOX_BILL_READY_AFTER=0s \
  "$target/debug/scanpay" > "$db_dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
SCANPAY_URL=http://127.0.0.1:$port "$venv/bin/pytest" -q tests/thirdparty "$@"

#!/usr/bin/env bash
# Runs every test: unit + integration (cargo), the third-party client against the sandbox
# (wechatpy), and Playwright in Debian's chromium against the debug and the release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
source scripts/env.sh
logs=$(mktemp -d)
passed=0
failed=0
count() { # count <log> <regex matching "N passed"> <regex matching "N failed">
  local p f
  p=$(grep -oE "$2" "$1" | awk '{s+=$1} END {print s+0}' || true)
  f=$(grep -oE "$3" "$1" | awk '{s+=$1} END {print s+0}' || true)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}
section() { printf '\n==== %s\n' "$*"; }

section "cargo test (unit + integration on SQLite; the store contract on SQLite, PostgreSQL and MariaDB)"
cargo test --features ssr -- --show-output 2>&1 | tee "$logs/cargo.log"
count "$logs/cargo.log" '[0-9]+ passed;' '[0-9]+ failed;'

# PostgreSQL runs with RabbitMQ + Redis (the scaled-out engines), MariaDB with the embedded bus.
for engine in postgres mysql; do
  engines=""
  [ "$engine" = postgres ] && engines="rabbitmq+redis"
  section "integration tests on $engine ${engines:++ $engines }(each test its own database, queues and keys; model test: 150 cases)"
  TEST_DATABASE=$engine TEST_ENGINES=$engines PROPTEST_CASES=${PROPTEST_CASES_ENGINES:-150} \
    cargo test --features ssr --test integration -- --show-output 2>&1 | tee "$logs/cargo-$engine.log"
  count "$logs/cargo-$engine.log" '[0-9]+ passed;' '[0-9]+ failed;'
done

section "build (debug): server + WASM"
cargo leptos build 2>&1 | tail -n 3

section "third-party client (wechatpy) against the sandbox"
bash tests/thirdparty/run.sh 2>&1 | tee "$logs/pytest.log"
count "$logs/pytest.log" '[0-9]+ passed' '[0-9]+ failed'

section "Playwright, debug build"
(cd end2end && E2E_PROFILE=debug npx playwright test) 2>&1 | tee "$logs/e2e-debug.log"
count "$logs/e2e-debug.log" '^ +[0-9]+ passed' '^ +[0-9]+ failed'

for engine in postgres mysql; do
  # PostgreSQL: one web and two worker processes on RabbitMQ + Redis (end2end/serve.sh).
  engines=""
  [ "$engine" = postgres ] && engines="rabbitmq+redis"
  section "Playwright happy paths, debug build, on $engine ${engines:+(+ $engines, one web and two worker processes)}"
  (cd end2end && E2E_DATABASE=$engine E2E_ENGINES=$engines E2E_PROFILE=debug npx playwright test tests/checkout.spec.ts) 2>&1 | tee "$logs/e2e-$engine.log"
  count "$logs/e2e-$engine.log" '^ +[0-9]+ passed' '^ +[0-9]+ failed'
done
for port in 3400 3401; do  # the servers' databases, queues and keys (see end2end/serve.sh)
  psql "${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}" -qc "DROP DATABASE IF EXISTS scanpay_e2e_$port WITH (FORCE)"
  mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS scanpay_e2e_$port"
  ttl=15m; [ $port = 3401 ] && ttl=8s  # the fast server's order time (end2end/playwright.config.ts)
  SCANPAY_AMQP_URL=${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f} SCANPAY_AMQP_PREFIX=scanpay_e2e_$port \
    SCANPAY_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0} SCANPAY_REDIS_PREFIX=scanpay_e2e_$port \
    SCANPAY_ORDER_TTL=$ttl SCANPAY_SANDBOX_MIN_EXPIRE=1s "${CARGO_TARGET_DIR:-target}/debug/scanpay" purge-engines --yes
done

section "build (release): server + WASM through wasm-opt, files precompressed (brotli, gzip)"
cargo leptos build --release --precompress 2>&1 | tail -n 3
ls -l target/site/pkg/

section "Playwright, release build"
(cd end2end && E2E_PROFILE=release npx playwright test) 2>&1 | tee "$logs/e2e-release.log"
count "$logs/e2e-release.log" '^ +[0-9]+ passed' '^ +[0-9]+ failed'

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

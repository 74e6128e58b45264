#!/usr/bin/env bash
# Runs every test: unit + integration (cargo; the integration tests again on WeChat Pay API v3),
# the third-party clients against the sandbox (wechatpy on v2, wechatpayv3 on v3), and Playwright
# in Debian's chromium against the debug and the release builds (its happy paths on v3 too).
# Every suite runs even when an earlier one failed; the run ends with `tests: N passed, M failed`
# on a line of its own (read by CI), then the suites that failed, and exits non-zero if any did.
# A suite that exits non-zero without reporting a failed test (a compile error, a runner that
# crashed) counts as 1 failed; so does a failed build, and each suite skipped because of it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! bash scripts/setup.sh --test; then
  printf '\ntests: 0 passed, 1 failed\nfailed:\n  scripts/setup.sh --test\n'
  exit 1
fi
source scripts/env.sh
logs=$(mktemp -d)

# This run's ports and names, so that runs on one host (from different checkouts) do not collide.
# A block of ports from base P: P for the Playwright server, P+1 for its fast twin, P+100, P+200,
# P+101 and P+201 for their worker processes on PostgreSQL (end2end/serve.sh), P+2 for the wechatpy
# run. P is one of 20000, 20004, ... 20096 (below Linux's ephemeral ports, which the cargo suites'
# servers get), the first from a start that depends on $$ whose ports can all be bound now and
# whose lock file no other run holds: the lock stays held until this script and its children end,
# so a run still in its cargo suites keeps its block.
ports_free() { # ports_free <port...>: true when each can be bound on 127.0.0.1
  python3 - "$@" <<'PY'
import socket, sys
for port in sys.argv[1:]:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError:
            sys.exit(1)
PY
}
e2e_port=""
for i in $(seq 0 24); do
  base=$((20000 + 4 * (($$ + i) % 25)))
  { exec {port_lock}>>"${TMPDIR:-/tmp}/scanpay-test-ports-$base.lock"; } 2>/dev/null || continue
  if flock -n "$port_lock" && ports_free "$base" $((base + 1)) $((base + 2)) \
       $((base + 100)) $((base + 101)) $((base + 200)) $((base + 201)); then
    e2e_port=$base
    break
  fi
  exec {port_lock}>&-
done
if [ -z "$e2e_port" ]; then
  printf '\ntests: 0 passed, 1 failed\nfailed:\n  no free port block in 20000-20297\n'
  exit 1
fi
# Names the end-to-end servers' databases, RabbitMQ queues and Redis keys: scanpay_e2e_<id>_<port>.
run_id="${$}_$(printf '%04x' "$RANDOM")"
export E2E_PORT=$e2e_port E2E_RUN_ID=$run_id
echo "test run $run_id: end-to-end servers on 127.0.0.1:$E2E_PORT and :$((E2E_PORT + 1)), wechatpy on :$((E2E_PORT + 2)); logs in $logs"
e2e_engines_used=false  # set before a Playwright run on PostgreSQL/MariaDB, for clean_up
clean_up() { # drops this run's end-to-end databases, queues and keys (see end2end/serve.sh)
  $e2e_engines_used || return 0
  e2e_engines_used=false
  local port name ttl
  for port in "$E2E_PORT" $((E2E_PORT + 1)); do
    name="scanpay_e2e_${E2E_RUN_ID}_$port"
    psql "${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
    mysql -h "${TEST_MYSQL_HOST:-127.0.0.1}" -u root -e "DROP DATABASE IF EXISTS $name" || true
    ttl=15m; [ "$port" = $((E2E_PORT + 1)) ] && ttl=8s  # the fast server's order time (end2end/playwright.config.ts)
    SCANPAY_AMQP_URL=${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f} SCANPAY_AMQP_PREFIX=$name \
      SCANPAY_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0} SCANPAY_REDIS_PREFIX=$name \
      SCANPAY_ORDER_TTL=$ttl SCANPAY_SANDBOX_MIN_EXPIRE=1s "${CARGO_TARGET_DIR:-target}/debug/scanpay" purge-engines --yes || true
  done
}
# Also when the run stops early (interrupted, or an error in this script).
trap 'set +e; clean_up' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
passed=0
failed=0
failed_suites=()
count() { # count <log> <regex matching "N passed"> <regex matching "N failed">
  local p f
  p=$(grep -oE "$2" "$1" | awk '{s+=$1} END {print s+0}' || true)
  f=$(grep -oE "$3" "$1" | awk '{s+=$1} END {print s+0}' || true)
  suite_failed=${f:-0}
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}
section() { printf '\n==== %s\n' "$*"; }
# suite <name> <log> <"N passed" regex> <"N failed" regex> <command...>: runs it to the end,
# shows and keeps its output, and counts its results.
suite() {
  local name=$1 log="$logs/$2.log" pass_re=$3 fail_re=$4 status
  shift 4
  set +e
  "$@" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  set -e
  count "$log" "$pass_re" "$fail_re"
  if [ "$status" -ne 0 ] && [ "$suite_failed" -eq 0 ]; then
    echo "FAILED: $name: exit status $status and no failed test reported (counted as 1 failed; log: $log)"
    failed=$((failed + 1))
  fi
  if [ "$status" -ne 0 ] || [ "$suite_failed" -gt 0 ]; then failed_suites+=("$name"); fi
}
# build <name> <log> <command...>: runs a build step, shows the end of its output; false if it
# failed (counted as 1 failed).
build() {
  local name=$1 log="$logs/$2.log" status=0
  shift 2
  "$@" >"$log" 2>&1 || status=$?
  if [ "$status" -eq 0 ]; then tail -n 3 "$log"; return 0; fi
  tail -n 40 "$log"
  echo "FAILED: $name: exit status $status (counted as 1 failed; full log: $log)"
  failed=$((failed + 1)); failed_suites+=("$name")
  return 1
}
skip() { # skip <name> <why>: a suite that cannot run counts as 1 failed
  echo "SKIPPED: $1: $2 (counted as 1 failed)"
  failed=$((failed + 1)); failed_suites+=("$1 (skipped: $2)")
}
in_e2e() { (cd end2end && "$@"); }
cargo_re=('[0-9]+ passed;' '[0-9]+ failed;')
pytest_re=('[0-9]+ passed' '[0-9]+ failed')
playwright_re=('^ +[0-9]+ passed' '^ +[0-9]+ failed')

section "cargo test (unit + integration on SQLite; the store contract on SQLite, PostgreSQL and MariaDB)"
suite "cargo test" cargo "${cargo_re[@]}" \
  cargo test --no-fail-fast --features ssr -- --show-output

# PostgreSQL runs with RabbitMQ + Redis (the scaled-out engines), MariaDB with the embedded bus.
# The tests marked #[ignore = "PostgreSQL only …"] need PostgreSQL itself (its outage, the
# scaled-out processes on it): they run here, once, instead of in every engine's run.
for engine in postgres mysql; do
  # The model test: 150 cases on MariaDB; 40 on PostgreSQL, where each case also sets up and
  # removes its own RabbitMQ topology and Redis keys (about 3 s a case).
  engines="" only_here="" cases=${PROPTEST_CASES_ENGINES:-150}
  [ "$engine" = postgres ] && engines="rabbitmq+redis" only_here="--include-ignored" cases=${PROPTEST_CASES_FULL:-40}
  section "integration tests on $engine ${engines:++ $engines }(each test its own database, queues and keys; model test: $cases cases)"
  suite "cargo integration tests on $engine${engines:+ + $engines}" "cargo-$engine" "${cargo_re[@]}" \
    env TEST_DATABASE=$engine TEST_ENGINES=$engines PROPTEST_CASES="$cases" \
    cargo test --no-fail-fast --features ssr --test integration -- --show-output $only_here
done

# API v3: the same integration tests with the shop speaking WeChat Pay v3 to the sandbox (the
# shopper walk, refunds, reconciliation, the model test, the faults), once, on SQLite. The tests
# that start scanpay as processes of their own (processes::, and mtls::, v2's mutual TLS) set
# their whole environment and speak v2 whatever the suite says: they ran above, not again here.
section "integration tests on WeChat Pay API v3 (SQLite; model test: ${PROPTEST_CASES_V3:-100} cases)"
suite "cargo integration tests on API v3" cargo-v3 "${cargo_re[@]}" \
  env TEST_WXPAY_API=v3 PROPTEST_CASES="${PROPTEST_CASES_V3:-100}" \
  cargo test --no-fail-fast --features ssr --test integration -- --show-output \
  --skip mtls:: --skip processes::

section "build (debug): server + WASM"
debug_built=true
build "build (debug)" build-debug cargo leptos build || debug_built=false
no_debug="the debug build failed, not run against an old binary"

section "third-party clients (wechatpy on v2, wechatpayv3 on v3) against the sandbox"
if $debug_built; then
  suite "wechatpy and wechatpayv3 against the sandbox" pytest "${pytest_re[@]}" \
    env THIRDPARTY_PORT=$((E2E_PORT + 2)) bash tests/thirdparty/run.sh
else
  skip "wechatpy and wechatpayv3 against the sandbox" "$no_debug"
fi

section "Playwright, debug build"
if $debug_built; then
  suite "Playwright, debug build" e2e-debug "${playwright_re[@]}" \
    in_e2e env E2E_PROFILE=debug npx playwright test
else
  skip "Playwright, debug build" "$no_debug"
fi

section "Playwright happy paths, debug build, on WeChat Pay API v3"
if $debug_built; then
  suite "Playwright happy paths on API v3" e2e-v3 "${playwright_re[@]}" \
    in_e2e env SCANPAY_WXPAY_API=v3 E2E_PROFILE=debug npx playwright test tests/checkout.spec.ts
else
  skip "Playwright happy paths on API v3" "$no_debug"
fi

for engine in postgres mysql; do
  # PostgreSQL: one web and two worker processes on RabbitMQ + Redis (end2end/serve.sh).
  engines=""
  [ "$engine" = postgres ] && engines="rabbitmq+redis"
  section "Playwright happy paths, debug build, on $engine ${engines:+(+ $engines, one web and two worker processes)}"
  name="Playwright happy paths on $engine${engines:+ + $engines}"
  if $debug_built; then
    e2e_engines_used=true
    suite "$name" "e2e-$engine" "${playwright_re[@]}" \
      in_e2e env E2E_DATABASE=$engine E2E_ENGINES=$engines E2E_PROFILE=debug npx playwright test tests/checkout.spec.ts
  else
    skip "$name" "$no_debug"
  fi
done
clean_up

section "build (release): server + WASM through wasm-opt, files precompressed (brotli, gzip)"
release_built=true
build "build (release)" build-release cargo leptos build --release --precompress || release_built=false
if $release_built; then ls -l target/site/pkg/ || true; fi

section "Playwright, release build"
if $release_built; then
  suite "Playwright, release build" e2e-release "${playwright_re[@]}" \
    in_e2e env E2E_PROFILE=release npx playwright test
else
  skip "Playwright, release build" "the release build failed, not run against an old binary"
fi

echo
echo "tests: $passed passed, $failed failed"
if [ "$failed" -gt 0 ] || [ ${#failed_suites[@]} -gt 0 ]; then
  echo "failed:"
  printf '  %s\n' "${failed_suites[@]}"
  exit 1
fi

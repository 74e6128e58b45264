#!/usr/bin/env bash
# Starts the built scanpay binary for Playwright on a fresh database: a new SQLite file, or with
# E2E_DATABASE=postgres|mysql a new database on the local server, made anew at each start
# (scripts/test.sh drops it after the run). E2E_PORT (default 3400) is the port; with scaled-out
# engines the workers listen on E2E_PORT + 100 and + 200. The database, queues and keys are named
# scanpay_e2e_<port>, or scanpay_e2e_<E2E_RUN_ID>_<port> when scripts/test.sh sets a run id.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-debug}
target=${CARGO_TARGET_DIR:-target}
port=${E2E_PORT:-3400}
name="scanpay_e2e_${E2E_RUN_ID:+${E2E_RUN_ID}_}$port"
export LEPTOS_SITE_ADDR="127.0.0.1:$port"
export LEPTOS_SITE_ROOT=target/site
export LEPTOS_SITE_PKG_DIR=pkg
export LEPTOS_OUTPUT_NAME=scanpay
export SCANPAY_SANDBOX_TIME_SCALE=${SCANPAY_SANDBOX_TIME_SCALE:-0.01}
# Every test shopper comes from 127.0.0.1: the per-address limit is tested in the cargo suite.
export SCANPAY_LIMIT_ORDERS_PER_MINUTE=${SCANPAY_LIMIT_ORDERS_PER_MINUTE:-10000}
export SCANPAY_LIMIT_CANCELS_PER_MINUTE=${SCANPAY_LIMIT_CANCELS_PER_MINUTE:-10000}
# The sandbox's trade bill for today is ready at once: tests/reconciliation.spec.ts reconciles
# the day it paid in (WeChat's own bill comes the morning after).
export SCANPAY_SANDBOX_BILL_READY_AFTER=${SCANPAY_SANDBOX_BILL_READY_AFTER:-0s}
# The console's operator for tests/console.spec.ts, made as a fresh install makes its first one:
# `scanpay operator add`, the password on standard input, before the server has ever run.
add_operator() {
  printf '%s\n' "e2e operator password" |
    "$target/$profile/scanpay" operator add e2e-otto --role operator >/dev/null
}
case "${E2E_DATABASE:-sqlite}" in
  sqlite)
    db_dir=$(mktemp -d)
    export SCANPAY_DATABASE_URL="sqlite://$db_dir/e2e.db"
    add_operator
    exec "$target/$profile/scanpay"
    ;;
  postgres)
    admin=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
    # One database per port (and run), made anew each start; scripts/test.sh drops it after the run.
    psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name"
    export SCANPAY_DATABASE_URL="${admin%/*}/$name"
    add_operator
    pids=()
    if [ "${E2E_ENGINES:-}" = "rabbitmq+redis" ]; then
      # Scaled out: one web process (with the sandbox) and two workers, on RabbitMQ + Redis
      # under names of this server's own (removed again by purge-engines at exit).
      export SCANPAY_AMQP_URL=${TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
      export SCANPAY_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
      export SCANPAY_AMQP_PREFIX=$name SCANPAY_REDIS_PREFIX=$name
      export SCANPAY_PUBLIC_URL="http://$LEPTOS_SITE_ADDR"
      export SCANPAY_WXPAY_BASE_URL="$SCANPAY_PUBLIC_URL/sandbox/"
      SCANPAY_SANDBOX=true "$target/$profile/scanpay" --role web &
      pids+=($!)
      for i in 1 2; do
        SCANPAY_SANDBOX=false LEPTOS_SITE_ADDR="127.0.0.1:$((port + 100 * i))" \
          "$target/$profile/scanpay" --role worker &
        pids+=($!)
      done
    else
      "$target/$profile/scanpay" &
      pids+=($!)
    fi
    cleanup() {
      kill -TERM "${pids[@]}" 2>/dev/null || true
      wait "${pids[@]}" 2>/dev/null || true
      if [ "${E2E_ENGINES:-}" = "rabbitmq+redis" ]; then
        "$target/$profile/scanpay" purge-engines --yes || true
      fi
      psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
    }
    trap cleanup EXIT INT TERM
    wait "${pids[0]}"
    ;;
  mysql)
    # The same for MySQL/MariaDB (root without a password on the local test server by default).
    mysql -h "${TEST_MYSQL_HOST:-127.0.0.1}" -u root \
      -e "DROP DATABASE IF EXISTS $name; CREATE DATABASE $name CHARACTER SET utf8mb4"
    export SCANPAY_DATABASE_URL="mysql://root@${TEST_MYSQL_HOST:-127.0.0.1}:3306/$name"
    add_operator
    exec "$target/$profile/scanpay"
    ;;
  *) echo "E2E_DATABASE=${E2E_DATABASE}: sqlite, postgres or mysql" >&2; exit 2 ;;
esac

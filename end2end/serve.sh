#!/usr/bin/env bash
# Starts the built scanpay binary for Playwright on a fresh database.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-debug}
target=${CARGO_TARGET_DIR:-target}
db_dir=$(mktemp -d)
export LEPTOS_SITE_ADDR="127.0.0.1:${E2E_PORT:-3400}"
export LEPTOS_SITE_ROOT=target/site
export LEPTOS_SITE_PKG_DIR=pkg
export LEPTOS_OUTPUT_NAME=scanpay
export SCANPAY_DATABASE_URL="sqlite://$db_dir/e2e.db"
export SCANPAY_SANDBOX_TIME_SCALE=${SCANPAY_SANDBOX_TIME_SCALE:-0.01}
# Every test shopper comes from 127.0.0.1: the per-address limit is tested in the cargo suite.
export SCANPAY_LIMIT_ORDERS_PER_MINUTE=${SCANPAY_LIMIT_ORDERS_PER_MINUTE:-10000}
exec "$target/$profile/scanpay"

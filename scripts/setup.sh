#!/usr/bin/env bash
# Installs what scanpay needs to build (and with --test, to test) on a fresh Debian machine.
# Idempotent: each step is skipped when its tool is already there at the right version.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
for_tests=false
[ "${1:-}" = "--test" ] && for_tests=true

WASM_BINDGEN_VERSION=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
CARGO_LEPTOS_VERSION=0.3.10

step() { printf '\n== setup: %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  step "wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 8 minutes)"
  # Not --locked: its lockfile pins a crate version the registry does not serve.
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback \
    cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --force
fi

if [ "$(cargo-leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  step "cargo-leptos $CARGO_LEPTOS_VERSION (about 9 minutes)"
  # --debug: a quarter of the build time and just as good at driving builds;
  # no_downloads: a missing tool is a clear error instead of a failed download.
  cargo install cargo-leptos --version "=$CARGO_LEPTOS_VERSION" --locked --features no_downloads --debug --force
fi

if $for_tests && ! command -v psql >/dev/null 2>&1; then
  step "Debian postgresql-client (tests create and drop their own databases)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null
fi

if $for_tests && ! command -v mysql >/dev/null 2>&1; then
  step "Debian mariadb-client (Playwright's MySQL run makes its own database)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-client >/dev/null
fi

if $for_tests && ! command -v chromium >/dev/null 2>&1; then
  step "Debian chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Playwright and wasm-opt (npm's binaryen; Debian's binaryen 108 emits a WASM that fails hydration).
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ ! -d end2end/node_modules/@playwright/test ] \
   || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  step "npm packages for end2end/ (Playwright, binaryen)"
  (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi

if [ "$(wasm-opt --version 2>/dev/null | awk '{print $3}')" != "132" ]; then
  echo "setup: wasm-opt on PATH is not npm's binaryen 132: $(command -v wasm-opt || echo none)" >&2
  exit 1
fi

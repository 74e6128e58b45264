#!/usr/bin/env bash
# Runs scanpay on embedded defaults (SQLite file, in-process bus and sandbox) at
# http://127.0.0.1:3000. Extra arguments go to cargo-leptos, e.g. --release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
exec cargo leptos serve "$@"

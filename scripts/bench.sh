#!/usr/bin/env bash
# Runs one benchmark in a release build and prints its figures (docs/BENCHMARKS.md has the last
# ones). Usage: scripts/bench.sh lifecycle | burst | bundle | notify-to-success; scripts/bench.sh store [sqlite postgres mysql]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
name=${1:?usage: scripts/bench.sh NAME (lifecycle | store | burst | bundle | notify-to-success) [ENGINE…]}
shift
case "$name" in
  bundle) exec bash scripts/bundle.sh ;;
  notify-to-success) exec bash scripts/notify-to-success.sh "$@" ;;
esac
exec cargo bench --features ssr --bench "$name" -- "$@"

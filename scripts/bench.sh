#!/usr/bin/env bash
# Runs one benchmark in a release build and prints its figures (docs/BENCHMARKS.md has the last
# ones). Usage: scripts/bench.sh lifecycle | burst | http | console | recon | v3 | bundle | notify-to-success | throttled; scripts/bench.sh store [sqlite postgres mysql]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
name=${1:?usage: scripts/bench.sh NAME (lifecycle | store | burst | http | console | recon | v3 | bundle | notify-to-success | throttled) [ENGINE…]}
shift
case "$name" in
  bundle) exec bash scripts/bundle.sh ;;
  notify-to-success | throttled) exec bash scripts/browser-bench.sh "$name" "$@" ;;
esac
exec cargo bench --features ssr --bench "$name" -- "$@"

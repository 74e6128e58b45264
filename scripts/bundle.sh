#!/usr/bin/env bash
# Benchmark: the size of the front end a shopper downloads (hydrate WASM + JS glue + CSS), raw,
# gzip -9 and brotli -q 11, beside the floor measured in the same run: a minimal Leptos 0.8 router
# app built the same way (benches/bundle-floor), and that app with leptos_i18n.
# Run: scripts/bench.sh bundle. Figures: docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
command -v brotli >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq brotli >/dev/null; }
cargo leptos build --release --precompress 2>&1 | tail -n 1
target=${CARGO_TARGET_DIR:-target}
sizes() { # sizes FILE → "raw gzip brotli"
  echo "$(wc -c < "$1") $(gzip -9 -c "$1" | wc -c) $(brotli -q 11 -c "$1" | wc -c)"
}
hash() { sed -n "s/^$1: //p" "$target/release/hash.txt"; }
read -r wr wg wb < <(sizes "target/site/pkg/scanpay.$(hash wasm).wasm")
read -r jr jg jb < <(sizes "target/site/pkg/scanpay.$(hash js).js")
read -r cr cg cb < <(sizes "target/site/pkg/scanpay.$(hash css).css")

floor() { # floor VARIANT [FEATURES…] → "wasm_raw wasm_gz wasm_br js_br"
  local out="$target/bundle-floor/out-$1"; shift
  (cd benches/bundle-floor && CARGO_TARGET_DIR="$target/bundle-floor" \
    cargo build -q --lib --target wasm32-unknown-unknown --profile wasm-release "$@")
  rm -rf "$out" && wasm-bindgen --target web --out-dir "$out" "$target/bundle-floor/wasm32-unknown-unknown/wasm-release/bundle_floor.wasm"
  wasm-opt -Oz "$out/bundle_floor_bg.wasm" -o "$out/opt.wasm"
  echo "$(sizes "$out/opt.wasm") $(brotli -q 11 -c "$out/bundle_floor.js" | wc -c)"
}
read -r fr fg fb fj < <(floor plain)
read -r ir ig ib ij < <(floor i18n --features i18n)

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }
echo "| file | raw | gzip -9 | brotli -q 11 |"
echo "|---|---|---|---|"
echo "| scanpay WASM | $(kb $wr) | $(kb $wg) | $(kb $wb) |"
echo "| scanpay JS glue | $(kb $jr) | $(kb $jg) | $(kb $jb) |"
echo "| scanpay CSS | $(kb $cr) | $(kb $cg) | $(kb $cb) |"
echo "| **scanpay hydrate bundle (WASM + JS)** | $(kb $((wr + jr))) | $(kb $((wg + jg))) | **$(kb $((wb + jb)))** |"
echo "| floor: minimal router app (WASM + JS) | $(kb $fr) | $(kb $fg) | $(kb $((fb + fj))) |"
echo "| floor + leptos_i18n (WASM + JS) | $(kb $ir) | $(kb $ig) | $(kb $((ib + ij))) |"
awk -v s=$((wb + jb)) -v f=$((fb + fj)) -v i=$((ib + ij)) 'BEGIN {
  printf "scanpay / floor (brotli): %.2f\n", s / f
  printf "budget 175 KB brotli (1.25 x the 139 KB floor of a router app with server functions, measured before): %s\n", (s <= 175 * 1024 ? "met" : "NOT met")
  printf "leptos_i18n adds to the floor: %.1f KB brotli (%.0f%%)\n", (i - f) / 1024, 100 * (i - f) / f
}'

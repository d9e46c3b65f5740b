#!/usr/bin/env bash
# Builds gpo-wasm's browser bundles into gpo-wasm/www/:
#   www/pkg/         CPU only (burn-ndarray), the page's default: small
#   www/pkg-text/    CPU with the sentence encoder (feature `text`: tokenizers), loaded by the CPU
#                    page on the first typed question
#   www/pkg-webgpu/  WebGPU (burn-wgpu) with the CPU fallback and the encoder: ~8x larger, loaded
#                    with ?backend=webgpu
#
# usage: gpo-wasm/build.sh [--cpu-only] [--wasm-opt] [--lint] [--quick]
#
# --cpu-only: pkg and pkg-text only.
# --lint: clippy (`-D warnings`) on gpo-wasm while it compiles (.ci/clippy-env.sh), as CI runs it.
# --quick: the same code at opt-level 3 without fat LTO and with 16 codegen units per crate (CI: it
#          tests what the bundles compute, not their size; the shipped bundles are built without it).
#
# Needs: rustup target wasm32-unknown-unknown; wasm-bindgen-cli at the exact version of the
# wasm-bindgen crate in Cargo.lock (installed here if missing, with `cargo install` *without*
# --locked); with --wasm-opt, Debian's binaryen wasm-opt -O3 (off by default: binaryen 108 breaks
# wasm-bindgen 0.2.130's externref table init, "WebAssembly.Table.set(): Argument 1 is invalid",
# and saves only ~2% gzip).
# Honours CARGO_TARGET_DIR. Prints the sizes (raw and gzip -9) at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
webgpu=1
opt=0
quick=0
for arg in "$@"; do
  case "$arg" in
    --cpu-only) webgpu=0 ;;
    --wasm-opt) opt=1 ;;
    --lint) source .ci/clippy-env.sh ;;
    --quick) quick=1 ;;
    *) echo "usage: $0 [--cpu-only] [--wasm-opt] [--lint] [--quick]" >&2; exit 2 ;;
  esac
done
target_dir="${CARGO_TARGET_DIR:-$root/target}"

# wasm-bindgen-cli must match the crate exactly (the generated glue and the wasm's custom section
# are version-locked).
version="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $version" ]; then
  echo "== installing wasm-bindgen-cli $version"
  cargo install wasm-bindgen-cli --version "$version"
fi
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true

# Release profile tuned for size without giving up speed (the CPU path must stay < 50 ms):
# fat LTO and one codegen unit; wasm SIMD for the CPU kernels (Chrome ≥ 91, Firefox ≥ 89,
# Safari ≥ 16.4).
export CARGO_PROFILE_RELEASE_LTO=fat
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
if [ "$quick" = 1 ]; then
  echo "== --quick: no fat LTO, 16 codegen units (sizes below are not the shipped bundles')"
  export CARGO_PROFILE_RELEASE_LTO=false
  export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128"

wasm_opt_flags=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd)

bundle() { # name, cargo feature args...
  local out="gpo-wasm/www/$1"; shift
  echo "== cargo build gpo-wasm $* -> $out"
  cargo build -p gpo-wasm --lib --release --target wasm32-unknown-unknown "$@"
  rm -rf "$out"
  wasm-bindgen --target web --out-dir "$out" "$target_dir/wasm32-unknown-unknown/release/gpo_wasm.wasm"
  if [ "$opt" = 1 ] && command -v wasm-opt >/dev/null; then
    echo "== wasm-opt -O3 $out/gpo_wasm_bg.wasm"
    wasm-opt -O3 "${wasm_opt_flags[@]}" "$out/gpo_wasm_bg.wasm" -o "$out/gpo_wasm_bg.wasm.opt"
    mv "$out/gpo_wasm_bg.wasm.opt" "$out/gpo_wasm_bg.wasm"
  fi
  local raw gz
  raw=$(stat -c %s "$out/gpo_wasm_bg.wasm")
  gz=$(gzip -9 -c "$out/gpo_wasm_bg.wasm" | wc -c)
  echo "== $out/gpo_wasm_bg.wasm: $raw bytes raw, $gz bytes gzip -9"
}

bundle pkg
bundle pkg-text --features text
if [ "$webgpu" = 1 ]; then
  bundle pkg-webgpu --features webgpu
fi

# Sourced by .ci/run and gpo-wasm's scripts: makes clippy-driver the compiler of the workspace's
# own crates (RUSTC_WORKSPACE_WRAPPER, the driver `cargo clippy` runs), so that a build lints
# (`-D warnings`) while it compiles; dependencies are still built by plain rustc. One build then
# serves clippy and the tests (or the bundle) instead of a `cargo check` pass beside it.
RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS

//! The workspace's tests that span its crates, one test binary (`cargo test -p gpo-tests`):
//! gpo-train's evaluation, the exported `.gpo`, gpo-core's `Predictor` and the `gpo` command line
//! must agree, and the README shows what the code does. Tests of one crate stay in that crate.

mod common;
mod docs;
mod inference_path;
mod round_trip;

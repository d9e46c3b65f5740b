//! gpo-core's integration tests, one test binary (`cargo test -p gpo-core --test it`): each module
//! was a test binary of its own, and every binary linked and monomorphised the Burn stack again.
//! Filter by module: `cargo test -p gpo-core --test it model_file::`.

mod common;
mod invariants;
mod metrics;
mod model_file;
mod parity;
mod prior;

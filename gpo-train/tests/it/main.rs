//! gpo-train's integration tests, one test binary (`cargo test -p gpo-train --test it`): each
//! module was a test binary of its own, and every binary linked and monomorphised the Burn stack
//! again (most of CI's build time). Filter by module: `cargo test -p gpo-train --test it fuzz_cli::`.

mod backend_parity;
mod cli_bank;
mod cli_embed_import;
mod cli_encoder;
mod cli_kill_resume;
mod cli_logs;
mod cli_predict;
mod common;
mod config_bounds;
mod data_bundle;
mod data_globalopinionqa;
mod data_notebook;
mod data_opinionqa;
mod data_select;
mod data_tidy;
mod embed_cache;
mod embed_reference;
mod fuzz_cli;
mod fuzz_inputs;
mod llm_baselines;
mod llm_gguf;
mod train_synthetic;

//! The `gpo` command line.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

mod cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    gpo_train::allocator::keep_freed_memory();
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(if args.quiet { "warn" } else { "info" })),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: `gpo run … 2> log` gets plain text. (Progress bars hide
        // themselves when stderr is not a terminal: indicatif's default draw target.)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    match cli::execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole chain on one line: `what failed: why`.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

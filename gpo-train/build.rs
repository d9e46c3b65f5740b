//! Whether `../shared` (the reference data and models that sit beside the repository, not in
//! it) is there, for the integration tests that read it. Without it, those tests are compiled
//! `#[ignore]`d with the reason (`cfg(gpo_no_shared)`), so `cargo test --workspace` passes in a
//! plain clone and lists what it did not run; with `GPO_REQUIRE_SHARED=1` (CI) a missing
//! `../shared` fails the build instead, so they are never skipped where they matter.

use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gpo_no_shared)");
    println!("cargo::rerun-if-env-changed=GPO_REQUIRE_SHARED");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let shared = Path::new(&manifest).join("../../shared");
    // A folder: cargo compares the newest time of everything in it (a missing path: every build).
    println!("cargo::rerun-if-changed={}", shared.display());
    let present = ["data", "models"].iter().all(|sub| shared.join(sub).is_dir());
    if present {
        return;
    }
    let required = std::env::var("GPO_REQUIRE_SHARED").is_ok_and(|v| !v.is_empty() && v != "0");
    if required {
        eprintln!(
            "GPO_REQUIRE_SHARED is set, but {} has no data/ and models/ folders: the tests that read them cannot run",
            shared.display()
        );
        std::process::exit(1);
    }
    println!(
        "cargo::warning=no ../shared beside the repository ({}): the tests that read it are ignored",
        shared.display()
    );
    println!("cargo::rustc-cfg=gpo_no_shared");
}

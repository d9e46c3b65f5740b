//! Whether `../shared` (the reference data and models that sit beside the repository, not in
//! it) is there, for the integration tests that read it. Without it, those tests are compiled
//! `#[ignore]`d with the reason (`cfg(gpo_no_shared)`), so `cargo test --workspace` passes in a
//! plain clone and lists what it did not run; with `GPO_REQUIRE_SHARED=1` (CI) a missing
//! `../shared` fails the build instead, so they are never skipped where they matter.

//!
//! Likewise the wgpu parity tests: on Linux without a Vulkan driver (an ICD manifest in the
//! loader's folders, or named by `VK_ICD_FILENAMES` / `VK_DRIVER_FILES`) they are compiled
//! ignored (`cfg(gpo_no_vulkan)`), saying so, instead of passing without checking.

use std::path::Path;

/// Folders where the Vulkan loader finds driver manifests on Linux.
const ICD_FOLDERS: [&str; 4] =
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/usr/local/etc/vulkan/icd.d"];

/// Whether a Vulkan driver is installed (Linux; elsewhere wgpu has Metal or DirectX).
fn vulkan_driver() -> bool {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return true;
    }
    for variable in ["VK_ICD_FILENAMES", "VK_DRIVER_FILES"] {
        println!("cargo::rerun-if-env-changed={variable}");
        if std::env::var_os(variable).is_some_and(|v| !v.is_empty()) {
            return true;
        }
    }
    ICD_FOLDERS.iter().any(|folder| {
        println!("cargo::rerun-if-changed={folder}");
        std::fs::read_dir(folder)
            .is_ok_and(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "json")))
    })
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gpo_no_vulkan)");
    if !vulkan_driver() {
        println!("cargo::rustc-cfg=gpo_no_vulkan");
        if std::env::var_os("CARGO_FEATURE_WGPU").is_some() {
            println!("cargo::warning=no Vulkan driver: the wgpu parity tests are ignored");
        }
    }
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

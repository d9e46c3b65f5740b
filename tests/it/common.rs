//! Helpers of the cross-crate tests: the repository, and the `gpo` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `gpo` binary of this build. Another package's binary has no `CARGO_BIN_EXE_*`, so it is
/// built here by the cargo running these tests, as `cargo test --workspace` builds it (the same
/// packages, features and profile): after that command it is fresh and nothing is compiled, and
/// after `cargo test -p gpo-tests` it is never a stale one.
pub fn gpo_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let mut build = Command::new(env!("CARGO"));
        build.args(["test", "--workspace", "--no-run", "--message-format", "short"]);
        if gpo_train::WGPU_FEATURE {
            build.args(["--features", "gpo-train/wgpu"]);
        }
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let built = build.current_dir(repo()).output().expect("cargo runs");
        assert!(built.status.success(), "building gpo: {}", String::from_utf8_lossy(&built.stderr));
        let test_binary = std::env::current_exe().expect("the test binary");
        let profile = test_binary.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
        let gpo = profile.join(format!("gpo{}", std::env::consts::EXE_SUFFIX));
        assert!(gpo.is_file(), "{} is missing after the build", gpo.display());
        gpo
    })
}

/// Runs `gpo` with `args` in the repository's root: (success, stdout, stderr).
pub fn gpo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(gpo_binary()).args(args).current_dir(repo()).output().expect("gpo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The largest absolute difference between two lists of distributions of the same shape.
pub fn max_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| {
            assert_eq!(p.len(), q.len());
            p.iter().zip(q).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0, f64::max)
}

/// The distributions of `gpo predict`'s JSON output.
pub fn predicted(stdout: &str) -> Vec<Vec<f64>> {
    let value: serde_json::Value = serde_json::from_str(stdout).expect("gpo predict prints JSON");
    value["predictions"]
        .as_array()
        .expect("a list of predictions")
        .iter()
        .map(|p| {
            p["distribution"]
                .as_array()
                .expect("a distribution")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect()
        })
        .collect()
}

//! The README and docs/ describe the repository as it is: the README's Rust example is the
//! compiled example gpo-core ships, every relative link points at a file, and nothing a reader
//! needs lies outside the repository.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The code lines of a Rust source, without comments and blank lines.
fn code(text: &str) -> Vec<&str> {
    text.lines().map(str::trim_end).filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).collect()
}

#[test]
fn the_readme_example_is_the_compiled_one() {
    let readme = read("README.md");
    let start = readme.find("```rust\n").expect("a Rust example in the README") + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("its end");
    assert_eq!(code(&readme[start..end]), code(&read("gpo-core/examples/predict_text.rs")));
}

#[test]
fn the_readme_is_short_and_every_link_resolves() {
    let readme = read("README.md");
    assert!(readme.lines().count() <= 150, "README.md has {} lines", readme.lines().count());
    let docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    for page in std::iter::once("README.md".to_string()).chain(docs) {
        let text = read(&page);
        let base = Path::new(&page).parent().unwrap_or(Path::new(""));
        for link in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            if link.starts_with("http") || link.starts_with('#') {
                continue;
            }
            let target = repo().join(base).join(link.split('#').next().unwrap_or_default());
            assert!(target.exists(), "{page}: the link `{link}` points at nothing");
        }
        assert!(!text.contains("../shared/GPO-SPEC"), "{page} sends the reader outside the repository");
    }
}

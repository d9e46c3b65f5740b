//! `gpo data summary` and `gpo data tidy`.

use std::path::Path;

use gpo_train::data::Loaded;
use gpo_train::pipeline::{Loader, load_survey, select_groups};

pub fn summary(
    source: &Path,
    loader: Option<Loader>,
    questions: Option<&Path>,
    groups: Option<&[String]>,
) -> anyhow::Result<()> {
    let (loader, loaded) = load(source, loader, questions)?;
    println!("loaded {} with the {loader:?} loader", source.display());
    println!("{}", loaded.survey.summary());
    for (reason, n) in loaded.skipped_counts() {
        println!("skipped {n}: {reason}");
    }
    let (selected, report) = select_groups(&loaded, groups).map_err(|e| anyhow::anyhow!("--groups: {e}"))?;
    println!("\nselection ({}):\n{report}", if groups.is_some() { "requested groups" } else { "GPO's groups" });
    println!("{}", selected.summary());
    Ok(())
}

/// Loads `source` with `loader` (guessed from the path when `None`).
fn load(source: &Path, loader: Option<Loader>, questions: Option<&Path>) -> anyhow::Result<(Loader, Loaded)> {
    if !source.exists() {
        anyhow::bail!("{}: No such file or directory", source.display());
    }
    let loader = loader
        .or_else(|| Loader::detect(source))
        .ok_or_else(|| anyhow::anyhow!("{}: cannot tell the format; pass --loader", source.display()))?;
    Ok((loader, load_survey(loader, source, questions)?))
}

pub fn tidy(
    source: &Path,
    out: &Path,
    loader: Option<Loader>,
    questions: Option<&Path>,
    groups: Option<&[String]>,
) -> anyhow::Result<()> {
    let (loader, loaded) = load(source, loader, questions)?;
    for (reason, n) in loaded.skipped_counts() {
        eprintln!("skipped {n}: {reason}");
    }
    let (selected, report) = select_groups(&loaded, groups).map_err(|e| anyhow::anyhow!("--groups: {e}"))?;
    eprint!("{report}");
    gpo_train::data::tidy::write_tidy(&selected, out)?;
    println!("{} ({loader:?}) → {} (tidy)\n{}", source.display(), out.display(), selected.summary());
    Ok(())
}

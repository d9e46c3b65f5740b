//! `gpo data summary`.

use std::path::Path;

use gpo_train::pipeline::{Loader, load_survey, select_groups};

pub fn summary(
    source: &Path,
    loader: Option<Loader>,
    questions: Option<&Path>,
    groups: Option<&[String]>,
) -> anyhow::Result<()> {
    if !source.exists() {
        anyhow::bail!("{}: No such file or directory", source.display());
    }
    let loader = loader
        .or_else(|| Loader::detect(source))
        .ok_or_else(|| anyhow::anyhow!("{}: cannot tell the format; pass --loader", source.display()))?;
    let loaded = load_survey(loader, source, questions)?;
    println!("loaded {} with the {loader:?} loader", source.display());
    println!("{}", loaded.survey.summary());
    for (reason, n) in loaded.skipped_counts() {
        println!("skipped {n}: {reason}");
    }
    let (selected, report) = select_groups(&loaded.survey, groups);
    println!("\nselection ({}):\n{report}", if groups.is_some() { "requested groups" } else { "GPO's groups" });
    println!("{}", selected.summary());
    Ok(())
}

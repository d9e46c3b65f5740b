//! `gpo run`.

use std::path::Path;

use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_train::config::RunConfig;
use gpo_train::run::{run_dir, run_experiment};

use super::BackendChoice;

pub fn run(
    config_path: &Path,
    resume: bool,
    out: &Path,
    backend: BackendChoice,
    jobs: Option<usize>,
) -> Result<(), String> {
    let config = RunConfig::load(config_path).map_err(|e| e.to_string())?;
    let dir = run_dir(out, &config);
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let results = match backend {
        BackendChoice::Ndarray => {
            run_experiment::<Autodiff<NdArray<f32>>>(&config, &dir, resume, jobs, &Default::default())
        }
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => {
            // burn-wgpu panics when no adapter exists: say so first, in one line.
            let adapter = gpo_train::gpu::wgpu_adapter().map_err(|e| format!("no wgpu adapter: {e}"))?;
            tracing::info!(%adapter, "wgpu backend");
            run_experiment::<Autodiff<gpo_train::gpu::Wgpu>>(&config, &dir, resume, jobs, &Default::default())
        }
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Wgpu => {
            return Err("this gpo was built without the `wgpu` feature (cargo build --features wgpu)".into());
        }
    }
    .map_err(|e| e.to_string())?;
    println!("{:<8} {:<16} {:>6} {:>16}", "split", "method", "k", "alignment");
    for e in &results.summary {
        println!(
            "{:<8} {:<16} {:>6} {:>9.4} ± {:.4}",
            format!("{:.0}%", e.train_fraction * 100.0),
            e.method,
            e.k,
            e.mean,
            e.std
        );
    }
    println!("wrote {}", dir.display());
    Ok(())
}

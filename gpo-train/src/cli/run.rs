//! `gpo run`.

use std::path::Path;

use burn_autodiff::Autodiff;
use burn_ndarray::NdArray;
use gpo_train::config::RunConfig;
use gpo_train::embed::EmbedProgress;
use gpo_train::eval::LlmProgress;
use gpo_train::method::Method;
use gpo_train::run::{RunError, run_dir, run_experiment};
use gpo_train::train::{ExperimentProgress, TrainProgress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::BackendChoice;

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar that comes and goes with a task (the texts embedded, a language model's tokens), drawn
/// beside the other bars when there are others.
#[derive(Default)]
pub(crate) struct TaskBar {
    /// Where the bar is drawn beside others (`gpo run`), if anywhere.
    multi: Option<MultiProgress>,
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl TaskBar {
    fn start(&self, prefix: &str, len: usize, template: &str) {
        let bar = ProgressBar::new(len as u64);
        let bar = match &self.multi {
            Some(multi) => multi.add(bar),
            None => bar,
        };
        bar.set_style(bar_style(template));
        bar.set_prefix(prefix.to_string());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn inc(&self, n: usize) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(n as u64);
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// `gpo embed`'s bar, and `gpo run`'s when its cache lacks texts.
impl EmbedProgress for TaskBar {
    fn embed_start(&self, texts: usize) {
        self.start("embedding", texts, "{prefix:>12} [{bar:30}] {pos}/{len} texts {per_sec} eta {eta}");
    }

    fn embedded(&self, texts: usize) {
        self.inc(texts);
    }

    fn embed_done(&self) {
        self.finish();
    }
}

/// Progress bars: one for the texts embedded first (if any), one for the experiment's runs, one
/// per worker thread for its updates, and one for the language model's tokens while the LLM
/// baselines are prompted.
struct Bars {
    multi: MultiProgress,
    texts: TaskBar,
    runs: ProgressBar,
    lm: TaskBar,
}

impl Bars {
    fn new() -> Self {
        let multi = MultiProgress::new();
        let runs = multi.add(ProgressBar::new(0));
        runs.set_style(bar_style("{prefix:>12} [{bar:30}] {pos}/{len} runs {msg}"));
        runs.set_prefix("experiment");
        let task = || TaskBar { multi: Some(multi.clone()), ..TaskBar::default() };
        Self { texts: task(), lm: task(), multi, runs }
    }
}

impl EmbedProgress for Bars {
    fn embed_start(&self, texts: usize) {
        self.texts.embed_start(texts);
    }

    fn embedded(&self, texts: usize) {
        self.texts.embedded(texts);
    }

    fn embed_done(&self) {
        self.texts.embed_done();
    }
}

/// One worker's bar of updates.
struct Steps(ProgressBar);

impl TrainProgress for Steps {
    fn start(&self, method: &Method, steps: usize, done: usize) {
        self.0.set_prefix(method.name());
        self.0.set_length(steps as u64);
        self.0.set_position(done as u64);
        self.0.reset_eta();
    }

    fn update(&self, done: usize, loss: f64, validation: Option<f64>) {
        self.0.set_position(done as u64);
        if let Some(v) = validation {
            self.0.set_message(format!("loss {loss:.3} val {v:.4}"));
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl ExperimentProgress for Bars {
    fn runs(&self, total: usize) {
        self.runs.set_length(total as u64);
    }

    fn worker(&self) -> Box<dyn TrainProgress + '_> {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(bar_style("{prefix:>12} [{bar:30}] {pos}/{len} updates {per_sec} eta {eta} {msg}"));
        Box::new(Steps(bar))
    }

    fn run_done(&self) {
        self.runs.inc(1);
    }
}

impl LlmProgress for Bars {
    fn lm_start(&self, method: &Method, tokens: usize) {
        self.lm.start(
            &method.name(),
            tokens,
            "{prefix:>12} [{bar:30}] {human_pos}/{human_len} tokens {per_sec} eta {eta}",
        );
    }

    fn lm_tokens(&self, tokens: usize) {
        self.lm.inc(tokens);
    }

    fn lm_done(&self) {
        self.lm.finish();
    }
}

pub fn run(
    config_path: &Path,
    resume: bool,
    out: &Path,
    backend: BackendChoice,
    jobs: Option<usize>,
) -> anyhow::Result<()> {
    let config = RunConfig::load(config_path)?;
    let dir = run_dir(out, &config);
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bars = Bars::new();
    let results = match backend {
        BackendChoice::Ndarray => {
            run_experiment::<Autodiff<NdArray<f32>>>(&config, &dir, resume, jobs, &Default::default(), &bars)
        }
        #[cfg(feature = "wgpu")]
        BackendChoice::Wgpu => {
            // burn-wgpu panics when no adapter exists: say so first, in one line.
            let adapter = gpo_train::gpu::wgpu_adapter().map_err(|e| anyhow::anyhow!("no wgpu adapter: {e}"))?;
            tracing::info!(%adapter, "wgpu backend");
            run_experiment::<Autodiff<gpo_train::gpu::Wgpu>>(&config, &dir, resume, jobs, &Default::default(), &bars)
        }
        #[cfg(not(feature = "wgpu"))]
        BackendChoice::Wgpu => {
            return Err(anyhow::anyhow!("this gpo was built without the `wgpu` feature (cargo build --features wgpu)"));
        }
    }
    .map_err(|e| match e {
        RunError::Config(e) => anyhow::anyhow!("{}: {e}", config_path.display()),
        e => e.into(),
    })?;
    bars.runs.finish_and_clear();
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

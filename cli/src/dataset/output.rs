//! What `dataset export` and `dataset import-labelbox` share on the command
//! line: the split options, the progress bar, and the summary.

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use modelobs_core::export::{SplitBy, SplitPlan};
use modelobs_pipeline::dataset_layout::{DatasetOutcome, Problem, Progress};

#[derive(Args, Debug)]
pub struct SplitArgs {
    /// Split into train / validation / test: `time` (oldest captures train, newest
    /// test) or `hash` (of the image bytes: stable as the dataset grows), written
    /// into each image's `split`. Without it, no split.
    #[arg(long, value_parser = |s: &str| s.parse::<SplitBy>())]
    pub split_by: Option<SplitBy>,
    /// The train,validation,test shares (default 0.8,0.1,0.1).
    #[arg(long, requires = "split_by", value_parser = parse_shares)]
    pub split: Option<[f64; 3]>,
}

/// Three shares that add up to 1, checked while the arguments are read (a usage error).
fn parse_shares(s: &str) -> Result<[f64; 3], modelobs_core::CoreError> {
    let shares = SplitPlan::parse_fractions(s)?;
    SplitPlan::new(SplitBy::Time, shares).map(|_| shares)
}

impl SplitArgs {
    pub fn plan(&self) -> Result<Option<SplitPlan>> {
        self.split_by
            .map(|by| SplitPlan::new(by, self.split.unwrap_or(SplitPlan::DEFAULT_FRACTIONS)))
            .transpose()
            .map_err(Into::into)
    }
}

/// A progress bar on stderr; what is skipped is said above it as it happens.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn new() -> Self {
        Self(
            ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} {msg} [{bar:40}] {pos}/{len} {per_sec}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
        )
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn start(&self, stage: &str, total: u64) {
        self.0.set_message(stage.to_string());
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self) {
        self.0.inc(1);
    }

    fn skipped(&self, problem: &Problem) {
        // `suspend`, not `println`: a hidden bar (stderr not a terminal) prints nothing.
        self.0.suspend(|| eprintln!("skipped {problem}"));
    }
}

/// Problems listed in the summary; the rest were on stderr.
const LISTED: usize = 10;

/// The summary on stdout: what was written, duplicates and what was skipped,
/// then `counts` (what else was found). Fails when nothing was written.
pub fn summarize(command: &str, outcome: &DatasetOutcome, counts: &[(&str, usize)]) -> Result<()> {
    let DatasetOutcome {
        duplicates,
        problems,
        written,
    } = outcome;
    for d in duplicates {
        eprintln!(
            "duplicate {} dropped: same image as {} (sha256 {})",
            d.dropped, d.kept, d.source
        );
    }
    match written {
        Some(w) => {
            let split = w.splits.map_or(String::new(), |[train, val, test]| {
                format!(" (train {train}, validation {val}, test {test})")
            });
            println!(
                "{command}: {} images, {} objects in {}{split}",
                w.images,
                w.objects,
                w.annotations.display()
            );
        }
        None => println!("{command}: nothing written"),
    }
    for (what, n) in counts {
        println!("  {what}: {n}");
    }
    println!("  duplicates dropped: {}", duplicates.len());
    println!("  skipped: {}", problems.len());
    for p in problems.iter().take(LISTED) {
        println!("    {p}");
    }
    if problems.len() > LISTED {
        println!(
            "    ... and {} more (all on stderr)",
            problems.len() - LISTED
        );
    }
    if written.is_none() {
        bail!("nothing written: no image passed the filters and checks");
    }
    Ok(())
}

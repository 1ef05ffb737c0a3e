//! `modelobs backtest`: a candidate model against the serving one on our own
//! labelled captures (`modelobs_pipeline::backtest`), before it serves anyone.
//!
//! The images come from `--data DIR` (a COCO directory, e.g. what `modelobs
//! dataset export` wrote) or, without it, from the bucket: the labelled
//! captures of `--from`/`--to`, exported into `OUT/dataset/` first. OUT also
//! gets `gt.json`, `baseline.json` and `candidate.json` (the judged images and
//! each model's detections: `modelobs eval --gt OUT/gt.json --dt
//! OUT/candidate.json` gives the same numbers) and `report.json`.
//!
//! Exit status: 0 with a verdict (whichever it is), 2 for bad input, 1 when
//! the bucket, a model or a file fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use modelobs_core::backtest::GroupComparison;
use modelobs_core::eval::bootstrap::BootstrapSettings;
use modelobs_core::export::ExportFilter;
use modelobs_detector::{DetectorConfig, OnnxDetector};
use modelobs_pipeline::backtest::{self, BacktestReport, BacktestRequest, TrainedOn};
use modelobs_pipeline::dataset_export::{ExportRequest, export};

use crate::dataset::output::Bar;
use crate::windows::parse_instant;

#[derive(Args, Debug)]
pub struct BacktestArgs {
    /// The candidate's model directory (or its model.json).
    #[arg(long)]
    candidate: PathBuf,
    /// The model it must beat (default: the serving model of the layer).
    #[arg(long, default_value = "models/nanodet")]
    baseline: PathBuf,
    /// A COCO dataset directory to judge on, instead of the bucket's labelled captures.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    data: Option<PathBuf>,
    /// Captured at or after, UTC (a date or a time); with the bucket.
    #[arg(long, value_parser = |s: &str| instant("--from", s, false))]
    from: Option<DateTime<Utc>>,
    /// Captured before, UTC (a date includes that day); with the bucket.
    #[arg(long, value_parser = |s: &str| instant("--to", s, true))]
    to: Option<DateTime<Utc>>,
    /// The simulator's truth file (`modelobs simulate --truth-out`): groups by drift condition.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Where the judged COCO files and report.json go.
    #[arg(long, default_value = ".cache/backtest")]
    out: PathBuf,
    /// Print report.json instead of the table.
    #[arg(long)]
    json: bool,
    /// Bootstrap replicates.
    #[arg(long, default_value_t = 1000)]
    replicates: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// ONNX Runtime intra-op threads per model (the two models run at once).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The data bucket (AWS_ENDPOINT_URL for LocalStack), without --data.
    #[arg(long, env = "DATA_BUCKET")]
    bucket: Option<String>,
}

fn instant(name: &str, s: &str, end: bool) -> Result<DateTime<Utc>, String> {
    parse_instant(name, s, end).map_err(|e| e.to_string())
}

fn model_json(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("model.json")
    } else {
        path.to_path_buf()
    }
}

fn load(path: &Path, threads: usize) -> Result<OnnxDetector> {
    let config = DetectorConfig {
        intra_op_threads: threads,
        ..DetectorConfig::new(path)
    };
    OnnxDetector::load(&config).with_context(|| format!("loading {}", path.display()))
}

/// The labelled captures of the range, exported into `OUT/dataset/` (replacing one there).
fn export_from_bucket(args: &BacktestArgs) -> Result<PathBuf> {
    let bucket = args
        .bucket
        .clone()
        .context("--data DIR, or --bucket / DATA_BUCKET for the bucket's labelled captures")?;
    let dir = args.out.join("dataset");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let request = ExportRequest {
        filter: ExportFilter {
            from: args.from,
            to: args.to,
            model_version: None,
            label_source: None,
            reason: None,
        },
        split: None,
        concurrency: 16,
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = crate::bucket_store(&bucket).await;
            export(&store, &request, &dir, &Bar::new()).await
        })?;
    // What was skipped was said on stderr as it happened (the bar).
    if report.outcome.written.is_none() {
        bail!(
            "no labelled captures in the bucket for this range ({} labels, {} outside it)",
            report.labels,
            report.outside_range
        );
    }
    Ok(dir)
}

fn conditions(path: &Path) -> Result<HashMap<modelobs_core::records::CaptureId, String>> {
    Ok(crate::truth::load(path)?
        .into_iter()
        .filter_map(|(id, line)| line.condition.map(|c| (id, c)))
        .collect())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

pub fn run(args: &BacktestArgs) -> Result<()> {
    let candidate_json = model_json(&args.candidate);
    let baseline_json = model_json(&args.baseline);
    let candidate = load(&candidate_json, args.threads)?;
    let baseline = load(&baseline_json, args.threads)?;
    let trained_on = TrainedOn::from_model_json(&candidate_json)?;
    if trained_on.is_none() {
        eprintln!(
            "backtest: {} lists no training images (dataset.images_sha256): nothing can be left out for it",
            candidate_json.display()
        );
    }
    let trained_on = trained_on
        .unwrap_or_default()
        .union(TrainedOn::from_model_json(&baseline_json)?);

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let dataset = match &args.data {
        Some(d) => d.clone(),
        None => export_from_bucket(args)?,
    };
    let request = BacktestRequest {
        dataset,
        trained_on,
        conditions: match &args.truth {
            Some(t) => conditions(t)?,
            None => HashMap::new(),
        },
        bootstrap: BootstrapSettings {
            replicates: args.replicates,
            seed: args.seed,
            ..BootstrapSettings::default()
        },
    };
    let run = backtest::run(&baseline, &candidate, &request)?;
    write_json(&args.out.join("gt.json"), &run.gt)?;
    write_json(&args.out.join("baseline.json"), &run.baseline)?;
    write_json(&args.out.join("candidate.json"), &run.candidate)?;
    write_json(&args.out.join("report.json"), &run.report)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run.report)?);
    } else {
        print_report(&run.report, &args.out);
    }
    Ok(())
}

fn delta_cell(g: &GroupComparison) -> (String, String) {
    match &g.delta {
        Some(d) => (
            format!(
                "{:+.3} [{:+.3}, {:+.3}]",
                d.ap50.delta, d.ap50.low, d.ap50.high
            ),
            format!("{:+.3} [{:+.3}, {:+.3}]", d.ap.delta, d.ap.low, d.ap.high),
        ),
        None => ("-".into(), "-".into()),
    }
}

fn print_report(r: &BacktestReport, out: &Path) {
    let c = &r.comparison;
    println!(
        "backtest: candidate {}/{} against baseline {}/{} on {} labelled images ({} left out as trained on)",
        r.candidate.name,
        r.candidate.version,
        r.baseline.name,
        r.baseline.version,
        r.images,
        r.excluded.len()
    );
    println!(
        "\n  {:<24} {:>6}  {:>8} {:>8}  {:<28} {:<28}",
        "images",
        "n",
        "AP50 b",
        "AP50 c",
        format!("ΔAP50 [{:.0}% CI]", c.confidence * 100.0),
        "ΔAP"
    );
    for g in std::iter::once(&c.overall).chain(&c.groups) {
        let (d50, d) = delta_cell(g);
        println!(
            "  {:<24} {:>6}  {:>8.3} {:>8.3}  {:<28} {:<28}",
            g.group, g.images, g.baseline.ap50, g.candidate.ap50, d50, d
        );
    }
    println!("\n  {:<20} {:>8} {:>8}", "class", "AP50 b", "AP50 c");
    for (name, k) in &c.per_class {
        if k.baseline.ap50 < 0.0 && k.candidate.ap50 < 0.0 {
            continue;
        }
        println!(
            "  {:<20} {:>8.3} {:>8.3}",
            name, k.baseline.ap50, k.candidate.ap50
        );
    }
    println!(
        "\nverdict: {} ({}; {} replicates)",
        serde_json::to_value(c.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.rule,
        c.replicates
    );
    println!(
        "files: {0}/report.json; modelobs eval --gt {0}/gt.json --dt {0}/candidate.json",
        out.display()
    );
}

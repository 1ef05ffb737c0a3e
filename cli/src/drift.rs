//! `modelobs drift reference`: the baseline a model version's windows are
//! tested against (`profiles/reference/<version>.json`, docs/drift.md).
//!
//! - `--dataset DIR... --model DIR`: the model run on a labelled dataset it is
//!   known to do well on (its training or validation set), each image sent as
//!   the simulator and a client would send it (JPEG), profiled exactly as the
//!   inference function profiles a request;
//! - `--model DIR --training-set`: the datasets and split DIR's `model.json`
//!   says the model was trained on (`dataset.paths`, `dataset.split`, written
//!   by train/finetune.py): a fine-tuned candidate's reference, which `make
//!   train` writes to DIR/reference.json and `modelobs model push` stores;
//! - `--from --to --model-version`: a pinned range of the version's own stored
//!   hour windows, traffic known to be good.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use modelobs_core::drift::ProfileSummary;
use modelobs_core::eval::coco_format::Split;
use modelobs_core::records::{self, ProfileReference};
use modelobs_dataset::apply;
use modelobs_detector::{Detector, DetectorConfig, OnnxDetector};
use modelobs_pipeline::profiles;

#[derive(Args)]
pub struct DriftArgs {
    #[command(subcommand)]
    command: DriftCommand,
}

#[derive(Subcommand)]
enum DriftCommand {
    /// Store a model version's drift reference, from a dataset or a pinned range.
    Reference(ReferenceArgs),
}

#[derive(Args)]
struct ReferenceArgs {
    /// Labelled datasets to profile (a directory with annotations.json and its
    /// images); repeat for several.
    #[arg(long = "dataset", requires = "model")]
    datasets: Vec<PathBuf>,
    /// Only this side of the datasets' split.
    #[arg(long)]
    split: Option<Split>,
    /// The model (model.json or its directory) whose version the reference is for.
    #[arg(long)]
    model: Option<PathBuf>,
    /// With --model: profile the datasets and split its model.json was
    /// trained on (`dataset.paths`, `dataset.split`).
    #[arg(long, requires = "model", conflicts_with_all = ["datasets", "split", "from"])]
    training_set: bool,
    /// A pinned range of stored captures instead: first hour (UTC date or time).
    #[arg(long, conflicts_with = "datasets", requires_all = ["to", "model_version"])]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    model_version: Option<String>,
    /// Also write the reference here (JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only write --out; do not store it in the bucket.
    #[arg(long, requires = "out")]
    no_store: bool,
    /// The data bucket (default: $DATA_BUCKET; AWS_ENDPOINT_URL for LocalStack).
    #[arg(long)]
    bucket: Option<String>,
}

pub fn run(args: &DriftArgs) -> Result<()> {
    match &args.command {
        DriftCommand::Reference(a) => reference(a),
    }
}

fn reference(args: &ReferenceArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reference = if let Some(from) = &args.from {
        let from = crate::windows::parse_instant("--from", from, false)?;
        let to =
            crate::windows::parse_instant("--to", args.to.as_deref().unwrap_or_default(), true)?;
        let version = args.model_version.as_deref().unwrap_or_default();
        let bucket = crate::rollup::bucket(args.bucket.as_deref())?;
        runtime
            .block_on(async {
                let store = crate::bucket_store(&bucket).await;
                profiles::reference_from_range(&store, version, from, to, Utc::now()).await
            })?
            .with_context(|| format!("no stored hour windows of {version} in that range"))?
    } else {
        let (datasets, split) = if args.training_set {
            training_set(args.model.as_ref().expect("clap requires --model"))?
        } else {
            (args.datasets.clone(), args.split)
        };
        if datasets.is_empty() {
            bail!(
                "give --dataset DIR --model DIR, --model DIR --training-set, or --from --to --model-version"
            );
        }
        from_datasets(args, &datasets, split)?
    };
    let s = &reference.summary;
    println!(
        "reference for {} {}: {} captures ({}), {} detections",
        reference.model.name, reference.model.version, s.profiled, reference.source, s.detections
    );
    if let Some(out) = &args.out {
        std::fs::write(out, records::to_json(&reference))
            .with_context(|| format!("writing {}", out.display()))?;
        println!("written to {}", out.display());
    }
    if !args.no_store {
        let bucket = crate::rollup::bucket(args.bucket.as_deref())?;
        let key = runtime.block_on(async {
            let store = crate::bucket_store(&bucket).await;
            profiles::write_reference(&store, &reference).await
        })?;
        println!("stored at s3://{bucket}/{key}");
    }
    Ok(())
}

/// The datasets and split `model`'s model.json records it was trained on.
fn training_set(model: &Path) -> Result<(Vec<PathBuf>, Option<Split>)> {
    let path = if model.is_dir() {
        model.join("model.json")
    } else {
        model.to_path_buf()
    };
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    let dataset = &meta["dataset"];
    let paths = dataset["paths"].as_array().with_context(|| {
        format!(
            "{}: no dataset.paths (a model made by train/finetune.py records its training              data there); pass --dataset DIR --split instead",
            path.display()
        )
    })?;
    let datasets = paths
        .iter()
        .map(|p| p.as_str().map(PathBuf::from))
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{}: dataset.paths must be strings", path.display()))?;
    let split = match dataset["split"].as_str() {
        None | Some("all") => None,
        Some(s) => Some(
            serde_json::from_value(serde_json::Value::from(s))
                .with_context(|| format!("{}: dataset.split {s:?}", path.display()))?,
        ),
    };
    Ok((datasets, split))
}

fn from_datasets(
    args: &ReferenceArgs,
    datasets: &[PathBuf],
    split: Option<Split>,
) -> Result<ProfileReference> {
    let model = args
        .model
        .as_ref()
        .expect("clap requires --model with --dataset");
    let detector = OnnxDetector::load(&DetectorConfig::new(model))
        .with_context(|| format!("loading {}", model.display()))?;
    let dataset = crate::simulate::load_datasets(datasets, split)?;
    if dataset.is_empty() {
        bail!("no images in the datasets (split {split:?})");
    }
    let bar = ProgressBar::new(dataset.len() as u64).with_style(
        ProgressStyle::with_template("profiling {bar:40} {pos}/{len} images, {eta} left")
            .expect("valid template"),
    );
    let mut summary = ProfileSummary::default();
    for sample in &dataset.samples {
        // As a client sends it: the clean image, JPEG-encoded.
        let (jpeg, _) = apply(sample, &[], 0)?;
        let p = detector
            .detect(&jpeg)
            .with_context(|| format!("detecting on {}", sample.file))?;
        summary.add(p.profile.as_ref());
        bar.inc(1);
    }
    bar.finish_and_clear();
    let dirs: Vec<String> = datasets.iter().map(|d| d.display().to_string()).collect();
    Ok(ProfileReference {
        model: detector.model().clone(),
        source: format!(
            "{}dataset {} split {}",
            if args.training_set {
                "training set: "
            } else {
                ""
            },
            dirs.join(","),
            split.map_or("all".to_string(), |s| format!("{s:?}").to_lowercase())
        ),
        created_at: Utc::now(),
        summary,
    })
}

//! `modelobs predict`: the detector the inference function runs, on local
//! files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use modelobs_core::profile::CaptureProfile;
use modelobs_core::records::{Detection, ModelRef, StageTimings};
use modelobs_detector::{
    DetectError, Detector, DetectorConfig, LoadError, OnnxDetector, Prediction,
};
use serde::Serialize;

use crate::CliError;

#[derive(Args)]
pub struct PredictArgs {
    /// JPEG, PNG or WebP files.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// One JSON object per image and line (the inference function's answer
    /// without the capture).
    #[arg(long)]
    json: bool,
    /// Report detections scoring over this (default: model.json's).
    #[arg(long, value_name = "X")]
    threshold: Option<f64>,
    /// Classes to report: names, comma separated, or `all` (default: the ten
    /// animal classes).
    #[arg(long, value_name = "a,b|all", value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// ONNX Runtime intra-op threads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// The model's model.json (or its directory).
    #[arg(long, value_name = "PATH", default_value = "models/nanodet/model.json")]
    model: PathBuf,
    /// Benchmark: run each image N times and print per-stage medians as JSON.
    #[arg(long, value_name = "N", hide = true)]
    bench: Option<usize>,
}

/// One image's answer, as `--json` prints it.
#[derive(Serialize)]
struct Answer<'a> {
    model: &'a ModelRef,
    image: ImageSize,
    detections: &'a [Detection],
    timings_ms: StageTimings,
    /// The label-free profile a capture of this answer would store.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a CaptureProfile>,
}

#[derive(Serialize)]
struct ImageSize {
    width: u32,
    height: u32,
}

pub fn run(args: &PredictArgs) -> Result<(), CliError> {
    let started = Instant::now();
    let config = DetectorConfig {
        score_threshold: args.threshold,
        classes: args.classes.clone(),
        intra_op_threads: args.threads,
        ..DetectorConfig::new(&args.model)
    };
    let detector = OnnxDetector::load(&config).map_err(|e| match e {
        LoadError::Config(problem) => CliError::BadInput {
            path: "predict".into(),
            problem,
        },
        LoadError::Metadata { path, problem } => CliError::BadInput {
            path: path.display().to_string(),
            problem,
        },
        other => CliError::Other(anyhow::Error::from(other)),
    })?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    for path in &args.images {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        let prediction = detector.detect(&bytes).map_err(|e| detect_error(path, e))?;
        if let Some(runs) = args.bench {
            bench(&detector, path, &bytes, runs, load_ms)?;
        } else if args.json {
            let answer = Answer {
                model: detector.model(),
                image: ImageSize {
                    width: prediction.image.width,
                    height: prediction.image.height,
                },
                detections: &prediction.detections,
                timings_ms: prediction.timings_ms,
                profile: prediction.profile.as_ref(),
            };
            println!(
                "{}",
                serde_json::to_string(&answer).map_err(anyhow::Error::from)?
            );
        } else {
            print_table(path, detector.model(), &prediction);
        }
    }
    Ok(())
}

fn bad(path: &Path, problem: impl ToString) -> CliError {
    CliError::BadInput {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

fn detect_error(path: &Path, e: DetectError) -> CliError {
    match e {
        DetectError::Model(_) => {
            CliError::Other(anyhow::Error::from(e).context(format!("{}", path.display())))
        }
        refused => bad(path, refused),
    }
}

fn print_table(path: &Path, model: &ModelRef, p: &Prediction) {
    let t = &p.timings_ms;
    println!(
        "{} ({}x{}, {}): {} detection{} by {} {}",
        path.display(),
        p.image.width,
        p.image.height,
        p.image.content_type,
        p.detections.len(),
        if p.detections.len() == 1 { "" } else { "s" },
        model.name,
        model.version,
    );
    if !p.detections.is_empty() {
        println!(
            "  {:<14} {:>5} {:>7}  {:>8} {:>8} {:>8} {:>8}",
            "label", "class", "score", "x1", "y1", "x2", "y2"
        );
    }
    for d in &p.detections {
        let b = d.bbox;
        println!(
            "  {:<14} {:>5} {:>7.3}  {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            d.label, d.class_id, d.score, b.x1, b.y1, b.x2, b.y2
        );
    }
    println!(
        "  ms: decode {:.1}, preprocess {:.1}, inference {:.1}, postprocess {:.1}, total {:.1}",
        t.decode, t.preprocess, t.inference, t.postprocess, t.total
    );
}

/// Per-stage medians over `runs` detections (after the one already done as
/// warm-up), and the median of the bare model run on the same tensor.
fn bench(
    detector: &OnnxDetector,
    path: &Path,
    bytes: &[u8],
    runs: usize,
    load_ms: f64,
) -> Result<(), CliError> {
    #[derive(Serialize)]
    struct BenchReport<'a> {
        image: String,
        runs: usize,
        load_ms: f64,
        median_ms: StageTimings,
        model_run_ms: f64,
        detections: &'a [Detection],
    }
    let runs = runs.max(1);
    let mut stages: [Vec<f64>; 6] = Default::default();
    let mut last = None;
    for _ in 0..runs {
        let p = detector.detect(bytes).map_err(|e| detect_error(path, e))?;
        let t = p.timings_ms;
        for (all, v) in stages.iter_mut().zip([
            t.decode,
            t.preprocess,
            t.inference,
            t.postprocess,
            t.profile,
            t.total,
        ]) {
            all.push(v);
        }
        last = Some(p);
    }
    let mut model_runs = (0..runs)
        .map(|_| detector.time_model_run())
        .collect::<Result<Vec<f64>, _>>()
        .map_err(|e| detect_error(path, e))?;
    let [decode, preprocess, inference, postprocess, profile, total] =
        stages.map(|mut v| median(&mut v));
    let last = last.expect("at least one run");
    let report = BenchReport {
        image: path.display().to_string(),
        runs,
        load_ms,
        median_ms: StageTimings {
            decode,
            preprocess,
            inference,
            postprocess,
            profile,
            total,
        },
        model_run_ms: median(&mut model_runs),
        detections: &last.detections,
    };
    println!(
        "{}",
        serde_json::to_string(&report).map_err(anyhow::Error::from)?
    );
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

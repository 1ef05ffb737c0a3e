//! `modelobs rollup`: the rollup function's code, run once against the bucket;
//! and `modelobs bench-rollup` (hidden), which times it on a COCO pair.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Args;
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_core::eval::{self, coco_format};
use modelobs_core::keys;
use modelobs_core::records::{
    self, CaptureId, Granularity, ImageEval, ModelRef, Window, WindowMetrics,
};
use modelobs_pipeline::rollup::{self, RollupDeps, RollupReport};
use modelobs_pipeline::sink::{Discard, EmfSink, MetricsSink};
use modelobs_pipeline::threshold;
use serde_json::json;

use crate::CliError;

#[derive(Args)]
pub struct RollupArgs {
    /// The data bucket (default: $DATA_BUCKET; AWS_ENDPOINT_URL for LocalStack).
    #[arg(long)]
    bucket: Option<String>,
    /// The serving score threshold for precision/recall/F1 (default: $SCORE_THRESHOLD, else the model's).
    #[arg(long)]
    score_threshold: Option<f64>,
    /// Also print the windows' EMF lines, as the function logs them.
    #[arg(long)]
    emf: bool,
}

pub fn bucket(arg: Option<&str>) -> Result<String, CliError> {
    arg.map(str::to_string)
        .or_else(|| std::env::var("DATA_BUCKET").ok().filter(|b| !b.is_empty()))
        .ok_or_else(|| CliError::BadInput {
            path: "--bucket".into(),
            problem: "no bucket: pass --bucket or set DATA_BUCKET".into(),
        })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(e.into()))
}

pub fn run(args: &RollupArgs) -> Result<(), CliError> {
    let bucket = bucket(args.bucket.as_deref())?;
    let threshold = match args.score_threshold {
        Some(t) => t,
        None => {
            match std::env::var("SCORE_THRESHOLD")
                .ok()
                .filter(|v| !v.is_empty())
            {
                None => threshold::DEFAULT_SCORE_THRESHOLD,
                Some(v) => {
                    threshold::parse_score_threshold(&v).ok_or_else(|| CliError::BadInput {
                        path: "SCORE_THRESHOLD".into(),
                        problem: format!("{v:?}: expected a number in [0, 1]"),
                    })?
                }
            }
        }
    };
    let report = runtime()?.block_on(async {
        let store = crate::bucket_store(&bucket).await;
        if args.emf {
            run_once(store, EmfSink, threshold).await
        } else {
            run_once(store, Discard, threshold).await
        }
    })?;
    print!("{}", describe(&report));
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other(anyhow::anyhow!(
            "{} window(s) failed",
            report.failed.len()
        )))
    }
}

async fn run_once<S: ObjectStore, M: MetricsSink>(
    store: S,
    sink: M,
    score_threshold: f64,
) -> Result<RollupReport, CliError> {
    let deps = RollupDeps {
        store,
        sink,
        score_threshold,
        now: Utc::now,
        concurrency: 32,
    };
    rollup::run(&deps)
        .await
        .map_err(|e| CliError::Other(e.into()))
}

fn describe(report: &RollupReport) -> String {
    let mut out = String::new();
    for r in &report.rolled {
        let ap =
            r.ap.map_or_else(|| "removed".into(), |ap| format!("AP {ap:.3}"));
        out.push_str(&format!(
            "rolled {} ({} images, {ap}, {} touches)\n",
            r.key, r.images_labelled, r.touches
        ));
    }
    for f in &report.failed {
        out.push_str(&format!("FAILED {}: {}\n", f.window, f.error));
    }
    for k in &report.foreign_keys {
        out.push_str(&format!("ignored {k} (not a touch marker)\n"));
    }
    if report.rolled.is_empty() && report.failed.is_empty() {
        out.push_str("nothing touched since the last rollup\n");
    }
    out
}

#[derive(Args)]
pub struct BenchRollupArgs {
    /// Ground truth: a COCO dataset.
    #[arg(long)]
    gt: PathBuf,
    /// Detections: a COCO results list.
    #[arg(long)]
    dt: PathBuf,
    /// The day the images are spread over (capture times, in image id order).
    #[arg(long, default_value = "2026-11-26")]
    day: NaiveDate,
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// The ImageEval schema to store them in: 2 (what this build writes) or
    /// 1 (what builds before it wrote, still read).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
    schema: u32,
}

/// Stores one `ImageEval` per image of a COCO pair (as the metrics function
/// would have, over one day) in an in-memory bucket, then times whole
/// rollups of the day's 24 hours and the day from those stored evaluations.
/// Prints one JSON object: seconds per run (and per stage of each run) and
/// the day window.
pub fn bench(args: &BenchRollupArgs) -> Result<(), CliError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| CliError::BadInput {
            path: p.display().to_string(),
            problem: e.to_string(),
        })
    };
    let bad = |p: &PathBuf, e: modelobs_core::CoreError| CliError::BadInput {
        path: p.display().to_string(),
        problem: e.to_string(),
    };
    let gt = coco_format::parse_dataset(&read(&args.gt)?).map_err(|e| bad(&args.gt, e))?;
    let dt = coco_format::parse_results(&read(&args.dt)?).map_err(|e| bad(&args.dt, e))?;
    // The per-image evaluation is the label-time work: done here, not timed.
    let evaluated = coco_format::evaluate_dataset(&gt, &dt).map_err(|e| bad(&args.dt, e))?;
    let model = ModelRef {
        name: "bench".into(),
        version: "bench-1".into(),
    };
    let start = args.day.and_time(chrono::NaiveTime::MIN).and_utc();
    let n = evaluated.images.len().max(1) as i64;
    let step_ms = 86_400_000 / n;
    let counts: std::collections::HashMap<u64, (u32, u32)> = {
        let mut m = std::collections::HashMap::new();
        for a in &gt.annotations {
            m.entry(a.image_id).or_insert((0, 0)).0 += 1;
        }
        for r in &dt {
            m.entry(r.image_id).or_insert((0, 0)).1 += 1;
        }
        m
    };
    let store = Arc::new(MemoryStore::new());
    let rt = runtime()?;
    let mut touches = Vec::new();
    rt.block_on(async {
        for (i, (image_id, cells)) in evaluated.images.into_iter().enumerate() {
            // Capture times in image id order, so capture ids sort as pycocotools' image ids.
            let at: DateTime<Utc> = start + Duration::milliseconds(i as i64 * step_ms);
            let id = CaptureId::derived(at, &image_id.to_le_bytes());
            let (gts, dts) = counts.get(&image_id).copied().unwrap_or_default();
            let eval = ImageEval {
                id,
                captured_at: at,
                model: model.clone(),
                label_version: at.timestamp_millis(),
                evaluated_at: at,
                detections: dts,
                gt_objects: gts,
                gt_not_reported: 0,
                label_lag_s: 0.0,
                ap50: records::summarize([cells.as_slice()]).ap50,
                at_serving_threshold: eval::operating_point(&cells, 0.5, 0.2)
                    .expect("0.5 is on the grid"),
                classes: cells,
            };
            let put = |key: String, body: Vec<u8>| {
                let store = store.clone();
                async move {
                    store
                        .put(
                            &key,
                            Bytes::from(body),
                            "application/json",
                            PutCondition::Always,
                        )
                        .await
                }
            };
            let body = match args.schema {
                1 => records::image_eval_v1_json(&eval),
                _ => records::to_json(&eval),
            };
            put(keys::image_eval(id, at), body).await?;
            put(keys::capture_record(id, at), b"{}".to_vec()).await?;
            for g in [Granularity::Hour, Granularity::Day] {
                let w = Window::containing(g, at);
                touches.push(keys::window_touch(
                    &w,
                    &model.version,
                    &format!("bench-{i}"),
                )?);
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    touches.sort();
    touches.dedup();

    let mut seconds = Vec::new();
    let mut stages = Vec::new();
    let mut windows = 0;
    for _ in 0..args.repeat.max(1) {
        rt.block_on(async {
            for t in &touches {
                store
                    .put(t, Bytes::new(), "application/json", PutCondition::Always)
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        let deps = RollupDeps {
            store: store.clone(),
            sink: Discard,
            score_threshold: 0.2,
            now: Utc::now,
            concurrency: 32,
        };
        let t0 = Instant::now();
        let report = rt
            .block_on(rollup::run(&deps))
            .map_err(|e| CliError::Other(e.into()))?;
        seconds.push(t0.elapsed().as_secs_f64());
        stages.push(report.seconds);
        if !report.failed.is_empty() {
            return Err(CliError::Other(anyhow::anyhow!(
                "bench rollup failed: {:?}",
                report.failed
            )));
        }
        windows = report.rolled.len();
    }
    let day_key =
        keys::window_metrics(&Window::containing(Granularity::Day, start), &model.version)
            .map_err(|e| CliError::Other(e.into()))?;
    let day: WindowMetrics = records::from_json(
        &store
            .body(&day_key)
            .ok_or_else(|| anyhow::anyhow!("{day_key} was not written"))?,
    )
    .map_err(|e| CliError::Other(e.into()))?;
    let stored_bytes: usize = store
        .keys()
        .iter()
        .filter(|k| k.starts_with(keys::EVALS))
        .map(|k| store.body(k).map_or(0, |b| b.len()))
        .sum();
    println!(
        "{}",
        json!({
            "images": n,
            "windows": windows,
            "schema": args.schema,
            "stored_eval_bytes": stored_bytes,
            "rollup_s": seconds,
            "stages_s": stages,
            "day": day.coco,
            "day_images_labelled": day.images_labelled,
            "day_at_serving_threshold": day.at_serving_threshold,
        })
    );
    Ok(())
}

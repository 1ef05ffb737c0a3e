//! `modelobs simulate`: dated traffic to the inference URL. Each simulated
//! day sends `--rate` photos of the labelled dataset, changed by that day's
//! drift conditions, with `X-Capture-Time` spreading them over the day. What
//! was really in each image goes to the truth file for the oracle labeler.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use clap::Args;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use modelobs_core::eval::coco_format::Split;
use modelobs_core::records::CaptureId;
use modelobs_dataset::{Dataset, DriftSchedule, Pick, apply, format_chain};
use serde::Deserialize;

use crate::truth::{self, TruthLine, TruthObject};

/// Most requests one run may send: the simulator stops by itself.
const MAX_REQUESTS: u64 = 20_000;

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Simulated days (default: the drift schedule's length).
    #[arg(long)]
    pub days: Option<u32>,
    /// Requests per simulated day.
    #[arg(long, default_value_t = 24)]
    pub rate: u32,
    /// Conditions by day: `clean:5,dark:3,blur+small:2` (see `modelobs_dataset::DriftSchedule`).
    #[arg(long, default_value = "clean:5,dark:3,blur+small:2")]
    pub drift: String,
    /// The inference function's predict URL.
    #[arg(
        long,
        env = "PREDICT_URL",
        default_value = "http://127.0.0.1:9000/lambda-url/inference/predict"
    )]
    pub target: String,
    /// Labelled datasets to draw from (each a directory with annotations.json and
    /// its images); repeat for several. Default: the photos and their composites.
    #[arg(long = "dataset", default_values = ["datasets/animals", "datasets/composites"])]
    pub datasets: Vec<PathBuf>,
    /// Only images on this side of the datasets' split (train, validation, test).
    #[arg(long)]
    pub split: Option<Split>,
    /// First simulated day (UTC); default: so that the last day is yesterday.
    #[arg(long)]
    pub start: Option<NaiveDate>,
    /// Where the truth of each capture goes (JSON lines, appended).
    #[arg(long)]
    pub truth_out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Most requests per second (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    pub max_rps: f64,
}

/// One request to send.
struct Planned {
    day: u32,
    /// The day's drift phase, as the schedule names it (`dark`, `blur+small`).
    condition: String,
    at: DateTime<Utc>,
    pick: Pick,
}

/// Every dataset, cut to one split if asked, as one list of samples.
pub fn load_datasets(dirs: &[PathBuf], split: Option<Split>) -> Result<Dataset> {
    let mut sets = Vec::with_capacity(dirs.len());
    for dir in dirs {
        let mut ds = Dataset::load(dir).with_context(|| {
            format!(
                "loading the dataset {} (composites are made by `modelobs dataset composite`)",
                dir.display()
            )
        })?;
        if let Some(split) = split {
            ds = ds.split(split)?;
        }
        sets.push(ds);
    }
    Dataset::concat(sets).context("no --dataset given")
}

/// When each of the day's `rate` requests is captured: evenly spread, mid-slot.
pub fn capture_times(day_start: DateTime<Utc>, rate: u32) -> Vec<DateTime<Utc>> {
    let slot_ms = 86_400_000 / i64::from(rate.max(1));
    (0..i64::from(rate))
        .map(|i| day_start + chrono::Duration::milliseconds(i * slot_ms + slot_ms / 2))
        .collect()
}

#[derive(Deserialize)]
struct Predicted {
    id: CaptureId,
    #[serde(default)]
    detections: Vec<serde_json::Value>,
    #[serde(default)]
    captured: bool,
}

#[derive(Default)]
struct DaySummary {
    sent: u32,
    failed: u32,
    detections: usize,
    truth_objects: usize,
}

pub fn run(args: &SimulateArgs) -> Result<()> {
    let schedule = DriftSchedule::parse(&args.drift)?;
    let days = args.days.unwrap_or_else(|| schedule.total_days());
    let total = u64::from(days) * u64::from(args.rate);
    if total == 0 {
        bail!("nothing to send: --days {days} × --rate {}", args.rate);
    }
    if total > MAX_REQUESTS {
        bail!("{total} requests is more than the simulator sends in one run ({MAX_REQUESTS})");
    }
    let dataset = load_datasets(&args.datasets, args.split)?;
    let start = args
        .start
        .unwrap_or_else(|| Utc::now().date_naive() - chrono::Duration::days(i64::from(days)));
    let mut picker = schedule.picker(args.seed);
    let mut plan = Vec::new();
    for day in 0..days {
        let day_start = (start + chrono::Duration::days(i64::from(day)))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        for at in capture_times(day_start, args.rate) {
            plan.push(Planned {
                day,
                condition: schedule.phase_for_day(day).condition(),
                at,
                pick: picker.pick(day, dataset.samples.len()),
            });
        }
    }
    println!(
        "simulate: {total} requests over {days} day(s) from {start}, drift {schedule}, to {}",
        args.target
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(send_all(args, &dataset, plan, &schedule))
}

async fn send_all(
    args: &SimulateArgs,
    dataset: &Dataset,
    plan: Vec<Planned>,
    schedule: &DriftSchedule,
) -> Result<()> {
    if let Some(dir) = args.truth_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut truth_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.truth_out)
        .with_context(|| format!("opening {}", args.truth_out.display()))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let bar = ProgressBar::new(plan.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} {per_sec} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let pause = (args.max_rps > 0.0).then(|| Duration::from_secs_f64(1.0 / args.max_rps));
    let requests = futures_util::stream::iter(plan.into_iter().map(|p| {
        let http = http.clone();
        async move {
            if let Some(pause) = pause {
                tokio::time::sleep(pause * args.concurrency as u32).await;
            }
            let outcome = send_one(&http, &args.target, dataset, &p).await;
            (p, outcome)
        }
    }))
    .buffered(args.concurrency.max(1));
    futures_util::pin_mut!(requests);
    let mut by_day: BTreeMap<u32, DaySummary> = BTreeMap::new();
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    let mut not_captured = 0u32;
    while let Some((p, outcome)) = requests.next().await {
        let day = by_day.entry(p.day).or_default();
        day.sent += 1;
        match outcome {
            Ok((predicted, line)) => {
                day.detections += predicted.detections.len();
                day.truth_objects += line.objects.len();
                if !predicted.captured {
                    not_captured += 1;
                }
                truth::append(&mut truth_file, &line)?;
            }
            Err(e) => {
                day.failed += 1;
                let n = errors.entry(format!("{e:#}")).or_default();
                *n += 1;
                if *n == 1 {
                    bar.println(format!("simulate: {e:#}"));
                }
            }
        }
        bar.set_message(format!("day {}", p.day + 1));
        bar.inc(1);
    }
    truth_file.flush()?;
    bar.finish_and_clear();

    println!("simulate: done; truth in {}", args.truth_out.display());
    println!("  day  conditions                 sent  failed  detections/image  objects/image");
    for (day, s) in &by_day {
        let ok = f64::from((s.sent - s.failed).max(1));
        println!(
            "  {:>3}  {:<25} {:>5}  {:>6}  {:>16.2}  {:>13.2}",
            day + 1,
            schedule.phase_for_day(*day).to_string(),
            s.sent,
            s.failed,
            s.detections as f64 / ok,
            s.truth_objects as f64 / ok
        );
    }
    let failed: u32 = by_day.values().map(|s| s.failed).sum();
    if not_captured > 0 {
        println!(
            "simulate: {not_captured} prediction(s) answered but not captured (see the function's log)"
        );
    }
    if failed > 0 {
        bail!("{failed} request(s) failed");
    }
    Ok(())
}

async fn send_one(
    http: &reqwest::Client,
    target: &str,
    dataset: &Dataset,
    p: &Planned,
) -> Result<(Predicted, TruthLine)> {
    let sample = &dataset.samples[p.pick.sample];
    let (jpeg, boxes) = apply(sample, &p.pick.transforms, p.pick.seed)?;
    let (width, height) = image_size(&jpeg)?;
    let response = http
        .post(target)
        .header("content-type", "image/jpeg")
        .header(
            "x-capture-time",
            p.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        )
        .body(jpeg)
        .send()
        .await
        .with_context(|| format!("POST {target}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        );
    }
    let predicted: Predicted =
        serde_json::from_str(&text).with_context(|| format!("the answer {text:.200}"))?;
    let line = TruthLine {
        id: predicted.id,
        captured_at: p.at,
        file: sample.file.clone(),
        transforms: format_chain(&p.pick.transforms),
        condition: Some(p.condition.clone()),
        width,
        height,
        objects: boxes
            .into_iter()
            .map(|(class, bbox)| TruthObject { class, bbox })
            .collect(),
    };
    Ok((predicted, line))
}

fn image_size(jpeg: &[u8]) -> Result<(u32, u32)> {
    let reader = image::ImageReader::new(std::io::Cursor::new(jpeg)).with_guessed_format()?;
    Ok(reader.into_dimensions()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_times_spread_over_the_day_and_stay_inside_it() {
        let day: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap();
        let times = capture_times(day, 24);
        assert_eq!(times.len(), 24);
        assert_eq!(
            times[0],
            "2026-11-20T00:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            times[23],
            "2026-11-20T23:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let one = capture_times(day, 1);
        assert_eq!(
            one,
            vec!["2026-11-20T12:00:00Z".parse::<DateTime<Utc>>().unwrap()]
        );
    }
}

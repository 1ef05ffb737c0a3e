//! `modelobs dataset export`: the bucket's labelled captures as a COCO
//! training dataset (`modelobs_pipeline::dataset_export`).
//!
//! Exit status: 0 when at least one image was written, whatever was skipped
//! (each skip is on stderr and in the summary); 1 when nothing could be
//! exported, the bucket could not be read, or DIR could not be written.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use modelobs_core::export::ExportFilter;
use modelobs_core::records::SampleReason;
use modelobs_pipeline::dataset_export::{ExportRequest, export};

use super::output::{Bar, SplitArgs, summarize};
use crate::windows::parse_instant;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Where the dataset goes: DIR/images/ and DIR/annotations.json (DIR must not hold one yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Captured at or after, UTC: a date (2026-11-26) or a time (2026-11-26T07:00). Default: no start.
    #[arg(long, value_parser = |s: &str| instant("--from", s, false))]
    pub from: Option<DateTime<Utc>>,
    /// Captured before, UTC: a date includes that whole day; a time is exclusive. Default: no end.
    #[arg(long, value_parser = |s: &str| instant("--to", s, true))]
    pub to: Option<DateTime<Utc>>,
    /// Only captures served by this model version.
    #[arg(long)]
    pub model_version: Option<String>,
    /// Only labels from this source (`labelbox`, `local`, ...: LABEL_SOURCE of the webhook).
    #[arg(long)]
    pub label_source: Option<String>,
    /// Only captures the sampler chose for this reason (uniform, uncertain, empty).
    #[arg(long, value_parser = parse_reason)]
    pub reason: Option<SampleReason>,
    #[command(flatten)]
    pub split: SplitArgs,
    /// The data bucket (AWS_ENDPOINT_URL for LocalStack).
    #[arg(long, env = "DATA_BUCKET")]
    pub bucket: String,
    /// Captures read at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// `--from` / `--to` as `modelobs metrics` reads them, checked while the arguments are read.
fn instant(name: &str, s: &str, end: bool) -> Result<DateTime<Utc>, String> {
    parse_instant(name, s, end).map_err(|e| e.to_string())
}

/// The reasons as the sampling decisions spell them.
fn parse_reason(s: &str) -> Result<SampleReason, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("{s:?} is not a sampling reason (uniform, uncertain, empty, ...)"))
}

pub fn run(args: &ExportArgs) -> Result<()> {
    let filter = ExportFilter {
        from: args.from,
        to: args.to,
        model_version: args.model_version.clone(),
        label_source: args.label_source.clone(),
        reason: args.reason,
    };
    let request = ExportRequest {
        filter,
        split: args.split.plan()?,
        concurrency: args.concurrency,
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let store = crate::bucket_store(&args.bucket).await;
            export(&store, &request, &args.out, &Bar::new()).await
        })?;
    summarize(
        "dataset export",
        &report.outcome,
        &[
            ("current labels in the bucket", report.labels),
            ("captured outside --from/--to", report.outside_range),
            ("deleted labels", report.deleted),
            (
                "left out by --model-version/--label-source/--reason",
                report.filtered_out,
            ),
        ],
    )
}

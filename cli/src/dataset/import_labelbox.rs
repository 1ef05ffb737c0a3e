//! `modelobs dataset import-labelbox`: a Labelbox project export (export v2
//! NDJSON) as a COCO training dataset (`modelobs_pipeline::labelbox_import`),
//! classes mapped as the webhook maps them (`CLASS_MAP`).
//!
//! Exit status: 0 when at least one image was written, whatever was skipped
//! (each skip is on stderr and in the summary); 1 when nothing could be
//! imported or a file could not be read or written.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use modelobs_labelbox::webhook::payload::ClassMap;
use modelobs_pipeline::labelbox_import::{ImportRequest, import};

use super::output::{Bar, SplitArgs, summarize};

#[derive(Args, Debug)]
pub struct ImportLabelboxArgs {
    /// The project export: one data row per line (the SDK's `project.export()` result).
    #[arg(long)]
    pub export: PathBuf,
    /// Where the dataset goes: DIR/images/ and DIR/annotations.json (DIR must not hold one yet).
    #[arg(long)]
    pub out: PathBuf,
    /// Only this project's labels (default: every project in the export).
    #[arg(long)]
    pub project_id: Option<String>,
    /// The rows' images, found by global key, external id or row_data's file name
    /// (with or without extension), copied into DIR/images/. Without it, images are
    /// not fetched (row_data is a signed URL) and file_name is the row's global key.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Ontology tool name → COCO class name, as a JSON object (the webhook's CLASS_MAP);
    /// names not in it are matched to COCO names, case and `_` ignored.
    #[arg(long, env = "CLASS_MAP", value_parser = |s: &str| ClassMap::from_json(s))]
    pub class_map: Option<ClassMap>,
    #[command(flatten)]
    pub split: SplitArgs,
}

pub fn run(args: &ImportLabelboxArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.export)
        .with_context(|| format!("reading {}", args.export.display()))?;
    let class_map = args.class_map.clone().unwrap_or_default();
    let request = ImportRequest {
        export: &text,
        project_id: args.project_id.as_deref(),
        images: args.images.as_deref(),
        class_map: &class_map,
        split: args.split.plan()?,
    };
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(import(&request, &args.out, &Bar::new()))?;
    if report.images_not_fetched > 0 {
        eprintln!(
            "images not fetched for {} row(s): named by their global key; pass --images DIR to copy them",
            report.images_not_fetched
        );
    }
    summarize(
        "dataset import-labelbox",
        &report.outcome,
        &[
            ("data rows in the export", report.rows),
            ("images not fetched", report.images_not_fetched),
        ],
    )
}

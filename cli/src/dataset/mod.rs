//! `modelobs dataset`: training data. `composite` makes the exact-box
//! composites of `datasets/composites/recipe.json`; `export` writes the
//! bucket's labelled captures as a COCO dataset, `import-labelbox` a Labelbox
//! project export, both in one layout (`modelobs_pipeline::dataset_layout`).

mod composite;
mod export;
mod import_labelbox;
pub(crate) mod output;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Paste cut-outs onto backgrounds by a seeded recipe: images + COCO annotations with exact boxes.
    Composite(composite::CompositeArgs),
    /// Labelled captures from the bucket: DIR/images/ + DIR/annotations.json (COCO).
    ///
    /// Every capture whose current label is not deleted, chosen by the filters; one
    /// image per SHA-256 (the oldest). Each image carries `split`, `source` (its
    /// SHA-256) and a `modelobs` object: capture id and time, model, label id,
    /// version and source, sampling reason. What cannot be exported is skipped and
    /// named on stderr and in the summary. Exit status 0 when anything was
    /// written; 1 when nothing could be, or the bucket or DIR failed.
    Export(export::ExportArgs),
    /// A Labelbox project export (NDJSON) as the same COCO layout.
    ///
    /// Each row's newest label, classes mapped as the webhook maps them. Rows
    /// without a label, with only objects that are not boxes, or with classes the
    /// map does not know are skipped and named on stderr and in the summary. Exit
    /// status 0 when anything was written; 1 when nothing could be, or a file failed.
    ImportLabelbox(import_labelbox::ImportLabelboxArgs),
}

pub fn run(args: &DatasetArgs) -> Result<()> {
    match &args.command {
        DatasetCommand::Composite(a) => composite::run(a),
        DatasetCommand::Export(a) => export::run(a),
        DatasetCommand::ImportLabelbox(a) => import_labelbox::run(a),
    }
}

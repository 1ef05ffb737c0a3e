//! `modelobs eval`: pycocotools' bbox evaluation on standard COCO files.

use std::path::{Path, PathBuf};

use clap::Args;
use modelobs_core::eval::CocoSummary;
use modelobs_core::eval::coco_format::{self, CocoDataset, CocoResult};

use crate::CliError;

#[derive(Args)]
pub struct EvalArgs {
    /// Ground truth: a COCO dataset (images, annotations, categories).
    #[arg(long)]
    gt: PathBuf,
    /// Detections: a COCO results list (image_id, category_id, bbox, score).
    #[arg(long)]
    dt: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| bad(path, e))
}

fn bad(path: &Path, problem: impl ToString) -> CliError {
    CliError::BadInput {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

pub fn run(args: &EvalArgs) -> Result<(), CliError> {
    // Both files are read and parsed at once: the larger one dominates.
    let (gt, dt) = std::thread::scope(|s| {
        let gt = s.spawn(|| -> Result<CocoDataset, CliError> {
            coco_format::parse_dataset(&read(&args.gt)?).map_err(|e| bad(&args.gt, e))
        });
        let dt = s.spawn(|| -> Result<Vec<CocoResult>, CliError> {
            coco_format::parse_results(&read(&args.dt)?).map_err(|e| bad(&args.dt, e))
        });
        (
            gt.join().expect("parser thread"),
            dt.join().expect("parser thread"),
        )
    });
    let (gt, dt) = (gt?, dt?);
    let evaluation = coco_format::evaluate_dataset(&gt, &dt).map_err(|e| bad(&args.dt, e))?;
    let summary = evaluation.summary(&gt.categories);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary).map_err(anyhow::Error::from)?
        );
    } else {
        print_table(&summary);
    }
    Ok(())
}

/// The same twelve lines COCOeval.summarize() prints.
fn print_table(s: &CocoSummary) {
    let rows = [
        ("Average Precision", "AP", "0.50:0.95", "all", 100, s.ap),
        ("Average Precision", "AP", "0.50", "all", 100, s.ap50),
        ("Average Precision", "AP", "0.75", "all", 100, s.ap75),
        (
            "Average Precision",
            "AP",
            "0.50:0.95",
            "small",
            100,
            s.ap_small,
        ),
        (
            "Average Precision",
            "AP",
            "0.50:0.95",
            "medium",
            100,
            s.ap_medium,
        ),
        (
            "Average Precision",
            "AP",
            "0.50:0.95",
            "large",
            100,
            s.ap_large,
        ),
        ("Average Recall", "AR", "0.50:0.95", "all", 1, s.ar1),
        ("Average Recall", "AR", "0.50:0.95", "all", 10, s.ar10),
        ("Average Recall", "AR", "0.50:0.95", "all", 100, s.ar100),
        (
            "Average Recall",
            "AR",
            "0.50:0.95",
            "small",
            100,
            s.ar_small,
        ),
        (
            "Average Recall",
            "AR",
            "0.50:0.95",
            "medium",
            100,
            s.ar_medium,
        ),
        (
            "Average Recall",
            "AR",
            "0.50:0.95",
            "large",
            100,
            s.ar_large,
        ),
    ];
    for (title, short, iou, area, max_dets, value) in rows {
        println!(
            " {title:<18} ({short}) @[ IoU={iou:<9} | area={area:>6} | maxDets={max_dets:>3} ] = {value:0.3}"
        );
    }
    println!();
    println!(" {:<20} {:>7} {:>7}", "class", "AP", "AP50");
    for (name, c) in &s.per_class {
        println!(" {name:<20} {:>7.3} {:>7.3}", c.ap, c.ap50);
    }
}

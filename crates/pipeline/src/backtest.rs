//! `modelobs backtest`: a candidate model against the serving one on a
//! dataset of labelled captures (the layout `modelobs dataset export` writes,
//! or any COCO directory), before any user sees the candidate.
//!
//! Every image runs through both models here (the captures' stored answers
//! are not reused: they may come from other versions), both are evaluated by
//! the same COCO code as `modelobs eval`, and
//! [`modelobs_core::backtest::compare`] gives the scores, the paired
//! bootstrap intervals and the verdict. Images the candidate was trained on
//! (their sha256 is in its `model.json`'s `dataset.images_sha256`) are never
//! judged: they are left out and listed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use modelobs_core::CoreError;
use modelobs_core::backtest::{self, Comparison, VERDICT_RULE};
use modelobs_core::eval::bootstrap::BootstrapSettings;
use modelobs_core::eval::coco_format::{self, CocoDataset, CocoResult};
use modelobs_core::export::{category_of, sha256_hex};
use modelobs_core::records::{CaptureId, ModelRef};
use modelobs_detector::{DetectError, Detector};
use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BacktestError {
    // `cause`, not `source`: the message says it once (a source would be printed again).
    #[error("{path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path}: {problem}")]
    BadInput { path: String, problem: String },
    #[error("{model} on {file}: {source}")]
    Detect {
        model: String,
        file: String,
        source: DetectError,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("nothing to judge: {0}")]
    NothingToJudge(String),
}

fn read(path: &Path) -> Result<Vec<u8>, BacktestError> {
    std::fs::read(path).map_err(|cause| BacktestError::Read {
        path: path.display().to_string(),
        cause,
    })
}

/// The images a model was trained on, from its `model.json`
/// (`dataset.images_sha256`, written by `train/finetune.py`).
#[derive(Debug, Clone, Default)]
pub struct TrainedOn {
    pub sha256: HashSet<String>,
}

impl TrainedOn {
    /// `None` when the model says nothing of its training images (a model
    /// from elsewhere, such as the base model).
    pub fn from_model_json(path: &Path) -> Result<Option<Self>, BacktestError> {
        let json: serde_json::Value =
            serde_json::from_slice(&read(path)?).map_err(|e| BacktestError::BadInput {
                path: path.display().to_string(),
                problem: e.to_string(),
            })?;
        let Some(list) = json.pointer("/dataset/images_sha256") else {
            return Ok(None);
        };
        let list = list.as_array().ok_or_else(|| BacktestError::BadInput {
            path: path.display().to_string(),
            problem: "dataset.images_sha256 is not a list".into(),
        })?;
        let sha256 = list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| BacktestError::BadInput {
                        path: path.display().to_string(),
                        problem: "dataset.images_sha256 holds a non-string".into(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self { sha256 }))
    }

    pub fn union(mut self, other: Option<Self>) -> Self {
        if let Some(o) = other {
            self.sha256.extend(o.sha256);
        }
        self
    }
}

pub struct BacktestRequest {
    /// `DIR/annotations.json`, images in `DIR/images/` (else beside it).
    pub dataset: PathBuf,
    /// Left out: what either model was trained on.
    pub trained_on: TrainedOn,
    /// A drift condition per capture (the simulator's truth file), for the
    /// per-condition groups; empty when unknown.
    pub conditions: HashMap<CaptureId, String>,
    pub bootstrap: BootstrapSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    pub file_name: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    pub baseline: ModelRef,
    pub candidate: ModelRef,
    pub dataset: String,
    /// Images judged.
    pub images: usize,
    pub excluded: Vec<Excluded>,
    pub rule: String,
    pub comparison: Comparison,
}

/// The report and what it was computed from: `gt` and each model's results
/// are COCO files `modelobs eval` reads to the same numbers.
pub struct BacktestRun {
    pub report: BacktestReport,
    pub gt: CocoDataset,
    pub baseline: Vec<CocoResult>,
    pub candidate: Vec<CocoResult>,
}

/// What an image of the dataset says of where it came from (`modelobs dataset export`).
#[derive(Deserialize)]
struct Provenance {
    images: Vec<ProvenanceImage>,
}

#[derive(Deserialize)]
struct ProvenanceImage {
    id: u64,
    #[serde(default)]
    modelobs: Option<ProvenanceFields>,
}

#[derive(Deserialize)]
struct ProvenanceFields {
    #[serde(default)]
    capture_id: Option<CaptureId>,
    #[serde(default)]
    captured_at: Option<DateTime<Utc>>,
}

fn detect_all<D: Detector>(
    model: &D,
    images: &[(u64, String, Vec<u8>)],
) -> Result<Vec<CocoResult>, BacktestError> {
    let mut out = Vec::new();
    for (image_id, file, bytes) in images {
        let prediction = model
            .detect(bytes)
            .map_err(|source| BacktestError::Detect {
                model: format!("{}/{}", model.model().name, model.model().version),
                file: file.clone(),
                source,
            })?;
        out.extend(prediction.detections.iter().filter_map(|d| {
            Some(CocoResult {
                image_id: *image_id,
                category_id: category_of(d.class_id)?,
                bbox: d.bbox.to_xywh(),
                score: d.score,
            })
        }));
    }
    Ok(out)
}

/// Runs both models on the dataset's images (each model on its own thread)
/// and compares them.
pub fn run<B: Detector, C: Detector>(
    baseline: &B,
    candidate: &C,
    request: &BacktestRequest,
) -> Result<BacktestRun, BacktestError> {
    let ann_path = request.dataset.join("annotations.json");
    let ann = read(&ann_path)?;
    let bad = |problem: String| BacktestError::BadInput {
        path: ann_path.display().to_string(),
        problem,
    };
    let mut gt = coco_format::parse_dataset(&ann).map_err(|e| bad(e.to_string()))?;
    let provenance: Provenance = serde_json::from_slice(&ann).map_err(|e| bad(e.to_string()))?;
    let provenance: HashMap<u64, ProvenanceFields> = provenance
        .images
        .into_iter()
        .filter_map(|i| i.modelobs.map(|m| (i.id, m)))
        .collect();
    let images_dir = match request.dataset.join("images") {
        d if d.is_dir() => d,
        _ => request.dataset.clone(),
    };

    let mut excluded = Vec::new();
    let mut judged = Vec::new();
    for image in &gt.images {
        let file = image
            .file_name
            .clone()
            .ok_or_else(|| bad(format!("image {} has no file_name", image.id)))?;
        let bytes = read(&images_dir.join(&file))?;
        if request.trained_on.sha256.contains(&sha256_hex(&bytes)) {
            excluded.push(Excluded {
                file_name: file,
                why: "its bytes are in the training data (dataset.images_sha256)".into(),
            });
            continue;
        }
        judged.push((image.id, file, bytes));
    }
    if judged.is_empty() {
        return Err(BacktestError::NothingToJudge(format!(
            "{} images, {} of them trained on",
            gt.images.len(),
            excluded.len()
        )));
    }
    let keep: HashSet<u64> = judged.iter().map(|(id, _, _)| *id).collect();
    gt.images.retain(|i| keep.contains(&i.id));
    gt.annotations.retain(|a| keep.contains(&a.image_id));

    let (base_results, cand_results) = std::thread::scope(|s| {
        let b = s.spawn(|| detect_all(baseline, &judged));
        let c = s.spawn(|| detect_all(candidate, &judged));
        (
            b.join().expect("detector thread"),
            c.join().expect("detector thread"),
        )
    });
    let (base_results, cand_results) = (base_results?, cand_results?);

    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for image in &gt.images {
        if let Some(split) = image.split {
            groups
                .entry(format!("split={split}"))
                .or_default()
                .push(image.id);
        }
        let Some(p) = provenance.get(&image.id) else {
            continue;
        };
        if let Some(t) = p.captured_at {
            groups
                .entry(format!("day={}", t.format("%Y-%m-%d")))
                .or_default()
                .push(image.id);
        }
        if let Some(c) = p.capture_id.and_then(|id| request.conditions.get(&id)) {
            groups
                .entry(format!("condition={c}"))
                .or_default()
                .push(image.id);
        }
    }
    let comparison = backtest::compare(
        &gt,
        &base_results,
        &cand_results,
        &groups,
        request.bootstrap,
    )?;
    Ok(BacktestRun {
        report: BacktestReport {
            baseline: baseline.model().clone(),
            candidate: candidate.model().clone(),
            dataset: request.dataset.display().to_string(),
            images: judged.len(),
            excluded,
            rule: VERDICT_RULE.to_string(),
            comparison,
        },
        gt,
        baseline: base_results,
        candidate: cand_results,
    })
}

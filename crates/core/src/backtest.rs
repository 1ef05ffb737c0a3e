//! A candidate model against the serving one, on the same labelled images:
//! COCO scores of both (the same code as `modelobs eval`), overall, per group
//! of images (a day, a drift condition) and per class, the paired bootstrap
//! interval of each difference, and a verdict.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::eval::bootstrap::{BootstrapSettings, PairedDeltas, paired_deltas};
use crate::eval::coco_format::{CocoDataset, CocoResult, evaluate_dataset};
use crate::eval::{ClassAp, ClassEval, CocoSummary, accumulate};

/// AP50 and AP of one model on one set of images (−1: no ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    #[serde(rename = "AP50")]
    pub ap50: f64,
    #[serde(rename = "AP")]
    pub ap: f64,
}

impl From<&CocoSummary> for Scores {
    fn from(s: &CocoSummary) -> Self {
        Self {
            ap50: s.ap50,
            ap: s.ap,
        }
    }
}

/// Both models on one set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupComparison {
    /// `all`, or what the images share: `day=2026-11-26`, `condition=dark`.
    pub group: String,
    pub images: usize,
    pub baseline: Scores,
    pub candidate: Scores,
    /// `None` when the images hold no ground truth.
    pub delta: Option<PairedDeltas>,
}

/// Per class on all the images (no interval: a class has few images).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassComparison {
    pub baseline: ClassAp,
    pub candidate: ClassAp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole ΔAP50 interval is above zero.
    Better,
    /// The whole ΔAP50 interval is below zero.
    Worse,
    /// The interval holds zero, or there was nothing to judge on.
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub overall: GroupComparison,
    /// The full COCO summaries on all the images, as `modelobs eval` prints them.
    pub baseline_summary: CocoSummary,
    pub candidate_summary: CocoSummary,
    pub groups: Vec<GroupComparison>,
    pub per_class: BTreeMap<String, ClassComparison>,
    pub verdict: Verdict,
    pub replicates: usize,
    pub confidence: f64,
}

/// The rule, where a report states it.
pub const VERDICT_RULE: &str = "better when the whole paired-bootstrap interval of ΔAP50 (candidate − baseline) is above 0, worse when it is below 0, else inconclusive";

fn verdict(delta: Option<&PairedDeltas>) -> Verdict {
    match delta {
        Some(d) if d.ap50.low > 0.0 => Verdict::Better,
        Some(d) if d.ap50.high < 0.0 => Verdict::Worse,
        _ => Verdict::Inconclusive,
    }
}

/// Compares `candidate` with `baseline` (COCO results on the images of `gt`)
/// on all of `gt` and on each group of `groups` (group name → image ids).
pub fn compare(
    gt: &CocoDataset,
    baseline: &[CocoResult],
    candidate: &[CocoResult],
    groups: &BTreeMap<String, Vec<u64>>,
    settings: BootstrapSettings,
) -> Result<Comparison, CoreError> {
    let base = evaluate_dataset(gt, baseline)?;
    let cand = evaluate_dataset(gt, candidate)?;
    let mut category_ids: Vec<u64> = gt.categories.iter().map(|c| c.id).collect();
    category_ids.sort_unstable();
    category_ids.dedup();
    let slot: HashMap<u64, usize> = base
        .images
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (*id, i))
        .collect();

    // The per-image cells of `ids`, for both models.
    let pair = |ids: &[usize]| -> (Vec<&[ClassEval]>, Vec<&[ClassEval]>) {
        (
            ids.iter().map(|&i| base.images[i].1.as_slice()).collect(),
            ids.iter().map(|&i| cand.images[i].1.as_slice()).collect(),
        )
    };
    let group = |name: &str, ids: &[usize]| -> GroupComparison {
        let (b, c) = pair(ids);
        let score = |images: &[&[ClassEval]]| {
            Scores::from(
                &accumulate(images.iter().copied(), &category_ids).summarize(|_| String::new()),
            )
        };
        GroupComparison {
            group: name.to_string(),
            images: ids.len(),
            baseline: score(&b),
            candidate: score(&c),
            delta: paired_deltas(&b, &c, &category_ids, settings),
        }
    };

    let all: Vec<usize> = (0..base.images.len()).collect();
    // All images in ascending id order: the accumulation `modelobs eval` does.
    let overall = group("all", &all);
    let baseline_summary = base.summary(&gt.categories);
    let candidate_summary = cand.summary(&gt.categories);

    let mut out_groups = Vec::with_capacity(groups.len());
    for (name, ids) in groups {
        let mut idx = Vec::with_capacity(ids.len());
        for id in ids {
            let i = slot.get(id).ok_or_else(|| {
                CoreError::InvalidCoco(format!(
                    "group {name} names image {id}, which the ground truth does not have"
                ))
            })?;
            idx.push(*i);
        }
        idx.sort_unstable();
        idx.dedup();
        out_groups.push(group(name, &idx));
    }

    let per_class = baseline_summary
        .per_class
        .iter()
        .filter_map(|(name, b)| {
            candidate_summary.per_class.get(name).map(|c| {
                (
                    name.clone(),
                    ClassComparison {
                        baseline: *b,
                        candidate: *c,
                    },
                )
            })
        })
        .collect();
    Ok(Comparison {
        verdict: verdict(overall.delta.as_ref()),
        overall,
        baseline_summary,
        candidate_summary,
        groups: out_groups,
        per_class,
        replicates: settings.replicates,
        confidence: settings.confidence,
    })
}

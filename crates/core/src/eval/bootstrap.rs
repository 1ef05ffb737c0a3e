//! Paired bootstrap of the difference between two models' COCO scores on the
//! same images: how sure we are that a candidate is better than the serving
//! model, from the images we have.
//!
//! Each replicate draws the image set with replacement (the same draw for
//! both models: that is what makes it paired) and accumulates the stored
//! per-image evaluations ([`evaluate_image`](super::evaluate_image)) of the
//! drawn images, so no box is matched again. The interval is the percentile
//! interval of the replicates' differences.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{ClassEval, accumulate};

/// A difference `candidate - baseline`, with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// On all the images (not a replicate's).
    pub delta: f64,
    pub low: f64,
    pub high: f64,
}

/// ΔAP50 and ΔAP of one set of paired images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDeltas {
    pub ap50: Delta,
    pub ap: Delta,
    /// Replicates whose score was defined for both models (a draw without any
    /// ground truth has none); the interval is over these.
    pub replicates: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct BootstrapSettings {
    pub replicates: usize,
    /// Two-sided coverage, e.g. 0.95.
    pub confidence: f64,
    pub seed: u64,
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        Self {
            replicates: 1000,
            confidence: 0.95,
            seed: 2026,
        }
    }
}

/// AP50 and AP of a multiset of images (`picks` index into `images`).
fn scores(images: &[&[ClassEval]], picks: &[usize], category_ids: &[u64]) -> (f64, f64) {
    let s = accumulate(picks.iter().map(|&i| images[i]), category_ids).summarize(|_| String::new());
    (s.ap50, s.ap)
}

/// The `q` quantile of sorted `values` (linear between ranks, as numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval(delta: f64, mut values: Vec<f64>, confidence: f64) -> Delta {
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    Delta {
        delta,
        low: quantile(&values, tail),
        high: quantile(&values, 1.0 - tail),
    }
}

/// Paired bootstrap of `candidate - baseline` on images evaluated for both
/// models: `baseline[i]` and `candidate[i]` are the same image. Scores are
/// COCO's (−1 when undefined); a replicate where either is undefined is
/// dropped. `None` when the images have no ground truth at all.
pub fn paired_deltas(
    baseline: &[&[ClassEval]],
    candidate: &[&[ClassEval]],
    category_ids: &[u64],
    settings: BootstrapSettings,
) -> Option<PairedDeltas> {
    assert_eq!(
        baseline.len(),
        candidate.len(),
        "paired images: one evaluation per model"
    );
    let n = baseline.len();
    let all: Vec<usize> = (0..n).collect();
    let (b50, b) = scores(baseline, &all, category_ids);
    let (c50, c) = scores(candidate, &all, category_ids);
    if n == 0 || b50 < 0.0 || c50 < 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut d50 = Vec::with_capacity(settings.replicates);
    let mut d = Vec::with_capacity(settings.replicates);
    let mut picks = vec![0; n];
    for _ in 0..settings.replicates {
        for p in picks.iter_mut() {
            *p = rng.random_range(0..n);
        }
        // Ascending, as COCOeval visits images: ties between equal scores break the same way.
        picks.sort_unstable();
        let (rb50, rb) = scores(baseline, &picks, category_ids);
        let (rc50, rc) = scores(candidate, &picks, category_ids);
        if rb50 < 0.0 || rc50 < 0.0 {
            continue;
        }
        d50.push(rc50 - rb50);
        d.push(rc - rb);
    }
    let replicates = d50.len();
    Some(PairedDeltas {
        ap50: interval(c50 - b50, d50, settings.confidence),
        ap: interval(c - b, d, settings.confidence),
        replicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{DtBox, GtBox, evaluate_image};

    const CATS: [u64; 1] = [1];

    fn gt(x: f64) -> GtBox {
        GtBox {
            id: 1,
            category_id: 1,
            bbox: [x, 10.0, 50.0, 50.0],
            area: 2500.0,
            iscrowd: false,
        }
    }

    fn dt(x: f64, score: f64) -> DtBox {
        DtBox {
            category_id: 1,
            bbox: [x, 10.0, 50.0, 50.0],
            score,
        }
    }

    /// `hits` images where the model finds the one object, the rest where it boxes empty space.
    fn model(n: usize, hits: usize) -> Vec<Vec<ClassEval>> {
        (0..n)
            .map(|i| {
                let d = if i < hits {
                    dt(10.0, 0.9)
                } else {
                    dt(300.0, 0.9)
                };
                evaluate_image(&[gt(10.0)], &[d], &CATS)
            })
            .collect()
    }

    fn refs(v: &[Vec<ClassEval>]) -> Vec<&[ClassEval]> {
        v.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn identical_models_differ_by_exactly_nothing() {
        let a = model(40, 25);
        let d = paired_deltas(&refs(&a), &refs(&a), &CATS, BootstrapSettings::default()).unwrap();
        assert_eq!((d.ap50.delta, d.ap50.low, d.ap50.high), (0.0, 0.0, 0.0));
        assert_eq!(d.replicates, 1000);
    }

    #[test]
    fn a_clearly_better_candidate_has_an_interval_above_zero() {
        let base = model(60, 20);
        let cand = model(60, 50);
        let d = paired_deltas(
            &refs(&base),
            &refs(&cand),
            &CATS,
            BootstrapSettings::default(),
        )
        .unwrap();
        let full_base = accumulate(refs(&base), &CATS).summarize(|_| String::new());
        let full_cand = accumulate(refs(&cand), &CATS).summarize(|_| String::new());
        assert!((d.ap50.delta - (full_cand.ap50 - full_base.ap50)).abs() < 1e-12);
        assert!(d.ap50.low > 0.0, "{d:?}");
        assert!(d.ap50.low <= d.ap50.delta && d.ap50.delta <= d.ap50.high);
    }

    #[test]
    fn a_one_image_difference_is_not_called_significant() {
        let base = model(30, 15);
        let cand = model(30, 16);
        let d = paired_deltas(
            &refs(&base),
            &refs(&cand),
            &CATS,
            BootstrapSettings::default(),
        )
        .unwrap();
        assert!(d.ap50.delta > 0.0);
        assert!(d.ap50.low <= 0.0, "{d:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_interval() {
        let base = model(30, 10);
        let cand = model(30, 20);
        let s = BootstrapSettings {
            replicates: 200,
            ..BootstrapSettings::default()
        };
        let one = paired_deltas(&refs(&base), &refs(&cand), &CATS, s).unwrap();
        let two = paired_deltas(&refs(&base), &refs(&cand), &CATS, s).unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn no_ground_truth_gives_no_interval() {
        let empty: Vec<Vec<ClassEval>> = (0..5)
            .map(|_| evaluate_image(&[], &[dt(10.0, 0.9)], &CATS))
            .collect();
        assert!(
            paired_deltas(
                &refs(&empty),
                &refs(&empty),
                &CATS,
                BootstrapSettings::default()
            )
            .is_none()
        );
    }
}

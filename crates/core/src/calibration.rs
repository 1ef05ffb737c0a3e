//! AP50 without labels: a small linear model from a window's label-free
//! profile to its AP50, fitted on the windows that do have labels (one model
//! version, one granularity), its error measured by leaving each labelled
//! window out in turn. An estimate is shown with that error as a band, and
//! never as a measurement (docs/drift.md).
//!
//! The features are the ones that move with a detector's quality when the
//! images drift: how sure the model is (mean top score, the share of its
//! detections scored over one half), how much it finds (captures with a
//! detection, detections per capture) and how readily NMS folds candidates
//! into a box. Weighted least squares (by labelled images: a window of one
//! labelled image says little) with a ridge on standardised features keeps a
//! fit on a handful of windows from chasing noise.

use serde::{Deserialize, Serialize};

use crate::drift::ProfileSummary;

/// Names of [`features`], in order.
pub const FEATURES: [&str; 5] = [
    "mean_top_score",
    "confident_share",
    "found_share",
    "detections_per_capture",
    "absorbed_per_box",
];

/// Labelled windows needed before anything is estimated.
pub const MIN_WINDOWS: usize = 5;

/// Ridge penalty on the standardised coefficients, relative to the total weight.
const RIDGE: f64 = 0.05;

/// A window's feature vector; `None` without profiled captures.
pub fn features(s: &ProfileSummary) -> Option<[f64; FEATURES.len()]> {
    if s.profiled == 0 {
        return None;
    }
    let n = s.profiled as f64;
    let confident: u64 = s.score.counts.iter().skip(s.score.counts.len() / 2).sum();
    let found = s.profiled
        - s.detections_per_capture
            .counts
            .first()
            .copied()
            .unwrap_or(0);
    Some([
        s.top_score_sum / n,
        if s.detections > 0 {
            confident as f64 / s.detections as f64
        } else {
            0.0
        },
        found as f64 / n,
        (s.detections as f64 / n).min(10.0),
        s.absorbed_sum / n,
    ])
}

/// One labelled window to fit on.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub x: [f64; FEATURES.len()],
    pub ap50: f64,
    /// Labelled images in the window.
    pub weight: f64,
}

/// A fitted estimate and how wrong it was on windows it had not seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub intercept: f64,
    /// Per [`FEATURES`], on the raw features.
    pub coefficients: Vec<f64>,
    /// Labelled windows fitted on.
    pub windows: usize,
    /// Leave-one-window-out absolute errors: mean, worst, and the half-width
    /// of the band (their 90th percentile).
    pub loo_mae: f64,
    pub loo_worst: f64,
    pub band: f64,
}

/// An estimate with its band, clamped to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Calibration {
    /// Fits on `points` (windows without a defined AP50 left out by the
    /// caller); `None` with fewer than [`MIN_WINDOWS`].
    pub fn fit(points: &[Point]) -> Option<Self> {
        if points.len() < MIN_WINDOWS {
            return None;
        }
        let (intercept, coefficients) = solve(points)?;
        let mut errors: Vec<f64> = (0..points.len())
            .filter_map(|i| {
                let rest: Vec<Point> = points
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| *p)
                    .collect();
                let (b0, b) = solve(&rest)?;
                Some((predict(b0, &b, &points[i].x) - points[i].ap50).abs())
            })
            .collect();
        if errors.is_empty() {
            return None;
        }
        errors.sort_by(f64::total_cmp);
        let q = ((errors.len() as f64 * 0.9).ceil() as usize).clamp(1, errors.len()) - 1;
        Some(Self {
            intercept,
            coefficients: coefficients.to_vec(),
            windows: points.len(),
            loo_mae: errors.iter().sum::<f64>() / errors.len() as f64,
            loo_worst: *errors.last().expect("not empty"),
            band: errors[q],
        })
    }

    pub fn estimate(&self, s: &ProfileSummary) -> Option<Estimate> {
        let x = features(s)?;
        let b: [f64; FEATURES.len()] = self.coefficients.as_slice().try_into().ok()?;
        let value = predict(self.intercept, &b, &x).clamp(0.0, 1.0);
        Some(Estimate {
            value,
            low: (value - self.band).clamp(0.0, 1.0),
            high: (value + self.band).clamp(0.0, 1.0),
        })
    }
}

fn predict(b0: f64, b: &[f64; FEATURES.len()], x: &[f64; FEATURES.len()]) -> f64 {
    b0 + b.iter().zip(x).map(|(b, x)| b * x).sum::<f64>()
}

// Index loops over small fixed matrices read as the algebra does.
#[allow(clippy::needless_range_loop)]
/// Weighted ridge regression on standardised features, mapped back to the
/// raw features: `(intercept, coefficients)`.
fn solve(points: &[Point]) -> Option<(f64, [f64; FEATURES.len()])> {
    const K: usize = FEATURES.len();
    let w_total: f64 = points.iter().map(|p| p.weight.max(0.0)).sum();
    if w_total <= 0.0 {
        return None;
    }
    let mut mean = [0.0; K];
    let mut y_mean = 0.0;
    for p in points {
        for k in 0..K {
            mean[k] += p.weight * p.x[k] / w_total;
        }
        y_mean += p.weight * p.ap50 / w_total;
    }
    let mut sd = [0.0; K];
    for p in points {
        for k in 0..K {
            sd[k] += p.weight * (p.x[k] - mean[k]).powi(2) / w_total;
        }
    }
    let sd = sd.map(|v| if v > 1e-12 { v.sqrt() } else { 0.0 });
    // Normal equations (Z'WZ + λ·W·I) β = Z'Wy on the centred, scaled
    // features; a constant feature gets a zero coefficient.
    let mut a = [[0.0; K]; K];
    let mut rhs = [0.0; K];
    for p in points {
        let z: [f64; K] = std::array::from_fn(|k| {
            if sd[k] > 0.0 {
                (p.x[k] - mean[k]) / sd[k]
            } else {
                0.0
            }
        });
        for i in 0..K {
            rhs[i] += p.weight * z[i] * (p.ap50 - y_mean);
            for j in 0..K {
                a[i][j] += p.weight * z[i] * z[j];
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += RIDGE * w_total;
    }
    let beta = gauss(a, rhs)?;
    let coefficients: [f64; K] =
        std::array::from_fn(|k| if sd[k] > 0.0 { beta[k] / sd[k] } else { 0.0 });
    let intercept = y_mean
        - coefficients
            .iter()
            .zip(&mean)
            .map(|(b, m)| b * m)
            .sum::<f64>();
    Some((intercept, coefficients))
}

#[allow(clippy::needless_range_loop)]
/// Gaussian elimination with partial pivoting.
fn gauss<const K: usize>(mut a: [[f64; K]; K], mut b: [f64; K]) -> Option<[f64; K]> {
    for col in 0..K {
        let pivot = (col..K).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..K {
            let f = a[row][col] / a[col][col];
            for c in col..K {
                a[row][c] -= f * a[col][c];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; K];
    for row in (0..K).rev() {
        let s: f64 = (row + 1..K).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(top: f64, found: f64, ap50: f64) -> Point {
        Point {
            x: [top, top * 0.8, found, found * 2.0, 3.0],
            ap50,
            weight: 10.0,
        }
    }

    #[test]
    fn too_few_windows_estimate_nothing() {
        let pts: Vec<Point> = (0..MIN_WINDOWS - 1)
            .map(|i| point(0.5 + 0.05 * i as f64, 0.9, 0.6))
            .collect();
        assert!(Calibration::fit(&pts).is_none());
    }

    #[test]
    fn a_linear_relation_is_recovered_and_held_out_windows_are_close() {
        // GIVEN AP50 = 1.2·top − 0.1 (+ a small wobble) over twelve windows
        let pts: Vec<Point> = (0..12)
            .map(|i| {
                let top = 0.3 + 0.04 * i as f64;
                let wobble = if i % 2 == 0 { 0.01 } else { -0.01 };
                point(top, 0.7 + 0.02 * (i % 3) as f64, 1.2 * top - 0.1 + wobble)
            })
            .collect();
        let c = Calibration::fit(&pts).expect("enough windows");
        // THEN held-out windows are within a few hundredths, and so is a new one
        assert!(c.loo_mae < 0.04, "{c:?}");
        assert!(c.band >= c.loo_mae && c.loo_worst >= c.band);
        // a new window like them: mean top score 0.5, so AP50 about 0.5
        let s = summary(
            50,
            50,
            25.0,
            [0, 0, 0, 43, 0, 29, 0, 0, 0, 0],
            [14, 36, 0, 0, 0],
            150.0,
        );
        let e = c.estimate(&s).expect("profiled");
        assert!((e.value - 0.5).abs() < 0.08, "{e:?}");
        assert!(e.low <= e.value && e.value <= e.high);
        assert!(c.estimate(&ProfileSummary::default()).is_none());
    }

    /// A summary with these counts (detections: the score histogram's sum).
    fn summary(
        captures: u64,
        profiled: u64,
        top_score_sum: f64,
        score: [u64; 10],
        per_capture: [u64; 5],
        absorbed_sum: f64,
    ) -> ProfileSummary {
        let mut s = ProfileSummary {
            captures,
            profiled,
            top_score_sum,
            detections: score.iter().sum(),
            absorbed_sum,
            ..ProfileSummary::default()
        };
        s.score.counts = score.to_vec();
        s.detections_per_capture.counts = per_capture.to_vec();
        s
    }

    #[test]
    fn features_read_the_summary() {
        let s = summary(
            5,
            4,
            2.0,
            [0, 0, 0, 1, 1, 2, 2, 0, 0, 0],
            [1, 1, 1, 1, 0],
            8.0,
        );
        let x = features(&s).unwrap();
        assert_eq!(x, [0.5, 4.0 / 6.0, 0.75, 1.5, 2.0]);
    }
}

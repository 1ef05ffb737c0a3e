//! Label-free drift: windows of capture profiles and how far a window has
//! moved from a reference (docs/drift.md).
//!
//! A [`ProfileSummary`] is a fixed set of counts and histograms, so windows
//! merge by adding them up: an hour's summary is built once from the hour's
//! capture records, a day is the sum of its hours, a reference range the sum
//! of its days. [`compare`] then tests each feature of a window against the
//! reference, one observation per capture, with a test whose p-value is
//! valid at any window size, so the same threshold holds for an hour of two
//! captures and for a day of a million:
//!
//! | feature (one value per capture) | statistic reported | p-value |
//! | --- | --- | --- |
//! | `top_score` (20 bins) | PSI | conformal + Fisher; chi-square from 50 captures |
//! | `detections` (0, 1, 2, 3–4, 5+) | PSI | conformal + Fisher; chi-square from 50 |
//! | `class` (the class with most detections, `none`) | Jensen–Shannon divergence | conformal + Fisher; chi-square from 50 |
//! | `luminance`, `contrast`, `sharpness`, `box_area` | Kolmogorov–Smirnov D | conformal + Fisher; KS from 50 |
//!
//! **Conformal + Fisher.** Each capture of the window gets a conformal
//! p-value against the reference: for an ordered feature, twice the smaller
//! tail, `(reference captures at or beyond its bin + 1) / (reference + 1)`;
//! for the class, the share of reference captures whose class is as rare or
//! rarer. Ties count against the window, so each p-value is super-uniform
//! when the window is drawn like the reference, and Fisher's
//! `−2 Σ ln p ~ χ²(2n)` combines them without any large-sample assumption.
//! One capture far outside a reference of `N` contributes `ln((N + 1) / 2)`:
//! the reference's size bounds how fast a tiny window can alert. The
//! asymptotic tests (chi-square, KS) catch shifts inside the reference's
//! range (a narrower spread) once the window is large; from 50 captures on
//! the feature's p-value is twice the smaller of the two.
//!
//! A window alerts when any feature's p-value is under `alpha / features`
//! (Bonferroni), and its score is `-log10` of the smallest corrected p-value.
//! The detection-level histograms (`score`, `classes`) are kept for charts
//! and the AP50 estimate, not tested: detections of one image are not
//! independent observations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::profile::{CaptureProfile, SCORE_BINS};

/// A histogram over fixed bins, mergeable by addition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
}

/// How a continuous feature is binned: linear over `[lo, hi]`, or over
/// `[log10 lo, log10 hi]`. Values outside go to the end bins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Binning {
    pub lo: f64,
    pub hi: f64,
    pub bins: usize,
    pub log: bool,
}

impl Binning {
    pub fn bin(&self, v: f64) -> usize {
        if v.is_nan() {
            return 0;
        }
        let (lo, hi, v) = if self.log {
            (self.lo.log10(), self.hi.log10(), v.max(self.lo).log10())
        } else {
            (self.lo, self.hi, v)
        };
        let t = ((v - lo) / (hi - lo) * self.bins as f64).floor();
        (t.max(0.0) as usize).min(self.bins - 1)
    }
}

/// Luma mean, `[0, 1]`.
pub const LUMINANCE: Binning = Binning {
    lo: 0.0,
    hi: 1.0,
    bins: 50,
    log: false,
};
/// RMS contrast of luma, `[0, 0.5]`.
pub const CONTRAST: Binning = Binning {
    lo: 0.0,
    hi: 0.5,
    bins: 50,
    log: false,
};
/// Variance of the Laplacian of luma: natural photos at 416 px span about
/// 1e-4 to 1e-1; logarithmic bins from 1e-6 to 10.
pub const SHARPNESS: Binning = Binning {
    lo: 1e-6,
    hi: 10.0,
    bins: 70,
    log: true,
};
/// Mean box area as a share of the image: 1e-4 (a 4-pixel-wide animal at
/// 416) to the whole image.
pub const BOX_AREA: Binning = Binning {
    lo: 1e-4,
    hi: 1.0,
    bins: 40,
    log: true,
};

/// A capture's top score, `[0, 1]` in twentieths.
pub const TOP_SCORE_BINS: usize = 20;
pub const TOP_SCORE: Binning = Binning {
    lo: 0.0,
    hi: 1.0,
    bins: TOP_SCORE_BINS,
    log: false,
};
fn top_score_histogram() -> Histogram {
    Histogram::new(TOP_SCORE_BINS)
}

/// The dominant class of a capture without detections.
pub const NO_CLASS: &str = "none";

/// The class with the most detections (the first by name on a tie).
pub fn dominant_class(p: &CaptureProfile) -> &str {
    p.classes
        .iter()
        .fold(None, |best: Option<(&String, u32)>, (c, &n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((c, n)),
        })
        .map_or(NO_CLASS, |(c, _)| c.as_str())
}

/// From this many captures in the window on, the asymptotic tests join the
/// conformal one (module docs).
pub const LARGE_WINDOW: u64 = 50;

/// Detections per capture, binned 0, 1, 2, 3–4, 5+.
pub const COUNT_BINS: usize = 5;
pub fn count_bin(n: u32) -> usize {
    match n {
        0 => 0,
        1 => 1,
        2 => 2,
        3 | 4 => 3,
        _ => 4,
    }
}

impl Histogram {
    pub fn new(bins: usize) -> Self {
        Self {
            counts: vec![0; bins],
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn add(&mut self, bin: usize) {
        self.counts[bin] += 1;
    }

    /// Adds `other`'s counts (same binning).
    pub fn merge(&mut self, other: &Self) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// A window's capture profiles, summed. `ProfileSummary::default()` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSummary {
    /// Capture records summed, and those of them that carried a profile.
    pub captures: u64,
    pub profiled: u64,
    pub detections: u64,
    pub score: Histogram,
    pub detections_per_capture: Histogram,
    pub classes: BTreeMap<String, u64>,
    pub luminance: Histogram,
    pub contrast: Histogram,
    pub sharpness: Histogram,
    pub box_area: Histogram,
    /// Per capture: the top score in [`TOP_SCORE_BINS`] bins of `[0, 1]`,
    /// and the class with the most detections ([`NO_CLASS`] without any).
    #[serde(default = "top_score_histogram")]
    pub top_score: Histogram,
    #[serde(default)]
    pub dominant_class: BTreeMap<String, u64>,
    /// Sums for means: top score, NMS candidates absorbed per kept box.
    pub top_score_sum: f64,
    pub absorbed_sum: f64,
}

impl Default for ProfileSummary {
    fn default() -> Self {
        Self {
            captures: 0,
            profiled: 0,
            detections: 0,
            score: Histogram::new(SCORE_BINS),
            detections_per_capture: Histogram::new(COUNT_BINS),
            classes: BTreeMap::new(),
            luminance: Histogram::new(LUMINANCE.bins),
            contrast: Histogram::new(CONTRAST.bins),
            sharpness: Histogram::new(SHARPNESS.bins),
            box_area: Histogram::new(BOX_AREA.bins),
            top_score: top_score_histogram(),
            dominant_class: BTreeMap::new(),
            top_score_sum: 0.0,
            absorbed_sum: 0.0,
        }
    }
}

impl ProfileSummary {
    /// Adds one capture (`None`: a record without a profile, counted only).
    pub fn add(&mut self, profile: Option<&CaptureProfile>) {
        self.captures += 1;
        let Some(p) = profile else { return };
        self.profiled += 1;
        self.detections += u64::from(p.detections);
        for (bin, n) in p.score_histogram.iter().enumerate() {
            self.score.counts[bin] += u64::from(*n);
        }
        self.detections_per_capture.add(count_bin(p.detections));
        for (class, n) in &p.classes {
            *self.classes.entry(class.clone()).or_insert(0) += u64::from(*n);
        }
        self.luminance.add(LUMINANCE.bin(p.image.luminance));
        self.contrast.add(CONTRAST.bin(p.image.contrast));
        self.sharpness.add(SHARPNESS.bin(p.image.sharpness));
        if let Some(share) = p.box_area_share {
            self.box_area.add(BOX_AREA.bin(share));
        }
        self.top_score.add(TOP_SCORE.bin(p.top_score));
        *self
            .dominant_class
            .entry(dominant_class(p).to_string())
            .or_insert(0) += 1;
        self.top_score_sum += p.top_score;
        self.absorbed_sum += p.nms.absorbed_mean;
    }

    pub fn merge(&mut self, other: &Self) {
        self.captures += other.captures;
        self.profiled += other.profiled;
        self.detections += other.detections;
        self.score.merge(&other.score);
        self.detections_per_capture
            .merge(&other.detections_per_capture);
        for (class, n) in &other.classes {
            *self.classes.entry(class.clone()).or_insert(0) += n;
        }
        self.luminance.merge(&other.luminance);
        self.contrast.merge(&other.contrast);
        self.sharpness.merge(&other.sharpness);
        self.box_area.merge(&other.box_area);
        self.top_score.merge(&other.top_score);
        for (class, n) in &other.dominant_class {
            *self.dominant_class.entry(class.clone()).or_insert(0) += n;
        }
        self.top_score_sum += other.top_score_sum;
        self.absorbed_sum += other.absorbed_sum;
    }

    /// Mean top score over profiled captures (`None` when there are none).
    pub fn mean_top_score(&self) -> Option<f64> {
        (self.profiled > 0).then(|| self.top_score_sum / self.profiled as f64)
    }
}

/// One feature's comparison with the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub feature: String,
    /// PSI, Jensen–Shannon divergence (bits) or KS D (see the module table).
    pub statistic: f64,
    /// Uncorrected p-value; 1 when either side has no observations.
    pub p_value: f64,
    /// Observations in the window and in the reference.
    pub n: u64,
    pub n_reference: u64,
}

/// A window against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// `-log10` of the smallest Bonferroni-corrected p-value, capped at 16;
    /// 0 when nothing could be compared.
    pub score: f64,
    pub alert: bool,
    /// Features whose corrected p-value is under `alpha`, most significant first.
    pub features: Vec<String>,
    pub detail: Vec<FeatureDrift>,
}

/// What a window's drift looks like to a reader (`modelobs metrics --json`,
/// EMF, Observe): the report, and what was tested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowDriftReport {
    pub score: f64,
    pub alert: bool,
    pub features: Vec<String>,
    /// Hours tested together (an hour reaches back while small: [`trailing`]).
    pub hours: usize,
    /// Profiled captures tested, and in the reference.
    pub captures: u64,
    pub reference_captures: u64,
    /// `ProfileReference::source`.
    pub reference: String,
    pub detail: Vec<FeatureDrift>,
}

impl WindowDriftReport {
    pub fn new(
        tested: &ProfileSummary,
        hours: usize,
        reference: &ProfileSummary,
        source: &str,
        alpha: f64,
    ) -> Self {
        let r = compare(tested, reference, alpha);
        Self {
            score: r.score,
            alert: r.alert,
            features: r.features,
            hours,
            captures: tested.profiled,
            reference_captures: reference.profiled,
            reference: source.to_string(),
            detail: r.detail,
        }
    }
}

/// The default family-wise false-alarm rate per window.
pub const DEFAULT_ALPHA: f64 = 1e-3;

/// Tests every feature of `window` against `reference`.
pub fn compare(window: &ProfileSummary, reference: &ProfileSummary, alpha: f64) -> DriftReport {
    let mut detail = vec![
        binned("top_score", &window.top_score, &reference.top_score),
        binned(
            "detections",
            &window.detections_per_capture,
            &reference.detections_per_capture,
        ),
        categorical("class", &window.dominant_class, &reference.dominant_class),
        ks("luminance", &window.luminance, &reference.luminance),
        ks("contrast", &window.contrast, &reference.contrast),
        ks("sharpness", &window.sharpness, &reference.sharpness),
        ks("box_area", &window.box_area, &reference.box_area),
    ];
    let k = detail.len() as f64;
    let corrected = |d: &FeatureDrift| (d.p_value * k).min(1.0);
    let min_p = detail.iter().map(corrected).fold(1.0, f64::min);
    detail.sort_by(|a, b| corrected(a).total_cmp(&corrected(b)));
    let features: Vec<String> = detail
        .iter()
        .filter(|d| corrected(d) < alpha)
        .map(|d| d.feature.clone())
        .collect();
    DriftReport {
        // `+ 0.0`: a window where nothing moved scores 0, not -0
        score: (-min_p.max(1e-16).log10()).clamp(0.0, 16.0) + 0.0,
        alert: !features.is_empty(),
        features,
        detail,
    }
}

/// Fisher's combination of per-observation p-values given per bin: `n_b`
/// observations of the window with p-value `p_b` each.
fn fisher(per_bin: impl Iterator<Item = (u64, f64)>) -> f64 {
    let (mut n, mut x) = (0u64, 0.0);
    for (count, p) in per_bin {
        if count > 0 {
            n += count;
            x -= 2.0 * count as f64 * p.ln();
        }
    }
    if n == 0 {
        return 1.0;
    }
    chi_square_sf(x, 2.0 * n as f64)
}

/// Conformal p-values of an ordered, binned feature combined over the
/// window: each window observation in bin `b` gets twice the smaller tail of
/// the reference at `b`, ties included (module docs).
pub fn conformal_ordinal_p(window: &[u64], reference: &[u64]) -> f64 {
    let n_ref = reference.iter().sum::<u64>() as f64;
    if n_ref == 0.0 {
        return 1.0;
    }
    let mut below = 0u64;
    let per_bin = window.iter().enumerate().map(|(b, &w)| {
        let at = reference.get(b).copied().unwrap_or(0);
        let above = n_ref as u64 - below - at;
        let tail = (below.min(above) + at + 1) as f64 / (n_ref + 1.0);
        below += at;
        (w, (2.0 * tail).min(1.0))
    });
    fisher(per_bin.collect::<Vec<_>>().into_iter())
}

/// Conformal p-values of a categorical feature combined over the window: an
/// observation of class `c` gets the share of reference observations whose
/// class is at most as frequent as `c` (a class the reference never saw:
/// `1 / (N + 1)`).
pub fn conformal_categorical_p(window: &[u64], reference: &[u64]) -> f64 {
    let n_ref = reference.iter().sum::<u64>() as f64;
    if n_ref == 0.0 {
        return 1.0;
    }
    let per_bin = window.iter().zip(reference).map(|(&w, &r)| {
        let as_rare: u64 = reference.iter().filter(|&&x| x <= r).sum();
        (w, (as_rare + 1) as f64 / (n_ref + 1.0))
    });
    fisher(per_bin)
}

/// The feature's p-value: the conformal test's, and from [`LARGE_WINDOW`]
/// captures on twice the smaller of it and the asymptotic test's.
fn feature_p(n: u64, conformal: f64, asymptotic: impl FnOnce() -> f64) -> f64 {
    if n < LARGE_WINDOW {
        conformal
    } else {
        (2.0 * conformal.min(asymptotic())).min(1.0)
    }
}

/// Captures an hour's test wants before it stops reaching back, and how far
/// it reaches: at a few captures an hour (the demo's rate) no test can tell
/// a shift from chance in one hour, so an hour is tested together with the
/// hours just before it, up to [`MAX_TRAILING_HOURS`] in all. At production
/// rates every hour holds enough on its own and is tested alone.
pub const MIN_TEST_CAPTURES: u64 = 4;
pub const MAX_TRAILING_HOURS: usize = 3;

/// The window an hour is tested on: `hours` yields the hour itself, then the
/// hours before it, newest first (`None`: an hour without captures). Returns
/// the merged summary and how many hours it spans.
pub fn trailing<'a>(
    hours: impl IntoIterator<Item = Option<&'a ProfileSummary>>,
) -> (ProfileSummary, usize) {
    let mut merged = ProfileSummary::default();
    let mut used = 0;
    for hour in hours.into_iter().take(MAX_TRAILING_HOURS) {
        if used > 0 && merged.profiled >= MIN_TEST_CAPTURES {
            break;
        }
        if let Some(h) = hour {
            merged.merge(h);
        }
        used += 1;
    }
    (merged, used.max(1))
}

/// Population stability index of `actual` against `expected`, with half a
/// count added to every bin on both sides (empty bins would be infinite).
pub fn psi(actual: &[u64], expected: &[u64]) -> f64 {
    let (a, e) = smoothed(actual, expected);
    a.iter().zip(&e).map(|(a, e)| (a - e) * (a / e).ln()).sum()
}

/// Jensen–Shannon divergence in bits (0 same, 1 disjoint), unsmoothed.
pub fn jensen_shannon(p: &[u64], q: &[u64]) -> f64 {
    let (sp, sq) = (p.iter().sum::<u64>() as f64, q.iter().sum::<u64>() as f64);
    if sp == 0.0 || sq == 0.0 {
        return 0.0;
    }
    let kl = |x: f64, m: f64| if x > 0.0 { x * (x / m).log2() } else { 0.0 };
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let (a, b) = (a as f64 / sp, b as f64 / sq);
            let m = (a + b) / 2.0;
            0.5 * kl(a, m) + 0.5 * kl(b, m)
        })
        .sum()
}

/// Chi-square test of homogeneity of two count vectors over the same bins
/// (bins empty on both sides dropped): the p-value.
pub fn chi_square_p(a: &[u64], b: &[u64]) -> f64 {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    if na == 0.0 || nb == 0.0 {
        return 1.0;
    }
    let n = na + nb;
    let mut stat = 0.0;
    let mut dof = 0usize;
    for (&x, &y) in a.iter().zip(b) {
        let col = (x + y) as f64;
        if col == 0.0 {
            continue;
        }
        dof += 1;
        let (ex, ey) = (na * col / n, nb * col / n);
        stat += (x as f64 - ex).powi(2) / ex + (y as f64 - ey).powi(2) / ey;
    }
    if dof < 2 {
        return 1.0;
    }
    chi_square_sf(stat, (dof - 1) as f64)
}

/// Two-sample Kolmogorov–Smirnov on binned samples: D and the asymptotic
/// p-value (with Stephens' small-sample correction of the effective size).
pub fn ks_binned(a: &[u64], b: &[u64]) -> (f64, f64) {
    let (na, nb) = (a.iter().sum::<u64>() as f64, b.iter().sum::<u64>() as f64);
    if na == 0.0 || nb == 0.0 {
        return (0.0, 1.0);
    }
    let (mut ca, mut cb, mut d) = (0.0, 0.0, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ca += x as f64 / na;
        cb += y as f64 / nb;
        d = d.max((ca - cb).abs());
    }
    let ne = (na * nb / (na + nb)).sqrt();
    let lambda = (ne + 0.12 + 0.11 / ne) * d;
    (d, kolmogorov_sf(lambda))
}

fn binned(name: &str, w: &Histogram, r: &Histogram) -> FeatureDrift {
    FeatureDrift {
        feature: name.into(),
        statistic: if w.total() > 0 && r.total() > 0 {
            psi(&w.counts, &r.counts)
        } else {
            0.0
        },
        p_value: feature_p(w.total(), conformal_ordinal_p(&w.counts, &r.counts), || {
            chi_square_p(&w.counts, &r.counts)
        }),
        n: w.total(),
        n_reference: r.total(),
    }
}

fn categorical(name: &str, w: &BTreeMap<String, u64>, r: &BTreeMap<String, u64>) -> FeatureDrift {
    let mut keys: Vec<&String> = w.keys().chain(r.keys()).collect();
    keys.sort();
    keys.dedup();
    let wc: Vec<u64> = keys
        .iter()
        .map(|k| w.get(*k).copied().unwrap_or(0))
        .collect();
    let rc: Vec<u64> = keys
        .iter()
        .map(|k| r.get(*k).copied().unwrap_or(0))
        .collect();
    FeatureDrift {
        feature: name.into(),
        statistic: jensen_shannon(&wc, &rc),
        p_value: feature_p(wc.iter().sum(), conformal_categorical_p(&wc, &rc), || {
            chi_square_p(&wc, &rc)
        }),
        n: wc.iter().sum(),
        n_reference: rc.iter().sum(),
    }
}

fn ks(name: &str, w: &Histogram, r: &Histogram) -> FeatureDrift {
    let (d, p) = ks_binned(&w.counts, &r.counts);
    FeatureDrift {
        feature: name.into(),
        statistic: d,
        p_value: feature_p(w.total(), conformal_ordinal_p(&w.counts, &r.counts), || p),
        n: w.total(),
        n_reference: r.total(),
    }
}

fn smoothed(a: &[u64], b: &[u64]) -> (Vec<f64>, Vec<f64>) {
    let norm = |v: &[u64]| {
        let total = v.iter().sum::<u64>() as f64 + 0.5 * v.len() as f64;
        v.iter()
            .map(|&x| (x as f64 + 0.5) / total)
            .collect::<Vec<_>>()
    };
    (norm(a), norm(b))
}

/// P(K > lambda) for the Kolmogorov distribution.
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for j in 1..=100 {
        let j = f64::from(j);
        let term = 2.0 * (-1f64).powf(j - 1.0) * (-2.0 * j * j * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-17 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// Upper tail of the chi-square distribution: Q(k/2, x/2).
fn chi_square_sf(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    upper_gamma_regularized(k / 2.0, x / 2.0)
}

/// Q(a, x), the regularized upper incomplete gamma function (Numerical
/// Recipes' series for x < a + 1, continued fraction otherwise).
fn upper_gamma_regularized(a: f64, x: f64) -> f64 {
    let gln = ln_gamma(a);
    if x < a + 1.0 {
        let (mut ap, mut sum, mut del) = (a, 1.0 / a, 1.0 / a);
        for _ in 0..100_000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * (-x + a * x.ln() - gln).exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..100_000 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        ((-x + a * x.ln() - gln).exp() * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x), Lanczos (g = 7, n = 9), x > 0.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BBox;
    use crate::profile::{ImageSignals, NmsSignals};
    use crate::records::Detection;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn p_values_match_known_tables() {
        // chi2.sf(3.84145882, 1) = 0.05 and chi2.sf(18.307038, 10) = 0.05 (tables);
        // for 3 degrees of freedom the closed form erfc(√(x/2)) + √(2x/π)·e^(−x/2)
        // gives 1.0655090e-8 at x = 40
        assert!(close(chi_square_sf(3.841_458_82, 1.0), 0.05, 1e-6));
        assert!(close(chi_square_sf(18.307_038, 10.0), 0.05, 1e-5));
        assert!(close(chi_square_sf(40.0, 3.0), 1.065_509_033e-8, 1e-6));
        assert_eq!(chi_square_sf(0.0, 3.0), 1.0);
        // Kolmogorov's series 2·Σ(−1)^(j−1)·e^(−2j²λ²): 0.0494859 at 1.36, 0.2699997 at 1
        assert!(close(kolmogorov_sf(1.36), 0.049_485_877, 1e-6));
        assert!(close(kolmogorov_sf(1.0), 0.269_999_67, 1e-6));
        assert!(close(ln_gamma(5.0), 24f64.ln(), 1e-13));
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
    }

    #[test]
    fn identical_samples_do_not_drift_and_disjoint_ones_do() {
        let a = [10, 20, 30, 40, 0];
        assert_eq!(chi_square_p(&a, &a), 1.0);
        assert_eq!(ks_binned(&a, &a).0, 0.0);
        assert!(psi(&a, &a).abs() < 1e-15);
        assert!(jensen_shannon(&a, &a).abs() < 1e-15);
        let b = [0, 0, 0, 0, 100];
        assert!(
            (jensen_shannon(&a, &b) - 1.0).abs() < 1e-12,
            "disjoint = 1 bit"
        );
        let (d, p) = ks_binned(&a, &b);
        assert_eq!(d, 1.0);
        assert!(p < 1e-15, "{p}");
        assert!(chi_square_p(&a, &b) < 1e-15);
        assert!(psi(&a, &b) > 1.0);
    }

    #[test]
    fn the_same_shift_is_significant_only_with_enough_captures() {
        // GIVEN a reference of 1000 and a window shifted by a tenth of the range
        let mut reference = Histogram::new(50);
        let mut small = Histogram::new(50);
        let mut large = Histogram::new(50);
        for i in 0..1000 {
            reference.add(20 + i % 10);
            large.add(25 + i % 10);
        }
        for i in 0..4 {
            small.add(25 + i % 10);
        }
        let (d_small, p_small) = ks_binned(&small.counts, &reference.counts);
        let (d_large, p_large) = ks_binned(&large.counts, &reference.counts);
        assert!(d_small > 0.4 && d_large > 0.4);
        assert!(p_small > 0.01, "4 captures: not evidence ({p_small})");
        assert!(p_large < 1e-12, "1000 captures: overwhelming ({p_large})");
    }

    fn profile(luminance: f64, sharpness: f64, dets: &[(&str, f64)]) -> CaptureProfile {
        let detections: Vec<Detection> = dets
            .iter()
            .map(|(label, score)| Detection {
                label: (*label).into(),
                class_id: 0,
                score: *score,
                bbox: BBox {
                    x1: 0.0,
                    y1: 0.0,
                    x2: 100.0,
                    y2: 100.0,
                },
            })
            .collect();
        CaptureProfile::new(
            &detections,
            400,
            300,
            "image/jpeg",
            ImageSignals {
                luminance,
                contrast: luminance / 3.0,
                sharpness,
                measured_width: 416,
                measured_height: 312,
            },
            NmsSignals::default(),
        )
    }

    fn summary(n: usize, f: impl Fn(usize) -> CaptureProfile) -> ProfileSummary {
        let mut s = ProfileSummary::default();
        for i in 0..n {
            s.add(Some(&f(i)));
        }
        s
    }

    #[test]
    fn merging_windows_equals_summing_their_captures() {
        let p = |i: usize| profile(0.3 + 0.01 * i as f64, 1e-2, &[("dog", 0.5), ("cat", 0.9)]);
        let whole = summary(10, p);
        let mut merged = summary(4, p);
        let mut rest = ProfileSummary::default();
        for i in 4..10 {
            rest.add(Some(&p(i)));
        }
        rest.add(None);
        merged.merge(&rest);
        assert_eq!(merged.captures, 11);
        merged.captures -= 1;
        // sums of floats in another order: equal to rounding
        assert!((merged.top_score_sum - whole.top_score_sum).abs() < 1e-12);
        merged.top_score_sum = whole.top_score_sum;
        assert_eq!(merged, whole);
    }

    /// A deterministic stream in `[0, 1)` (no RNG crate in the domain library).
    fn uniform(seed: u64) -> impl FnMut() -> f64 {
        let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn tiny_windows_drawn_like_the_reference_rarely_alert() {
        // GIVEN a reference of 200 captures and 3000 windows of 1–3 captures
        // drawn from the same distribution (skewed luminance, a lumpy class mix)
        let mut u = uniform(7);
        let mut draw = move || {
            let l = u().powi(2) * 0.8 + 0.05;
            let class = match (u() * 100.0) as u32 {
                0..=59 => "dog",
                60..=89 => "cat",
                90..=97 => "horse",
                _ => "bear",
            };
            let score = 0.3 + 0.65 * u();
            profile(l, 1e-4 + u() * 1e-2, &[(class, score)])
        };
        let mut reference = ProfileSummary::default();
        for _ in 0..200 {
            reference.add(Some(&draw()));
        }
        let (mut alerts, mut below_5pc, windows) = (0, 0, 3000);
        for i in 0..windows {
            let mut w = ProfileSummary::default();
            for _ in 0..(1 + i % 3) {
                w.add(Some(&draw()));
            }
            let r = compare(&w, &reference, DEFAULT_ALPHA);
            alerts += usize::from(r.alert);
            below_5pc += usize::from(r.score > -(0.05f64).log10());
        }
        // THEN the false-alarm rates stay at their nominal levels or below
        // (the chi-square on a rare class seen once would alert here)
        assert!(
            alerts <= 6,
            "{alerts} alerts in {windows} windows at alpha 1e-3"
        );
        assert!(below_5pc <= windows / 20, "{below_5pc} windows under 5%");
    }

    #[test]
    fn two_captures_far_outside_a_large_reference_alert() {
        let day = |i: usize| {
            profile(
                0.3 + 0.4 * ((i * 37 % 100) as f64 / 100.0),
                1e-3,
                &[("dog", 0.8)],
            )
        };
        let reference = summary(1000, day);
        let dark = summary(2, |_| profile(0.03, 1e-3, &[("dog", 0.8)]));
        let r = compare(&dark, &reference, DEFAULT_ALPHA);
        assert!(r.alert, "{r:?}");
        assert_eq!(r.features, ["luminance", "contrast"], "{r:?}");
        // and one capture alone is not enough evidence at this alpha
        assert!(
            !compare(
                &summary(1, |_| profile(0.03, 1e-3, &[("dog", 0.8)])),
                &reference,
                DEFAULT_ALPHA
            )
            .alert
        );
    }

    #[test]
    fn an_hour_reaches_back_only_while_it_is_small() {
        let one = summary(1, |_| profile(0.5, 1e-3, &[]));
        let five = summary(5, |_| profile(0.5, 1e-3, &[]));
        let (m, h) = trailing([Some(&five), Some(&one)]);
        assert_eq!((m.captures, h), (5, 1), "enough alone");
        let (m, h) = trailing([Some(&one), None, Some(&one), Some(&five)]);
        assert_eq!((m.captures, h), (2, 3), "three hours at most");
        let (m, h) = trailing([Some(&one), Some(&five), Some(&five)]);
        assert_eq!((m.captures, h), (6, 2));
        assert_eq!(trailing([None]).1, 1);
    }

    #[test]
    fn a_dark_hour_alerts_on_luminance_and_a_like_one_does_not() {
        // GIVEN a reference of 200 varied daylight captures
        let day = |i: usize| {
            let l = 0.35 + 0.3 * ((i * 37 % 100) as f64 / 100.0);
            let s = 1e-3 * (1.0 + (i * 53 % 100) as f64 / 25.0);
            profile(l, s, &[("dog", 0.4 + 0.5 * ((i * 11 % 10) as f64 / 10.0))])
        };
        let reference = summary(200, day);
        // WHEN an hour of 6 captures like them, and an hour of 6 at a tenth of the light
        let like = summary(6, |i| day(i * 7 + 3));
        let dark = summary(6, |i| {
            let p = day(i * 7 + 3);
            profile(
                p.image.luminance / 10.0,
                p.image.sharpness / 50.0,
                &[("dog", 0.25)],
            )
        });
        let calm = compare(&like, &reference, DEFAULT_ALPHA);
        let alarm = compare(&dark, &reference, DEFAULT_ALPHA);
        // THEN only the dark hour alerts, naming luminance among what moved
        assert!(!calm.alert, "{calm:?}");
        assert!(alarm.alert, "{alarm:?}");
        assert!(
            alarm.features.contains(&"luminance".to_string()),
            "{alarm:?}"
        );
        assert!(alarm.score > calm.score + 2.0);
        // an empty window compares as nothing moved
        let empty = compare(&ProfileSummary::default(), &reference, DEFAULT_ALPHA);
        assert_eq!((empty.score, empty.alert), (0.0, false));
    }
}

//! COCOeval's `accumulate` and `summarize` over stored per-image evaluations,
//! plus the operating-point figures a dashboard wants (precision, recall and
//! F1 at one IoU and score threshold, mean IoU of the matches).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::image::{ClassEval, Outcome};
use super::params::{
    MAX_DETS, NUM_AREAS, NUM_IOU_THRS, NUM_REC_THRS, iou_threshold_index, recall_thresholds,
};

const NUM_MAX_DETS: usize = MAX_DETS.len();
/// The maxDets index whose precision COCOeval's `summarize` reads (100).
const LAST_M: usize = NUM_MAX_DETS - 1;

/// pycocotools' `np.spacing(1)`, added to precision's denominator.
const EPS: f64 = f64::EPSILON;

/// COCOeval's recall `[T, K, A, M]` array and its precision `[T, R, K, A, M]`
/// at the largest maxDets (100, the only one `summarize` reads), -1 where
/// undefined.
///
/// Precision is non-increasing along the recall thresholds and reaches 0 past
/// the highest recall; only its leading nonzero values are kept, per
/// (area, IoU threshold, class). Recall is `recall[m][a][t][k]`.
#[derive(Debug, Clone)]
pub struct Accumulated {
    pub category_ids: Vec<u64>,
    /// `defined[a * nk + k]`: the class has ground truth in area range `a`.
    defined: Vec<bool>,
    /// Per `(a * NUM_IOU_THRS + t) * nk + k`: where its nonzero precisions
    /// start in `curves`, and how many there are.
    curve_at: Vec<(u32, u32)>,
    curves: Vec<f64>,
    recall: Vec<f64>,
}

impl Accumulated {
    fn c_idx(&self, t: usize, k: usize, a: usize) -> usize {
        let nk = self.category_ids.len();
        (a * NUM_IOU_THRS + t) * nk + k
    }

    fn r_idx(&self, t: usize, k: usize, a: usize, m: usize) -> usize {
        let nk = self.category_ids.len();
        ((m * NUM_AREAS + a) * NUM_IOU_THRS + t) * nk + k
    }

    /// The nonzero precisions at (t, k, a), over the first recall thresholds.
    fn curve(&self, t: usize, k: usize, a: usize) -> &[f64] {
        let (start, len) = self.curve_at[self.c_idx(t, k, a)];
        &self.curves[start as usize..][..len as usize]
    }

    /// COCOeval's `precision[t, r, k, a, m]`. Only the largest maxDets
    /// (`m` = 2, 100 detections) is kept: other `m` panic.
    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        assert_eq!(m, LAST_M, "precision is kept for maxDets=100 only");
        assert!(t < NUM_IOU_THRS && r < NUM_REC_THRS);
        if !self.defined[a * self.category_ids.len() + k] {
            return -1.0;
        }
        self.curve(t, k, a).get(r).copied().unwrap_or(0.0)
    }

    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[self.r_idx(t, k, a, m)]
    }
}

/// Buffers reused across classes and passes.
#[derive(Default)]
struct Scratch {
    /// `(score, cell, detection)`, in COCOeval's score order.
    order: Vec<(f64, u32, u32)>,
    /// Outcomes in score order, one row per (area, IoU threshold):
    /// `rows[(a * NUM_IOU_THRS + t) * n + p]`.
    rows: Vec<Outcome>,
    /// Precision at each true positive, in score order.
    pr: Vec<f64>,
}

/// Accumulates per-image evaluations, given image by image in the order
/// COCOeval would visit them (ascending image id), over the category axis
/// `category_ids` (ascending). Cells of other categories are ignored.
pub fn accumulate<'a, I>(images: I, category_ids: &[u64]) -> Accumulated
where
    I: IntoIterator<Item = &'a [ClassEval]>,
{
    let nk = category_ids.len();
    let mut by_class: Vec<Vec<&ClassEval>> = vec![Vec::new(); nk];
    for cells in images {
        for cell in cells {
            if let Ok(k) = category_ids.binary_search(&cell.category_id) {
                by_class[k].push(cell);
            }
        }
    }

    let mut acc = Accumulated {
        category_ids: category_ids.to_vec(),
        defined: vec![false; NUM_AREAS * nk],
        curve_at: vec![(0, 0); NUM_AREAS * NUM_IOU_THRS * nk],
        curves: Vec::new(),
        recall: vec![-1.0; NUM_MAX_DETS * NUM_AREAS * NUM_IOU_THRS * nk],
    };
    let rec_thrs = recall_thresholds();
    let mut s = Scratch::default();

    for (k, cells) in by_class.iter().enumerate() {
        let mut npig = [0u64; NUM_AREAS];
        for c in cells {
            for (n, &g) in npig.iter_mut().zip(&c.num_gt) {
                *n += u64::from(g);
            }
        }
        if npig.iter().all(|&n| n == 0) {
            continue;
        }
        for (a, &n) in npig.iter().enumerate() {
            acc.defined[a * nk + k] = n > 0;
        }

        // Recall at the smaller maxDets: true positives among each cell's
        // first `max_det` detections, in any order.
        for (m, &max_det) in MAX_DETS.iter().enumerate().take(LAST_M) {
            for a in (0..NUM_AREAS).filter(|&a| npig[a] > 0) {
                for t in 0..NUM_IOU_THRS {
                    let tp: u64 = cells
                        .iter()
                        .map(|c| {
                            let o = c.outcomes(a, t);
                            o[..o.len().min(max_det)]
                                .iter()
                                .filter(|&&o| o == Outcome::TruePositive)
                                .count() as u64
                        })
                        .sum();
                    let ri = acc.r_idx(t, k, a, m);
                    acc.recall[ri] = tp as f64 / npig[a] as f64;
                }
            }
        }

        // The detections kept at maxDets=100, sorted: stable, descending,
        // numpy's argsort(-scores, kind="mergesort") over the cells'
        // detections concatenated in order.
        let max_det = MAX_DETS[LAST_M];
        s.order.clear();
        for (ci, cell) in cells.iter().enumerate() {
            let n = cell.num_detections().min(max_det);
            s.order
                .extend((0..n).map(|d| (cell.scores[d], ci as u32, d as u32)));
        }
        s.order.sort_by(|a, b| b.0.total_cmp(&a.0));
        let n = s.order.len();

        // Outcomes in score order, one row per (area, IoU threshold).
        s.rows.clear();
        s.rows
            .resize(NUM_AREAS * NUM_IOU_THRS * n, Outcome::Ignored);
        for (p, &(_, ci, d)) in s.order.iter().enumerate() {
            let cell = cells[ci as usize];
            for a in (0..NUM_AREAS).filter(|&a| npig[a] > 0) {
                for t in 0..NUM_IOU_THRS {
                    s.rows[(a * NUM_IOU_THRS + t) * n + p] = cell.outcomes(a, t)[d as usize];
                }
            }
        }

        for a in (0..NUM_AREAS).filter(|&a| npig[a] > 0) {
            let npig_f = npig[a] as f64;
            for t in 0..NUM_IOU_THRS {
                let row = &s.rows[(a * NUM_IOU_THRS + t) * n..][..n];
                // Cumulative counts, and precision at each true positive.
                // Elsewhere precision only repeats or falls, so precision
                // made monotone from the right, read at the first index
                // reaching a recall threshold (a true positive, or index 0),
                // is the max over the true positives from there on.
                let (mut tp, mut fp) = (0u64, 0u64);
                s.pr.clear();
                for &o in row {
                    match o {
                        Outcome::TruePositive => {
                            tp += 1;
                            let (tpf, fpf) = (tp as f64, fp as f64);
                            s.pr.push(tpf / (fpf + tpf + EPS));
                        }
                        Outcome::FalsePositive => fp += 1,
                        Outcome::Ignored => {}
                    }
                }
                let ri = acc.r_idx(t, k, a, LAST_M);
                acc.recall[ri] = tp as f64 / npig_f;
                let pr = &mut s.pr;
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                // searchsorted(rc, rec_thrs, side="left"): the thresholds
                // up to the j-th true positive's recall (j + 1) / npig that
                // earlier ones did not reach read its precision; thresholds
                // past the last recall read 0, left implicit.
                let start = acc.curves.len();
                let mut r = 0;
                for (j, &p) in pr.iter().enumerate() {
                    let rc = (j + 1) as f64 / npig_f;
                    while r < NUM_REC_THRS && rec_thrs[r] <= rc {
                        acc.curves.push(p);
                        r += 1;
                    }
                    if r == NUM_REC_THRS {
                        break;
                    }
                }
                let ci = acc.c_idx(t, k, a);
                acc.curve_at[ci] = (start as u32, r as u32);
            }
        }
    }
    acc
}

/// COCOeval's twelve summary numbers and AP per class; -1 where undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CocoSummary {
    #[serde(rename = "AP")]
    pub ap: f64,
    #[serde(rename = "AP50")]
    pub ap50: f64,
    #[serde(rename = "AP75")]
    pub ap75: f64,
    #[serde(rename = "APs")]
    pub ap_small: f64,
    #[serde(rename = "APm")]
    pub ap_medium: f64,
    #[serde(rename = "APl")]
    pub ap_large: f64,
    #[serde(rename = "AR1")]
    pub ar1: f64,
    #[serde(rename = "AR10")]
    pub ar10: f64,
    #[serde(rename = "AR100")]
    pub ar100: f64,
    #[serde(rename = "ARs")]
    pub ar_small: f64,
    #[serde(rename = "ARm")]
    pub ar_medium: f64,
    #[serde(rename = "ARl")]
    pub ar_large: f64,
    /// Keyed by class name.
    pub per_class: BTreeMap<String, ClassAp>,
}

impl CocoSummary {
    /// The twelve numbers in pycocotools' `COCOeval.stats` order.
    pub fn stats(&self) -> [f64; 12] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar1,
            self.ar10,
            self.ar100,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassAp {
    #[serde(rename = "AP")]
    pub ap: f64,
    #[serde(rename = "AP50")]
    pub ap50: f64,
}

/// Mean of the defined (> -1) values, or -1 when there are none.
fn mean_defined(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .filter(|&v| v > -1.0)
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { -1.0 } else { sum / n as f64 }
}

impl Accumulated {
    /// `_summarize(ap=1, ...)` at maxDets=100: mean precision over the chosen
    /// slice. pycocotools sums in (IoU threshold, recall threshold, class)
    /// order, skipping -1; adding the zeros changes nothing, so only the
    /// nonzero values are added, in that same order.
    fn mean_precision(&self, thr: Option<usize>, k: Option<usize>, a: usize) -> f64 {
        let nk = self.category_ids.len();
        let ts = thr.map_or(0..NUM_IOU_THRS, |t| t..t + 1);
        let defined = &self.defined[a * nk..(a + 1) * nk];
        let ks = k.map_or(0..nk, |k| k..k + 1);
        let n_defined = defined[ks.clone()].iter().filter(|&&d| d).count();
        if n_defined == 0 {
            return -1.0;
        }
        let mut sum = 0.0;
        match k {
            Some(k) => {
                for t in ts.clone() {
                    for &v in self.curve(t, k, a) {
                        sum += v;
                    }
                }
            }
            None => {
                let mut active: Vec<(u32, u32)> = Vec::with_capacity(nk);
                for t in ts.clone() {
                    let at = &self.curve_at[self.c_idx(t, 0, a)..][..nk];
                    active.clear();
                    active.extend(at.iter().copied().filter(|&(_, len)| len > 0));
                    for r in 0..NUM_REC_THRS as u32 {
                        active.retain(|&(_, len)| len > r);
                        if active.is_empty() {
                            break;
                        }
                        for &(start, _) in &active {
                            sum += self.curves[(start + r) as usize];
                        }
                    }
                }
            }
        }
        sum / (n_defined * ts.len() * NUM_REC_THRS) as f64
    }

    /// `_summarize(ap=0, ...)`: mean recall over the chosen slice.
    fn mean_recall(&self, a: usize, m: usize) -> f64 {
        let nk = self.category_ids.len();
        let from = self.r_idx(0, 0, a, m);
        mean_defined(self.recall[from..from + NUM_IOU_THRS * nk].iter().copied())
    }

    /// COCOeval.summarize()'s `stats`, and AP / AP50 per class named by `class_name`.
    pub fn summarize(&self, class_name: impl Fn(u64) -> String) -> CocoSummary {
        let last = LAST_M;
        let t50 = iou_threshold_index(0.5);
        let t75 = iou_threshold_index(0.75);
        let mut per_class = BTreeMap::new();
        for (k, &cat) in self.category_ids.iter().enumerate() {
            let mut name = class_name(cat);
            if per_class.contains_key(&name) {
                name = format!("{name} (id {cat})");
            }
            per_class.insert(
                name,
                ClassAp {
                    ap: self.mean_precision(None, Some(k), 0),
                    ap50: self.mean_precision(t50, Some(k), 0),
                },
            );
        }
        CocoSummary {
            ap: self.mean_precision(None, None, 0),
            ap50: self.mean_precision(t50, None, 0),
            ap75: self.mean_precision(t75, None, 0),
            ap_small: self.mean_precision(None, None, 1),
            ap_medium: self.mean_precision(None, None, 2),
            ap_large: self.mean_precision(None, None, 3),
            ar1: self.mean_recall(0, 0),
            ar10: self.mean_recall(0, 1),
            ar100: self.mean_recall(0, last),
            ar_small: self.mean_recall(1, last),
            ar_medium: self.mean_recall(2, last),
            ar_large: self.mean_recall(3, last),
            per_class,
        }
    }
}

/// Counts and rates at one operating point: detections scoring at least
/// `score_threshold`, matched at IoU threshold `iou` (a grid value), all areas,
/// at most 100 detections per image and class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub iou: f64,
    pub score_threshold: f64,
    pub tp: u64,
    pub fp: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// `None` when nothing was detected (or nothing to find, for recall).
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// Mean IoU of the true positives at IoU 0.5; `None` without any.
    pub mean_iou: Option<f64>,
}

/// The operating point over any set of per-image class evaluations.
/// `iou` must be on the COCO grid (.50:.05:.95).
pub fn operating_point<'a>(
    cells: impl IntoIterator<Item = &'a ClassEval>,
    iou: f64,
    score_threshold: f64,
) -> Option<OperatingPoint> {
    let t = iou_threshold_index(iou)?;
    let (mut tp, mut fp, mut npig) = (0u64, 0u64, 0u64);
    let (mut iou_sum, mut iou_n) = (0.0, 0u64);
    for cell in cells {
        npig += u64::from(cell.num_gt[0]);
        let t50 = cell.outcomes(0, 0);
        for (d, &o) in cell.outcomes(0, t).iter().enumerate() {
            if cell.scores[d] < score_threshold {
                continue;
            }
            match o {
                Outcome::TruePositive => tp += 1,
                Outcome::FalsePositive => fp += 1,
                Outcome::Ignored => {}
            }
            if t50[d] == Outcome::TruePositive {
                iou_sum += cell.matched_iou50[d];
                iou_n += 1;
            }
        }
    }
    let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, npig);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    Some(OperatingPoint {
        iou,
        score_threshold,
        tp,
        fp,
        fn_: npig - tp.min(npig),
        precision,
        recall,
        f1,
        mean_iou: (iou_n > 0).then(|| iou_sum / iou_n as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::super::image::{DtBox, GtBox, evaluate_image};
    use super::*;

    fn gt(id: u64, bbox: [f64; 4]) -> GtBox {
        GtBox {
            id,
            category_id: 1,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd: false,
        }
    }

    fn dt(bbox: [f64; 4], score: f64) -> DtBox {
        DtBox {
            category_id: 1,
            bbox,
            score,
        }
    }

    #[test]
    fn perfect_detections_give_ap_one() {
        let b1 = [0.0, 0.0, 200.0, 200.0];
        let b2 = [300.0, 300.0, 150.0, 100.0];
        let img = evaluate_image(&[gt(1, b1), gt(2, b2)], &[dt(b1, 0.9), dt(b2, 0.8)], &[1]);
        let s = accumulate([img.as_slice()], &[1]).summarize(|_| "dog".into());
        assert_eq!(s.ap, 1.0 - 0.0); // every precision is 1
        assert_eq!(s.ap50, 1.0);
        assert_eq!(s.ar100, 1.0);
        assert_eq!(s.ap_small, -1.0, "no small objects: undefined");
        assert_eq!(s.per_class["dog"].ap, 1.0);
    }

    #[test]
    fn undefined_without_ground_truth() {
        let img = evaluate_image(&[], &[dt([0.0, 0.0, 5.0, 5.0], 0.5)], &[1]);
        let s = accumulate([img.as_slice()], &[1, 2]).summarize(|c| c.to_string());
        assert_eq!(s.ap, -1.0);
        assert_eq!(s.per_class["2"].ap, -1.0);
    }

    #[test]
    fn operating_point_counts_at_the_score_threshold() {
        let b = [0.0, 0.0, 100.0, 100.0];
        let img = evaluate_image(
            &[gt(1, b), gt(2, [500.0, 500.0, 50.0, 50.0])],
            &[dt(b, 0.9), dt([200.0, 200.0, 50.0, 50.0], 0.6), dt(b, 0.2)],
            &[1],
        );
        let op = operating_point(&img, 0.5, 0.5).unwrap();
        assert_eq!((op.tp, op.fp, op.fn_), (1, 1, 1));
        assert_eq!(op.precision, Some(0.5));
        assert_eq!(op.recall, Some(0.5));
        assert_eq!(op.f1, Some(0.5));
        assert_eq!(op.mean_iou, Some(1.0));
        assert!(operating_point(&img, 0.52, 0.5).is_none(), "off the grid");
    }
}

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

/// pycocotools' `np.spacing(1)`, added to precision's denominator.
const EPS: f64 = f64::EPSILON;

/// The precision `[T, R, K, A, M]` and recall `[T, K, A, M]` arrays of
/// COCOeval, -1 where undefined.
#[derive(Debug, Clone)]
pub struct Accumulated {
    pub category_ids: Vec<u64>,
    precision: Vec<f64>,
    recall: Vec<f64>,
}

impl Accumulated {
    fn p_idx(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> usize {
        let nk = self.category_ids.len();
        (((t * NUM_REC_THRS + r) * nk + k) * NUM_AREAS + a) * NUM_MAX_DETS + m
    }

    fn r_idx(&self, t: usize, k: usize, a: usize, m: usize) -> usize {
        let nk = self.category_ids.len();
        ((t * nk + k) * NUM_AREAS + a) * NUM_MAX_DETS + m
    }

    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        self.precision[self.p_idx(t, r, k, a, m)]
    }

    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        self.recall[self.r_idx(t, k, a, m)]
    }
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
        precision: vec![-1.0; NUM_IOU_THRS * NUM_REC_THRS * nk * NUM_AREAS * NUM_MAX_DETS],
        recall: vec![-1.0; NUM_IOU_THRS * nk * NUM_AREAS * NUM_MAX_DETS],
    };
    let rec_thrs = recall_thresholds();
    // (cell, detection) in score order; buffers reused across classes.
    let mut order: Vec<(f64, u32, u32)> = Vec::new();
    let mut pr: Vec<f64> = Vec::new();
    let mut rc: Vec<f64> = Vec::new();

    for (k, cells) in by_class.iter().enumerate() {
        if cells.is_empty() {
            continue;
        }
        for (m, &max_det) in MAX_DETS.iter().enumerate() {
            order.clear();
            for (ci, cell) in cells.iter().enumerate() {
                let n = cell.num_detections().min(max_det);
                order.extend((0..n).map(|d| (cell.scores[d], ci as u32, d as u32)));
            }
            // Stable, descending: numpy's argsort(-scores, kind="mergesort").
            order.sort_by(|a, b| b.0.total_cmp(&a.0));

            for a in 0..NUM_AREAS {
                let npig: u64 = cells.iter().map(|c| u64::from(c.num_gt[a])).sum();
                if npig == 0 {
                    continue;
                }
                for t in 0..NUM_IOU_THRS {
                    let (mut tp, mut fp) = (0u64, 0u64);
                    pr.clear();
                    rc.clear();
                    for &(_, ci, d) in &order {
                        match cells[ci as usize].outcomes(a, t)[d as usize] {
                            Outcome::TruePositive => tp += 1,
                            Outcome::FalsePositive => fp += 1,
                            Outcome::Ignored => {}
                        }
                        let (tpf, fpf) = (tp as f64, fp as f64);
                        rc.push(tpf / npig as f64);
                        pr.push(tpf / (fpf + tpf + EPS));
                    }
                    let ri = acc.r_idx(t, k, a, m);
                    acc.recall[ri] = rc.last().copied().unwrap_or(0.0);
                    // Precision made monotone from the right.
                    for i in (1..pr.len()).rev() {
                        if pr[i] > pr[i - 1] {
                            pr[i - 1] = pr[i];
                        }
                    }
                    // searchsorted(rc, rec_thrs, side="left"); past the end stays 0.
                    let mut i = 0;
                    for (r, &thr) in rec_thrs.iter().enumerate() {
                        while i < rc.len() && rc[i] < thr {
                            i += 1;
                        }
                        let pi = acc.p_idx(t, r, k, a, m);
                        acc.precision[pi] = if i < pr.len() { pr[i] } else { 0.0 };
                    }
                }
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
    /// `_summarize(ap=1, ...)`: mean precision over the chosen slice.
    fn mean_precision(&self, thr: Option<usize>, k: Option<usize>, a: usize, m: usize) -> f64 {
        let ts = thr.map_or(0..NUM_IOU_THRS, |t| t..t + 1);
        let ks = k.map_or(0..self.category_ids.len(), |k| k..k + 1);
        mean_defined(ts.flat_map(|t| {
            let ks = ks.clone();
            (0..NUM_REC_THRS)
                .flat_map(move |r| ks.clone().map(move |k| (r, k)))
                .map(move |(r, k)| self.precision(t, r, k, a, m))
        }))
    }

    /// `_summarize(ap=0, ...)`: mean recall over the chosen slice.
    fn mean_recall(&self, a: usize, m: usize) -> f64 {
        let nk = self.category_ids.len();
        mean_defined((0..NUM_IOU_THRS).flat_map(|t| (0..nk).map(move |k| self.recall(t, k, a, m))))
    }

    /// COCOeval.summarize()'s `stats`, and AP / AP50 per class named by `class_name`.
    pub fn summarize(&self, class_name: impl Fn(u64) -> String) -> CocoSummary {
        let last = NUM_MAX_DETS - 1;
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
                    ap: self.mean_precision(None, Some(k), 0, last),
                    ap50: self.mean_precision(t50, Some(k), 0, last),
                },
            );
        }
        CocoSummary {
            ap: self.mean_precision(None, None, 0, last),
            ap50: self.mean_precision(t50, None, 0, last),
            ap75: self.mean_precision(t75, None, 0, last),
            ap_small: self.mean_precision(None, None, 1, last),
            ap_medium: self.mean_precision(None, None, 2, last),
            ap_large: self.mean_precision(None, None, 3, last),
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

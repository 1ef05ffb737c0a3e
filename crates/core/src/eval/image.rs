//! Per-image evaluation: COCOeval's `evaluateImg`, once per image, kept as a
//! small record that any window can later accumulate without re-matching boxes.

use crate::boxes::coco_iou;

use super::params::{AREA_RANGES, MAX_DETS_PER_CELL, NUM_AREAS, NUM_IOU_THRS, iou_thresholds};

/// A ground-truth box as COCOeval sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GtBox {
    /// Annotation id. pycocotools records a match as the matched ground truth's
    /// id, so a ground truth with id 0 never counts as matched: we keep that.
    pub id: u64,
    pub category_id: u64,
    /// COCO `[x, y, w, h]`.
    pub bbox: [f64; 4],
    /// The annotation's `area`: what the area ranges are judged on.
    pub area: f64,
    /// Crowd regions are ignored, and may match many detections.
    pub iscrowd: bool,
}

/// A detection as COCOeval sees it; its area is `w * h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DtBox {
    pub category_id: u64,
    pub bbox: [f64; 4],
    pub score: f64,
}

/// What a detection counted as, at one IoU threshold and area range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    /// Matched a ground truth that counts.
    TruePositive = b'T',
    /// Matched nothing that counts.
    FalsePositive = b'F',
    /// Matched an ignored ground truth, or unmatched and outside the area range.
    Ignored = b'I',
}

/// The evaluation of one class in one image: everything `accumulate` reads.
///
/// Detections are sorted by score (descending, ties in input order) and cut
/// to the 100 that COCOeval keeps. `outcomes` holds one byte per
/// (area range, IoU threshold, detection), in that nesting order.
///
/// Stored (inside an `ImageEval`) as `eval::stored` lays it out.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassEval {
    pub category_id: u64,
    /// Ground truths that count toward recall, per area range.
    pub num_gt: [u32; NUM_AREAS],
    pub scores: Vec<f64>,
    outcomes: Vec<Outcome>,
    /// IoU with the matched ground truth at IoU 0.5 over all areas, 0 when unmatched.
    pub matched_iou50: Vec<f64>,
}

impl ClassEval {
    pub fn num_detections(&self) -> usize {
        self.scores.len()
    }

    /// Outcomes of every detection at area range `area` and IoU threshold index `thr`.
    #[inline]
    pub fn outcomes(&self, area: usize, thr: usize) -> &[Outcome] {
        let n = self.scores.len();
        let start = (area * NUM_IOU_THRS + thr) * n;
        &self.outcomes[start..start + n]
    }

    /// Every outcome, in (area range, IoU threshold, detection) order.
    pub(super) fn all_outcomes(&self) -> &[Outcome] {
        &self.outcomes
    }

    /// From its parts, lengths already checked by the caller (the stored form's reader).
    pub(super) fn from_parts(
        category_id: u64,
        num_gt: [u32; NUM_AREAS],
        scores: Vec<f64>,
        outcomes: Vec<Outcome>,
        matched_iou50: Vec<f64>,
    ) -> Self {
        debug_assert_eq!(outcomes.len(), NUM_AREAS * NUM_IOU_THRS * scores.len());
        debug_assert_eq!(matched_iou50.len(), scores.len());
        Self {
            category_id,
            num_gt,
            scores,
            outcomes,
            matched_iou50,
        }
    }
}

/// Evaluates one image: for every category in `categories` that has a ground
/// truth or a detection here, one [`ClassEval`], in ascending category order.
///
/// `gt` and `dt` are this image's annotations in file order (the order breaks
/// ties between equal scores, as in pycocotools). Annotations of categories
/// outside `categories` are ignored, as COCOeval ignores them.
pub fn evaluate_image(gt: &[GtBox], dt: &[DtBox], categories: &[u64]) -> Vec<ClassEval> {
    let mut gt_order: Vec<usize> = (0..gt.len()).collect();
    gt_order.sort_by_key(|&i| gt[i].category_id);
    let mut dt_order: Vec<usize> = (0..dt.len()).collect();
    dt_order.sort_by_key(|&i| dt[i].category_id);

    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let (mut gi, mut di) = (0, 0);
    while gi < gt_order.len() || di < dt_order.len() {
        let cat = match (gt_order.get(gi), dt_order.get(di)) {
            (Some(&g), Some(&d)) => gt[g].category_id.min(dt[d].category_id),
            (Some(&g), None) => gt[g].category_id,
            (None, Some(&d)) => dt[d].category_id,
            (None, None) => unreachable!(),
        };
        let g_end = gi
            + gt_order[gi..]
                .iter()
                .take_while(|&&g| gt[g].category_id == cat)
                .count();
        let d_end = di
            + dt_order[di..]
                .iter()
                .take_while(|&&d| dt[d].category_id == cat)
                .count();
        if categories.binary_search(&cat).is_ok() {
            scratch.gts.clear();
            scratch
                .gts
                .extend(gt_order[gi..g_end].iter().map(|&g| gt[g]));
            scratch.dts.clear();
            scratch
                .dts
                .extend(dt_order[di..d_end].iter().map(|&d| dt[d]));
            out.push(scratch.evaluate_class(cat));
        }
        gi = g_end;
        di = d_end;
    }
    out
}

/// Buffers reused across the classes of an image.
#[derive(Default)]
struct Scratch {
    gts: Vec<GtBox>,
    dts: Vec<DtBox>,
    /// `ious[d * n_gt + g]`, ground truths in input order.
    ious: Vec<f64>,
    gt_ignore: Vec<bool>,
    gt_rank: Vec<usize>,
    gt_taken: Vec<bool>,
    /// Per detection at one threshold: index of the matched ground truth.
    matched: Vec<Option<usize>>,
}

impl Scratch {
    /// COCOeval's `computeIoU` + `evaluateImg` for one class, over all area ranges.
    fn evaluate_class(&mut self, category_id: u64) -> ClassEval {
        // Stable: equal scores keep input order, like numpy's mergesort.
        self.dts.sort_by(|a, b| b.score.total_cmp(&a.score));
        self.dts.truncate(MAX_DETS_PER_CELL);
        let (n_dt, n_gt) = (self.dts.len(), self.gts.len());

        self.ious.clear();
        for d in &self.dts {
            for g in &self.gts {
                self.ious.push(coco_iou(&d.bbox, &g.bbox, g.iscrowd));
            }
        }

        let thresholds = iou_thresholds();
        let mut num_gt = [0u32; NUM_AREAS];
        let mut outcomes = Vec::with_capacity(NUM_AREAS * NUM_IOU_THRS * n_dt);
        let mut matched_iou50 = vec![0.0; n_dt];
        for (a, &[lo, hi]) in AREA_RANGES.iter().enumerate() {
            self.gt_ignore.clear();
            self.gt_ignore.extend(
                self.gts
                    .iter()
                    .map(|g| g.iscrowd || g.area < lo || g.area > hi),
            );
            num_gt[a] = self.gt_ignore.iter().filter(|&&ig| !ig).count() as u32;
            // Ground truths that count first, ignored ones after, each in input order.
            self.gt_rank.clear();
            self.gt_rank
                .extend((0..n_gt).filter(|&g| !self.gt_ignore[g]));
            self.gt_rank
                .extend((0..n_gt).filter(|&g| self.gt_ignore[g]));

            for (t, &thr) in thresholds.iter().enumerate() {
                self.match_at(thr.min(1.0 - 1e-10));
                for (d, det) in self.dts.iter().enumerate() {
                    let m = self.matched[d];
                    // pycocotools stores the matched ground truth's id; id 0 reads as "no match".
                    let counted_match = m.is_some_and(|g| self.gts[g].id != 0);
                    let ignored = match m {
                        Some(g) if self.gt_ignore[g] => true,
                        _ => {
                            let area = det.bbox[2] * det.bbox[3];
                            !counted_match && (area < lo || area > hi)
                        }
                    };
                    outcomes.push(if ignored {
                        Outcome::Ignored
                    } else if counted_match {
                        Outcome::TruePositive
                    } else {
                        Outcome::FalsePositive
                    });
                    if a == 0 && t == 0 {
                        matched_iou50[d] = m.map_or(0.0, |g| self.ious[d * n_gt + g]);
                    }
                }
            }
        }
        ClassEval {
            category_id,
            num_gt,
            scores: self.dts.iter().map(|d| d.score).collect(),
            outcomes,
            matched_iou50,
        }
    }

    /// Greedy matching at one IoU threshold, exactly as `evaluateImg` does it.
    fn match_at(&mut self, thr: f64) {
        let n_gt = self.gts.len();
        self.gt_taken.clear();
        self.gt_taken.resize(n_gt, false);
        self.matched.clear();
        for d in 0..self.dts.len() {
            let row = &self.ious[d * n_gt..(d + 1) * n_gt];
            let mut best_iou = thr;
            let mut best: Option<usize> = None;
            for &g in &self.gt_rank {
                if self.gt_taken[g] && !self.gts[g].iscrowd {
                    continue;
                }
                // Once matched to a counted ground truth, ignored ones can't take over.
                if best.is_some_and(|m| !self.gt_ignore[m]) && self.gt_ignore[g] {
                    break;
                }
                if row[g] < best_iou {
                    continue;
                }
                best_iou = row[g];
                best = Some(g);
            }
            if let Some(g) = best {
                self.gt_taken[g] = true;
            }
            self.matched.push(best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(id: u64, cat: u64, bbox: [f64; 4]) -> GtBox {
        GtBox {
            id,
            category_id: cat,
            bbox,
            area: bbox[2] * bbox[3],
            iscrowd: false,
        }
    }

    fn dt(cat: u64, bbox: [f64; 4], score: f64) -> DtBox {
        DtBox {
            category_id: cat,
            bbox,
            score,
        }
    }

    #[test]
    fn a_perfect_match_is_a_true_positive_at_every_threshold() {
        let cells = evaluate_image(
            &[gt(1, 18, [10.0, 10.0, 50.0, 50.0])],
            &[dt(18, [10.0, 10.0, 50.0, 50.0], 0.9)],
            &[18],
        );
        assert_eq!(cells.len(), 1);
        let c = &cells[0];
        assert_eq!(c.num_gt, [1, 0, 1, 0]); // 2500 px² is "medium"
        for t in 0..NUM_IOU_THRS {
            assert_eq!(c.outcomes(0, t), [Outcome::TruePositive]);
            assert_eq!(c.outcomes(2, t), [Outcome::TruePositive]);
            // outside the area range and unmatched there: ignored
            assert_eq!(c.outcomes(1, t), [Outcome::Ignored]);
        }
        assert_eq!(c.matched_iou50, [1.0]);
    }

    #[test]
    fn a_duplicate_detection_is_a_false_positive() {
        let b = [0.0, 0.0, 100.0, 100.0];
        let cells = evaluate_image(&[gt(1, 1, b)], &[dt(1, b, 0.5), dt(1, b, 0.8)], &[1]);
        let c = &cells[0];
        assert_eq!(c.scores, [0.8, 0.5]);
        assert_eq!(
            c.outcomes(0, 0),
            [Outcome::TruePositive, Outcome::FalsePositive]
        );
    }

    #[test]
    fn classes_outside_the_list_and_empty_classes_are_left_out() {
        let cells = evaluate_image(
            &[gt(1, 3, [0.0, 0.0, 5.0, 5.0])],
            &[dt(7, [0.0, 0.0, 5.0, 5.0], 0.9)],
            &[3],
        );
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].category_id, 3);
        assert!(cells[0].scores.is_empty());
        assert!(evaluate_image(&[], &[], &[3]).is_empty());
    }

    #[test]
    fn only_the_best_hundred_detections_are_kept() {
        let dts: Vec<_> = (0..150)
            .map(|i| dt(1, [i as f64, 0.0, 10.0, 10.0], i as f64 / 150.0))
            .collect();
        let c = &evaluate_image(&[], &dts, &[1])[0];
        assert_eq!(c.num_detections(), 100);
        assert_eq!(c.scores[0], 149.0 / 150.0);
    }
}

//! Model outputs → detections: GFL box decoding, score threshold and class
//! filter, class-aware greedy NMS, top-N by score (models/README.md, "The
//! pipeline, exactly", steps 4–7). The other families' decoders are in
//! [`crate::decode`]; they share [`Candidate`], [`select`] and [`rank`].

use std::cmp::Ordering;

use modelobs_core::profile::NmsSignals;

use crate::metadata::{ClsActivation, GflSpec, ModelMetadata};

/// One (cell, class) pair over the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// x1, y1, x2, y2: model-input pixels after decoding, original pixels
    /// after [`crate::preprocess::Placement::to_original`].
    pub bbox: [f64; 4],
    pub score: f32,
    pub class: u16,
    /// Position in candidate order (level, cell, class): breaks score ties.
    pub order: u32,
}

#[derive(Debug, Clone)]
struct Level {
    stride: f64,
    grid_width: usize,
    cells: usize,
}

/// The decoding plan, computed once from the metadata.
#[derive(Debug, Clone)]
pub struct GflDecoder {
    levels: Vec<Level>,
    num_classes: usize,
    bins: usize,
    /// Position of left, top, right, bottom in the model's side order.
    side_index: [usize; 4],
    cell_offset: f64,
    activation: ClsActivation,
}

impl GflDecoder {
    pub fn new(meta: &ModelMetadata, spec: &GflSpec) -> Self {
        Self {
            levels: meta
                .levels()
                .map(|l| Level {
                    stride: f64::from(l.stride),
                    grid_width: l.grid_width as usize,
                    cells: l.grid_width as usize * l.grid_height as usize,
                })
                .collect(),
            num_classes: spec.num_classes,
            bins: spec.reg_bins,
            side_index: spec.side_index(),
            cell_offset: spec.cell_offset,
            activation: spec.cls_activation,
        }
    }

    /// Expected lengths of a level's `cls` and `reg` tensors.
    pub fn level_lens(&self, level: usize) -> (usize, usize) {
        let cells = self.levels[level].cells;
        (cells * self.num_classes, cells * 4 * self.bins)
    }

    /// Appends every (cell, class) of `level` whose score is over `threshold`
    /// and whose class is `allowed`, in cell-then-class order. Boxes are in
    /// model-input pixels. `order` numbers candidates across levels.
    #[allow(clippy::too_many_arguments)]
    pub fn decode_level(
        &self,
        level: usize,
        cls: &[f32],
        reg: &[f32],
        threshold: f32,
        allowed: &[bool],
        order: &mut u32,
        out: &mut Vec<Candidate>,
    ) {
        let lvl = &self.levels[level];
        let (nc, per_cell) = (self.num_classes, 4 * self.bins);
        for cell in 0..lvl.cells {
            let scores = &cls[cell * nc..(cell + 1) * nc];
            // Most cells score nothing: a vectorised max rules them out.
            // (Sigmoid is monotonic, but its threshold would be a logit:
            // that rare case skips the shortcut.)
            if self.activation == ClsActivation::None
                && scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) <= threshold
            {
                continue;
            }
            let mut bbox = None;
            for (class, (&raw, &ok)) in scores.iter().zip(allowed).enumerate() {
                let score = match self.activation {
                    ClsActivation::None => raw,
                    ClsActivation::Sigmoid => 1.0 / (1.0 + (-raw).exp()),
                };
                // Compared in f32, as numpy does with a float32 array and a
                // Python float threshold.
                if !(ok && score > threshold) {
                    continue;
                }
                let b = *bbox.get_or_insert_with(|| {
                    self.cell_box(lvl, cell, &reg[cell * per_cell..(cell + 1) * per_cell])
                });
                out.push(Candidate {
                    bbox: b,
                    score,
                    class: class as u16,
                    order: *order,
                });
                *order += 1;
            }
        }
    }

    /// Distances from the cell centre: per side, softmax over the bins, the
    /// expectation of the bin index, times the stride.
    fn cell_box(&self, lvl: &Level, cell: usize, reg: &[f32]) -> [f64; 4] {
        let mut dist = [0f64; 4];
        for (side, d) in dist.iter_mut().enumerate() {
            let logits = &reg[side * self.bins..(side + 1) * self.bins];
            let max = logits
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let (mut sum, mut weighted) = (0f64, 0f64);
            for (j, &v) in logits.iter().enumerate() {
                let e = (f64::from(v) - max).exp();
                sum += e;
                weighted += j as f64 * e;
            }
            *d = weighted / sum * lvl.stride;
        }
        let [l, t, r, b] = self.side_index.map(|i| dist[i]);
        let cx = ((cell % lvl.grid_width) as f64 + self.cell_offset) * lvl.stride;
        let cy = ((cell / lvl.grid_width) as f64 + self.cell_offset) * lvl.stride;
        [cx - l, cy - t, cx + r, cy + b]
    }
}

/// For families whose graph has no overlapping candidates (TF OD API, DETR):
/// no NMS, only the best `max_detections` by score, left at the front of
/// `candidates`; returns how many.
pub fn rank(candidates: &mut [Candidate], max_detections: usize) -> usize {
    candidates.sort_unstable_by(by_score);
    candidates.len().min(max_detections)
}

/// Score descending, then candidate order: the reference's tie rule.
fn by_score(a: &Candidate, b: &Candidate) -> Ordering {
    b.score.total_cmp(&a.score).then(a.order.cmp(&b.order))
}

pub fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let area = |x: &[f64; 4]| (x[2] - x[0]).max(0.0) * (x[3] - x[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Class-aware greedy NMS, then the best `max_detections` by score. Reorders
/// `candidates` in place and leaves the survivors, best first, at its front;
/// returns how many there are, and what NMS folded together (the profile's
/// NMS signals). `suppressed` is scratch space.
pub fn select(
    candidates: &mut [Candidate],
    iou_threshold: f64,
    max_detections: usize,
    suppressed: &mut Vec<bool>,
) -> (usize, NmsSignals) {
    let total = candidates.len();
    let (mut absorbed, mut absorbed_iou) = (0u32, 0f64);
    candidates.sort_unstable_by(|a, b| a.class.cmp(&b.class).then_with(|| by_score(a, b)));
    suppressed.clear();
    suppressed.resize(candidates.len(), false);
    let mut kept = 0;
    let mut start = 0;
    while start < candidates.len() {
        let class = candidates[start].class;
        let end = start
            + candidates[start..]
                .iter()
                .position(|c| c.class != class)
                .unwrap_or(candidates.len() - start);
        for i in start..end {
            if suppressed[i] {
                continue;
            }
            for j in i + 1..end {
                if suppressed[j] {
                    continue;
                }
                let overlap = iou(&candidates[i].bbox, &candidates[j].bbox);
                if overlap > iou_threshold {
                    suppressed[j] = true;
                    absorbed += 1;
                    absorbed_iou += overlap;
                }
            }
            candidates.swap(kept, i);
            suppressed.swap(kept, i);
            kept += 1;
        }
        start = end;
    }
    let survivors = &mut candidates[..kept];
    survivors.sort_unstable_by(by_score);
    let signals = NmsSignals {
        candidates: total as u32,
        kept: kept as u32,
        absorbed_mean: if kept > 0 {
            f64::from(absorbed) / kept as f64
        } else {
            0.0
        },
        absorbed_iou_mean: if absorbed > 0 {
            absorbed_iou / f64::from(absorbed)
        } else {
            0.0
        },
    };
    (kept.min(max_detections), signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(bbox: [f64; 4], score: f32, class: u16, order: u32) -> Candidate {
        Candidate {
            bbox,
            score,
            class,
            order,
        }
    }

    fn run(mut c: Vec<Candidate>, iou: f64, max: usize) -> Vec<u32> {
        let (n, _) = select(&mut c, iou, max, &mut Vec::new());
        c[..n].iter().map(|c| c.order).collect()
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[5.0, 0.0, 15.0, 10.0]), 50.0 / 150.0);
        assert_eq!(iou(&a, &[10.0, 0.0, 20.0, 10.0]), 0.0, "touching, no +1");
        assert_eq!(iou(&[1.0, 1.0, 1.0, 1.0], &[1.0, 1.0, 1.0, 1.0]), 0.0);
    }

    #[test]
    fn nms_is_greedy_and_per_class() {
        // GIVEN two overlapping boxes of class 0, one of class 1 on top of them,
        // and a chain a-b-c where a suppresses b but c survives (b never acts)
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.9, 0, 0),
            cand([1.0, 0.0, 11.0, 10.0], 0.8, 0, 1), // iou 0.82 with 0 → gone
            cand([0.0, 0.0, 10.0, 10.0], 0.5, 1, 2), // other class → kept
            cand([6.0, 0.0, 16.0, 10.0], 0.7, 0, 3), // iou 0.25 with 0 → kept
        ];
        // WHEN NMS runs at IoU 0.4 THEN survivors come best first
        assert_eq!(run(c.clone(), 0.4, 100), vec![0, 3, 2]);
        // a box exactly at the threshold survives (drop only when IoU > thr)
        let at = iou(&c[0].bbox, &c[3].bbox);
        assert_eq!(run(c.clone(), at, 100), vec![0, 3, 2]);
        assert_eq!(run(c.clone(), at - 1e-9, 100), vec![0, 2]);
        // top-N after NMS
        assert_eq!(run(c, 0.4, 2), vec![0, 3]);
    }

    #[test]
    fn suppressed_boxes_do_not_suppress() {
        let c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.9, 0, 0),
            cand([4.0, 0.0, 14.0, 10.0], 0.8, 0, 1), // iou .43 with a → gone
            cand([8.0, 0.0, 18.0, 10.0], 0.7, 0, 2), // iou .11 with a, .43 with b
        ];
        assert_eq!(run(c, 0.4, 100), vec![0, 2]);
    }

    #[test]
    fn nms_signals_count_what_each_kept_box_absorbed() {
        // GIVEN a box that absorbs two neighbours, and a lone box of another class
        let mut c = vec![
            cand([0.0, 0.0, 10.0, 10.0], 0.9, 0, 0),
            cand([1.0, 0.0, 11.0, 10.0], 0.8, 0, 1), // iou 9/11
            cand([0.0, 1.0, 10.0, 11.0], 0.7, 0, 2), // iou 9/11
            cand([50.0, 50.0, 60.0, 60.0], 0.6, 1, 3),
        ];
        let (n, s) = select(&mut c, 0.4, 1, &mut Vec::new());
        // THEN the signals are over every kept box, before the top-N cut
        assert_eq!(n, 1);
        assert_eq!((s.candidates, s.kept), (4, 2));
        assert_eq!(s.absorbed_mean, 1.0);
        assert!((s.absorbed_iou_mean - 9.0 / 11.0).abs() < 1e-12);
        let (_, none) = select(&mut [], 0.4, 10, &mut Vec::new());
        assert_eq!(none, NmsSignals::default());
    }

    #[test]
    fn score_ties_keep_candidate_order() {
        let c = vec![
            cand([50.0, 50.0, 60.0, 60.0], 0.5, 3, 7),
            cand([0.0, 0.0, 10.0, 10.0], 0.5, 1, 2),
            cand([20.0, 20.0, 30.0, 30.0], 0.5, 2, 5),
            cand([0.0, 0.0, 10.0, 10.0], 0.5, 1, 9), // same box, same score: later one goes
        ];
        assert_eq!(run(c, 0.4, 100), vec![2, 5, 7]);
    }

    fn tiny_meta() -> ModelMetadata {
        // One 2x2 level at stride 8 on a 16x16 input, 2 classes, 3 bins,
        // sides stored as top, left, bottom, right to check the reordering.
        let json = serde_json::json!({
            "schema_version": 1, "name": "t", "version": "1", "file": "t.onnx",
            "sha256": "0".repeat(64), "size_bytes": 1,
            "input": {"name": "x", "width": 16, "height": 16, "layout": "NCHW", "dtype": "float32",
                      "channel_order": "RGB",
                      "resize": {"mode": "letterbox", "align": "center", "pad_rgb": [0, 0, 0],
                                 "filter": "bilinear", "antialias": true},
                      "normalize": {"mean": [0, 0, 0], "std": [1, 1, 1]}},
            "outputs": [{"stride": 8, "grid_width": 2, "grid_height": 2, "cls": "c", "reg": "r"}],
            "decode": {"type": "gfl", "num_classes": 2, "cls_activation": "none", "reg_bins": 3,
                       "reg_side_order": ["top", "left", "bottom", "right"],
                       "cell_order": "row_major", "cell_offset": 0.5},
            "postprocess": {"score_threshold": 0.2, "nms": "class_aware", "nms_iou": 0.4,
                            "max_detections": 10},
            "labels": ["a", "b"]
        });
        ModelMetadata::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    #[test]
    fn gfl_decodes_a_synthetic_tensor() {
        let meta = tiny_meta();
        let crate::metadata::DecodeSpec::Gfl(spec) = &meta.decode else {
            unreachable!("a gfl model.json")
        };
        let dec = GflDecoder::new(&meta, spec);
        assert_eq!(dec.level_lens(0), (8, 48));
        // GIVEN cell 3 (row 1, col 1: centre 12,12) scoring 0.9 for class 1
        // and 0.3 for class 0; cell 0 at 0.2 exactly (not over the threshold)
        let cls = [0.2, 0.0, 0.0, 0.1, 0.0, 0.0, 0.3, 0.9];
        let mut reg = vec![0f32; 48];
        let big = 30.0; // a one-hot distribution, to a float's precision
        let cell3 = &mut reg[36..48];
        cell3[2] = big; // top: bin 2 → 16 px
        cell3[3 + 1] = big; // left: bin 1 → 8 px
        // bottom: uniform → expectation 1 → 8 px
        cell3[9] = 1.0; // right: logits [1, 0, 0]
        let mut out = Vec::new();
        let mut order = 0;
        // WHEN decoded with both classes allowed
        dec.decode_level(0, &cls, &reg, 0.2, &[true, true], &mut order, &mut out);
        // THEN class 0 then class 1 of cell 3, one shared box
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].class, out[0].score, out[0].order), (0, 0.3, 0));
        assert_eq!((out[1].class, out[1].score, out[1].order), (1, 0.9, 1));
        let e = std::f64::consts::E;
        let right = (1.0 + 2.0) / (e + 2.0) * 8.0;
        let want = [12.0 - 8.0, 12.0 - 16.0, 12.0 + right, 12.0 + 8.0];
        for (got, want) in out[0].bbox.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{:?} vs {want:?}", out[0].bbox);
        }
        assert_eq!(out[0].bbox, out[1].bbox);
        // a class filter drops class 0 before anything else
        out.clear();
        dec.decode_level(0, &cls, &reg, 0.2, &[false, true], &mut order, &mut out);
        assert_eq!(out.iter().map(|c| c.class).collect::<Vec<_>>(), vec![1]);
    }
}

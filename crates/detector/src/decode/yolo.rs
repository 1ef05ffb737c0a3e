//! YOLOv5 and YOLOv8/11 (Ultralytics export): one output holding every
//! anchor's box (cx, cy, w, h in input pixels) and class probabilities.
//! v5 rows are `[cx, cy, w, h, objectness, C probabilities]` (`[1, N, 5+C]`),
//! score = objectness × probability; v8 is transposed (`[1, 4+C, N]`) and has
//! no objectness. As in Ultralytics' `non_max_suppression` (its default
//! `multi_label=False`), each anchor reports its best class only; the class
//! filter applies to that class.

use super::{ShapeError, Tensor, corners};
use crate::postprocess::Candidate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YoloLayout {
    /// `[1, N, 5 + C]`.
    V5,
    /// `[1, 4 + C, N]`.
    V8,
}

impl YoloLayout {
    /// Values per anchor before the class probabilities.
    pub fn head(self) -> usize {
        match self {
            Self::V5 => 5,
            Self::V8 => 4,
        }
    }
}

#[derive(Debug, Clone)]
pub struct YoloDecoder {
    layout: YoloLayout,
    num_classes: usize,
}

impl YoloDecoder {
    pub fn new(layout: YoloLayout, num_classes: usize) -> Self {
        Self {
            layout,
            num_classes,
        }
    }

    pub fn decode(
        &self,
        name: &str,
        t: &Tensor<'_>,
        threshold: f32,
        allowed: &[bool],
        out: &mut Vec<Candidate>,
    ) -> Result<(), ShapeError> {
        let per = self.layout.head() + self.num_classes;
        let (n, anchor_axis) = match self.layout {
            YoloLayout::V5 => (t.dim(1), 1),
            YoloLayout::V8 => (t.dim(2), 2),
        };
        let values_axis = 3 - anchor_axis;
        if t.shape.len() != 3
            || t.dim(0) != 1
            || t.dim(values_axis) != per
            || t.data.len() != n * per
        {
            let want = match self.layout {
                YoloLayout::V5 => format!("[1, N, {per}] (5 + {} classes)", self.num_classes),
                YoloLayout::V8 => format!("[1, {per}, N] (4 + {} classes)", self.num_classes),
            };
            return Err(ShapeError::new(name, t, format!("expected {want}")));
        }
        // Value `v` of anchor `i`, whichever way the tensor is laid out.
        let at = |i: usize, v: usize| match self.layout {
            YoloLayout::V5 => t.data[i * per + v],
            YoloLayout::V8 => t.data[v * n + i],
        };
        let head = self.layout.head();
        for i in 0..n {
            let objectness = match self.layout {
                YoloLayout::V5 => Some(at(i, 4)),
                YoloLayout::V8 => None,
            };
            // f32 products, as the exporters' post-processing computes them;
            // the first of equal scores wins (argmax).
            let (mut best, mut best_score) = (0usize, f32::NEG_INFINITY);
            for k in 0..self.num_classes {
                let p = at(i, head + k);
                let score = objectness.map_or(p, |o| p * o);
                if score > best_score {
                    (best, best_score) = (k, score);
                }
            }
            // Written as `>`: a NaN score is not over the threshold.
            let over = best_score > threshold;
            if !over || !allowed[best] {
                continue;
            }
            let [cx, cy, w, h] = [0, 1, 2, 3].map(|v| f64::from(at(i, v)));
            out.push(Candidate {
                bbox: corners(cx, cy, w, h),
                score: best_score,
                class: best as u16,
                order: i as u32,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_scores_objectness_times_class_and_keeps_the_best_class() {
        // GIVEN two anchors, 2 classes: anchor 0 obj .9 × [.5, .8]; anchor 1 obj .1
        let data = [
            100.0, 50.0, 20.0, 10.0, 0.9, 0.5, 0.8, //
            10.0, 10.0, 4.0, 4.0, 0.1, 0.9, 0.9,
        ];
        let t = Tensor {
            shape: &[1, 2, 7],
            data: &data,
        };
        let dec = YoloDecoder::new(YoloLayout::V5, 2);
        let mut out = Vec::new();
        dec.decode("p", &t, 0.5, &[true, true], &mut out).unwrap();
        // THEN one candidate: class 1 at 0.72, corners from the centre
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].class, out[0].order), (1, 0));
        assert_eq!(out[0].score, 0.8f32 * 0.9f32);
        assert_eq!(out[0].bbox, [90.0, 45.0, 110.0, 55.0]);
        // a filtered best class is not replaced by the runner-up
        out.clear();
        dec.decode("p", &t, 0.3, &[true, false], &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn v8_reads_the_transposed_layout() {
        // GIVEN [1, 4 + 2, 3]: anchor 2 is the only one over .5 (class 0)
        let data = [
            1.0, 2.0, 30.0, // cx
            1.0, 2.0, 40.0, // cy
            2.0, 2.0, 10.0, // w
            2.0, 2.0, 20.0, // h
            0.1, 0.2, 0.7, // class 0
            0.3, 0.4, 0.6, // class 1
        ];
        let t = Tensor {
            shape: &[1, 6, 3],
            data: &data,
        };
        let mut out = Vec::new();
        YoloDecoder::new(YoloLayout::V8, 2)
            .decode("output0", &t, 0.5, &[true, true], &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].class, out[0].order, out[0].score), (0, 2, 0.7));
        assert_eq!(out[0].bbox, [25.0, 30.0, 35.0, 50.0]);
        // a v5 decoder on the same tensor names the shape it expected
        let err = YoloDecoder::new(YoloLayout::V5, 2)
            .decode("output0", &t, 0.5, &[true, true], &mut out)
            .unwrap_err();
        assert!(err.to_string().contains("[1, N, 7]"), "{err}");
    }
}

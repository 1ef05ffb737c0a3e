//! TF Object Detection API graphs (SSD, Faster R-CNN exports): the graph has
//! already run NMS and answers with `detection_boxes [1, N, 4]` (ymin, xmin,
//! ymax, xmax, 0..1 of the input), `detection_scores [1, N]`,
//! `detection_classes [1, N]` (label-map ids as floats, COCO-91 for the
//! model zoo) and `num_detections [1]` (how many of the N slots are real).

use super::{ShapeError, Tensor};
use crate::metadata::TfOdSpec;
use crate::postprocess::Candidate;

#[derive(Debug, Clone)]
pub struct TfOdDecoder {
    /// Label-map id → index into `labels` (`None`: not a class we know).
    class_of_id: Vec<Option<u16>>,
    width: f64,
    height: f64,
}

impl TfOdDecoder {
    pub fn new(spec: &TfOdSpec, width: f64, height: f64) -> Self {
        let ids: Vec<u32> = match &spec.label_ids {
            Some(ids) => ids.clone(),
            None => (0..spec.num_classes as u32).collect(),
        };
        let max = ids.iter().copied().max().unwrap_or(0) as usize;
        let mut class_of_id = vec![None; max + 1];
        for (class, id) in ids.iter().enumerate() {
            class_of_id[*id as usize] = Some(class as u16);
        }
        Self {
            class_of_id,
            width,
            height,
        }
    }

    /// `names`: boxes, scores, classes (and num_detections) tensor names.
    pub fn decode(
        &self,
        names: &[String],
        [boxes, scores, classes]: [&Tensor<'_>; 3],
        num: Option<&Tensor<'_>>,
        threshold: f32,
        allowed: &[bool],
        out: &mut Vec<Candidate>,
    ) -> Result<(), ShapeError> {
        let n = scores.data.len();
        if boxes.data.len() != 4 * n || boxes.shape.last() != Some(&4) {
            return Err(ShapeError::new(
                &names[0],
                boxes,
                format!("expected [1, {n}, 4] for {n} scores"),
            ));
        }
        if classes.data.len() != n {
            return Err(ShapeError::new(
                &names[2],
                classes,
                format!("expected [1, {n}] for {n} scores"),
            ));
        }
        let valid = match num {
            Some(t) => match t.data.first() {
                // A count, written as a float by the TF graph.
                Some(&v) if v >= 0.0 && v.is_finite() => (v as usize).min(n),
                _ => {
                    return Err(ShapeError::new(
                        &names[3],
                        t,
                        "expected one non-negative count",
                    ));
                }
            },
            None => n,
        };
        for i in 0..valid {
            let score = scores.data[i];
            // Written as `>`: a NaN score is not over the threshold.
            let over = score > threshold;
            if !over {
                continue;
            }
            let id = classes.data[i];
            // Ids outside the label map (its gaps, background 0) are no class.
            let class = (id >= 0.0 && id.fract() == 0.0)
                .then(|| self.class_of_id.get(id as usize).copied().flatten())
                .flatten();
            let Some(class) = class else { continue };
            if !allowed[usize::from(class)] {
                continue;
            }
            let b = &boxes.data[4 * i..4 * i + 4];
            let [y1, x1, y2, x2] = [0, 1, 2, 3].map(|j| f64::from(b[j]));
            out.push(Candidate {
                bbox: [
                    x1 * self.width,
                    y1 * self.height,
                    x2 * self.width,
                    y2 * self.height,
                ],
                score,
                class,
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
    fn label_map_ids_become_label_indices_and_only_counted_slots_count() {
        // GIVEN labels with COCO-91 ids [1, 3] on a 200x100 input, 3 slots of which 2 count
        let spec = TfOdSpec {
            num_classes: 2,
            label_ids: Some(vec![1, 3]),
        };
        let dec = TfOdDecoder::new(&spec, 200.0, 100.0);
        let boxes = [0.1, 0.2, 0.5, 0.6, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.5, 0.5];
        let (scores, classes, num) = ([0.9, 0.8, 0.7], [3.0, 2.0, 1.0], [2.0]);
        fn t<'a>(shape: &'a [i64], data: &'a [f32]) -> Tensor<'a> {
            Tensor { shape, data }
        }
        let names: Vec<String> = ["b", "s", "c", "n"].map(String::from).to_vec();
        let mut out = Vec::new();
        dec.decode(
            &names,
            [
                &t(&[1, 3, 4], &boxes),
                &t(&[1, 3], &scores),
                &t(&[1, 3], &classes),
            ],
            Some(&t(&[1], &num)),
            0.5,
            &[true, true],
            &mut out,
        )
        .unwrap();
        // THEN id 3 → class 1; id 2 is a gap of the map; slot 2 is past num_detections
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].class, out[0].score), (1, 0.9));
        let want = [40.0, 10.0, 120.0, 50.0];
        for (g, w) in out[0].bbox.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{:?}", out[0].bbox);
        }
    }
}

//! DETR-style set predictors: `pred_logits [1, Q, K]` and `pred_boxes
//! [1, Q, 4]` (cx, cy, w, h, 0..1 of the input). DETR: K = C + 1, softmax,
//! the last class is "no object", each query reports its best real class
//! (as DETR's `PostProcess`). RT-DETR: K = C, a sigmoid per class, and every
//! (query, class) pair over the threshold is a detection (as RT-DETR's
//! top-k over queries × classes, which `max_detections` then cuts). Set
//! prediction has no duplicates to remove: no NMS.

use super::{ShapeError, Tensor, corners};
use crate::metadata::{DetrActivation, DetrSpec};
use crate::postprocess::Candidate;

#[derive(Debug, Clone)]
pub struct DetrDecoder {
    num_classes: usize,
    activation: DetrActivation,
    width: f64,
    height: f64,
}

impl DetrDecoder {
    pub fn new(spec: &DetrSpec, width: f64, height: f64) -> Self {
        Self {
            num_classes: spec.num_classes,
            activation: spec.class_activation,
            width,
            height,
        }
    }

    /// Logits per query: C, plus one for "no object" under softmax.
    pub fn logits_per_query(&self) -> usize {
        match self.activation {
            DetrActivation::SoftmaxNoObject => self.num_classes + 1,
            DetrActivation::Sigmoid => self.num_classes,
        }
    }

    pub fn decode(
        &self,
        names: &[String],
        logits: &Tensor<'_>,
        boxes: &Tensor<'_>,
        threshold: f32,
        allowed: &[bool],
        out: &mut Vec<Candidate>,
    ) -> Result<(), ShapeError> {
        let k = self.logits_per_query();
        let q = logits.dim(1);
        if logits.shape.len() != 3 || logits.dim(2) != k || logits.data.len() != q * k {
            return Err(ShapeError::new(
                &names[0],
                logits,
                format!(
                    "expected [1, Q, {k}] ({} classes{})",
                    self.num_classes,
                    match self.activation {
                        DetrActivation::SoftmaxNoObject => " + no object",
                        DetrActivation::Sigmoid => "",
                    }
                ),
            ));
        }
        if boxes.data.len() != 4 * q || boxes.shape.last() != Some(&4) {
            return Err(ShapeError::new(
                &names[1],
                boxes,
                format!("expected [1, {q}, 4] for {q} queries"),
            ));
        }
        for query in 0..q {
            let b = &boxes.data[4 * query..4 * query + 4];
            let [cx, cy, w, h] = [0, 1, 2, 3].map(|j| f64::from(b[j]));
            let bbox = corners(
                cx * self.width,
                cy * self.height,
                w * self.width,
                h * self.height,
            );
            let row = &logits.data[query * k..(query + 1) * k];
            match self.activation {
                DetrActivation::SoftmaxNoObject => {
                    let max = row
                        .iter()
                        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
                    let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
                    let (mut best, mut best_p) = (0usize, f64::NEG_INFINITY);
                    for (class, &v) in row[..self.num_classes].iter().enumerate() {
                        let p = (f64::from(v) - max).exp() / sum;
                        if p > best_p {
                            (best, best_p) = (class, p);
                        }
                    }
                    let score = best_p as f32;
                    if score > threshold && allowed[best] {
                        out.push(Candidate {
                            bbox,
                            score,
                            class: best as u16,
                            order: query as u32,
                        });
                    }
                }
                DetrActivation::Sigmoid => {
                    for (class, &v) in row.iter().enumerate() {
                        let score = (1.0 / (1.0 + (-f64::from(v)).exp())) as f32;
                        if score > threshold && allowed[class] {
                            out.push(Candidate {
                                bbox,
                                score,
                                class: class as u16,
                                order: (query * k + class) as u32,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["pred_logits".into(), "pred_boxes".into()]
    }

    #[test]
    fn detr_softmax_skips_no_object_and_scales_boxes_to_the_input() {
        // GIVEN 2 queries, 2 classes + no object, on a 100x50 input
        let spec = DetrSpec {
            num_classes: 2,
            class_activation: DetrActivation::SoftmaxNoObject,
        };
        let dec = DetrDecoder::new(&spec, 100.0, 50.0);
        let logits = [
            0.0, 3.0, 0.0, /* query 1: no object wins */ 0.0, 0.0, 9.0,
        ];
        let boxes = [0.5, 0.5, 0.25, 0.5, 0.5, 0.5, 1.0, 1.0];
        let mut out = Vec::new();
        dec.decode(
            &names(),
            &Tensor {
                shape: &[1, 2, 3],
                data: &logits,
            },
            &Tensor {
                shape: &[1, 2, 4],
                data: &boxes,
            },
            0.5,
            &[true, true],
            &mut out,
        )
        .unwrap();
        // THEN query 0 as class 1 at e³/(e³+2); query 1's best real class is far below .5
        assert_eq!(out.len(), 1);
        let e3 = 3f64.exp();
        assert_eq!(out[0].score, (e3 / (e3 + 2.0)) as f32);
        assert_eq!((out[0].class, out[0].order), (1, 0));
        assert_eq!(out[0].bbox, [37.5, 12.5, 62.5, 37.5]);
    }

    #[test]
    fn rt_detr_sigmoid_reports_every_class_over_the_threshold() {
        let spec = DetrSpec {
            num_classes: 2,
            class_activation: DetrActivation::Sigmoid,
        };
        let dec = DetrDecoder::new(&spec, 10.0, 10.0);
        let logits = [2.0, 1.0];
        let boxes = [0.5, 0.5, 0.2, 0.2];
        let mut out = Vec::new();
        dec.decode(
            &names(),
            &Tensor {
                shape: &[1, 1, 2],
                data: &logits,
            },
            &Tensor {
                shape: &[1, 1, 4],
                data: &boxes,
            },
            0.6,
            &[true, true],
            &mut out,
        )
        .unwrap();
        assert_eq!(out.iter().map(|c| c.class).collect::<Vec<_>>(), vec![0, 1]);
        // a softmax spec on a sigmoid graph names the shape it expected
        let wrong = DetrDecoder::new(
            &DetrSpec {
                class_activation: DetrActivation::SoftmaxNoObject,
                ..spec
            },
            10.0,
            10.0,
        );
        let err = wrong
            .decode(
                &names(),
                &Tensor {
                    shape: &[1, 1, 2],
                    data: &logits,
                },
                &Tensor {
                    shape: &[1, 1, 4],
                    data: &boxes,
                },
                0.6,
                &[true, true],
                &mut out,
            )
            .unwrap_err();
        assert!(err.to_string().contains("[1, Q, 3]"), "{err}");
    }
}

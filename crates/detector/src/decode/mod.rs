//! The detector families `model.json`'s `decode.type` chooses between
//! (models/README.md, "Other detector families"). Each decoder turns the
//! family's raw outputs into [`Candidate`]s in model-input pixels, over the
//! score threshold and of an allowed class; what follows (back to original
//! pixels, NMS or not, top-N) is shared and lives in `onnx.rs` and
//! [`crate::postprocess`].

mod detr;
pub mod names;
mod tf_od;
mod yolo;

pub use detr::DetrDecoder;
pub use tf_od::TfOdDecoder;
pub use yolo::{YoloDecoder, YoloLayout};

use crate::metadata::{DecodeSpec, ModelMetadata};
use crate::postprocess::{Candidate, GflDecoder};

/// One output tensor as ONNX Runtime returned it.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    pub shape: &'a [i64],
    pub data: &'a [f32],
}

impl Tensor<'_> {
    /// Size of dimension `i` (1 when the tensor has fewer dimensions).
    pub fn dim(&self, i: usize) -> usize {
        self.shape
            .get(i)
            .map_or(1, |&d| usize::try_from(d).unwrap_or(0))
    }
}

/// Where decoding stopped: the tensors do not have the shape the family
/// reads (a model.json / model mismatch the load-time check let through
/// because the graph's shapes are dynamic).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("output {name:?} has shape {shape:?}: {problem}")]
pub struct ShapeError {
    pub name: String,
    pub shape: Vec<i64>,
    pub problem: String,
}

impl ShapeError {
    fn new(name: &str, t: &Tensor<'_>, problem: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            shape: t.shape.to_vec(),
            problem: problem.into(),
        }
    }
}

/// The decoding plan, built once per model.
#[derive(Debug, Clone)]
pub enum Decoder {
    Gfl(GflDecoder),
    Yolo(YoloDecoder),
    TfOd(TfOdDecoder),
    Detr(DetrDecoder),
}

impl Decoder {
    pub fn new(meta: &ModelMetadata) -> Self {
        let (w, h) = (f64::from(meta.input.width), f64::from(meta.input.height));
        match &meta.decode {
            DecodeSpec::Gfl(spec) => Self::Gfl(GflDecoder::new(meta, spec)),
            DecodeSpec::Yolov5(spec) => {
                Self::Yolo(YoloDecoder::new(YoloLayout::V5, spec.num_classes))
            }
            DecodeSpec::Yolov8(spec) => {
                Self::Yolo(YoloDecoder::new(YoloLayout::V8, spec.num_classes))
            }
            DecodeSpec::TfOd(spec) => Self::TfOd(TfOdDecoder::new(spec, w, h)),
            DecodeSpec::Detr(spec) => Self::Detr(DetrDecoder::new(spec, w, h)),
        }
    }

    /// The tensor names this decoder reads, in the order [`Self::decode`]
    /// wants them (absent optional roles left out).
    pub fn tensor_names(meta: &ModelMetadata) -> Vec<String> {
        match meta.decode.roles() {
            None => meta
                .levels()
                .flat_map(|l| [l.cls.clone(), l.reg.clone()])
                .collect(),
            Some(roles) => roles
                .iter()
                .filter_map(|(role, _)| meta.output(*role).map(|(_, t)| t.name.clone()))
                .collect(),
        }
    }

    /// Appends every candidate over `threshold` of an `allowed` class, in
    /// model-input pixels and candidate order. `tensors` are the outputs
    /// [`Self::tensor_names`] lists, in its order, and `names` that list.
    pub fn decode(
        &self,
        names: &[String],
        tensors: &[Tensor<'_>],
        threshold: f32,
        allowed: &[bool],
        out: &mut Vec<Candidate>,
    ) -> Result<(), ShapeError> {
        match self {
            Self::Gfl(dec) => {
                let mut order = 0u32;
                for (level, pair) in tensors.chunks_exact(2).enumerate() {
                    let (cls_len, reg_len) = dec.level_lens(level);
                    for (t, want, name) in [
                        (&pair[0], cls_len, &names[2 * level]),
                        (&pair[1], reg_len, &names[2 * level + 1]),
                    ] {
                        if t.data.len() != want {
                            return Err(ShapeError::new(
                                name,
                                t,
                                format!("{} values, expected {want}", t.data.len()),
                            ));
                        }
                    }
                    dec.decode_level(
                        level,
                        pair[0].data,
                        pair[1].data,
                        threshold,
                        allowed,
                        &mut order,
                        out,
                    );
                }
                Ok(())
            }
            Self::Yolo(dec) => dec.decode(&names[0], &tensors[0], threshold, allowed, out),
            Self::TfOd(dec) => {
                let num = tensors.get(3).copied();
                dec.decode(
                    names,
                    [&tensors[0], &tensors[1], &tensors[2]],
                    num.as_ref(),
                    threshold,
                    allowed,
                    out,
                )
            }
            Self::Detr(dec) => dec.decode(names, &tensors[0], &tensors[1], threshold, allowed, out),
        }
    }
}

/// `[x1, y1, x2, y2]` from a centre and a size.
fn corners(cx: f64, cy: f64, w: f64, h: f64) -> [f64; 4] {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

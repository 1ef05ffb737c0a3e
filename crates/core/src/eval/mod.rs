//! Detection quality, exactly as pycocotools' bbox `COCOeval` computes it,
//! split in two so windows never re-match boxes:
//!
//! 1. [`evaluate_image`] runs once per labelled image and gives a small
//!    [`ClassEval`] per class (the matching outcome of each detection at each
//!    IoU threshold and area range) that is stored with the image, laid out
//!    as `stored` describes (v2 packed, v1 still read).
//! 2. [`accumulate`] takes any set of stored evaluations (a window, a model
//!    version, a whole dataset) and gives COCOeval's precision/recall arrays,
//!    from which [`Accumulated::summarize`] gives AP, AP50, ..., AR100 and AP
//!    per class, and [`operating_point`] gives precision/recall/F1.

mod accumulate;
pub mod bootstrap;
pub mod coco_format;
mod image;
pub mod params;
mod stored;

pub use accumulate::{
    Accumulated, ClassAp, CocoSummary, OperatingPoint, accumulate, operating_point,
};
pub use image::{ClassEval, DtBox, GtBox, Outcome, evaluate_image};
#[doc(hidden)]
pub use stored::ClassEvalV1;

//! The demo's labelled photos and what the simulator does to them.
//!
//! - [`Dataset`]: `datasets/animals/` — photos and hand-drawn COCO boxes.
//! - [`Transform`]: geometric transforms whose boxes follow exactly (flip,
//!   crop, scale, rotate 90°, pad) and photometric ones that keep them
//!   (brightness, contrast, blur, noise, JPEG quality), written as a compact
//!   spec (`flip,scale=0.5,bright=0.6,blur=2,jpeg=40`); [`apply`] runs a chain.
//! - [`generate`]: exact-box composites of cut-outs on background photos,
//!   split by source, drawn from a seeded [`Recipe`].
//! - [`DriftSchedule`]: which conditions hold on which simulated day
//!   (`clean:5,dark:3,blur+small:2`), drawn with seeded randomness.

mod composite;
mod dataset;
mod drift;
mod error;
mod transform;

pub use composite::{CompositeSet, Inputs, Recipe, generate};
pub use dataset::{Dataset, Sample};
pub use drift::{Condition, DriftSchedule, Phase, Pick, Picker};
pub use error::DatasetError;
pub use transform::{
    Boxes, DEFAULT_JPEG_QUALITY, MIN_BOX_SIDE_PX, Transform, apply, apply_image, encode_jpeg,
    format_chain, parse_chain,
};

//! The domain of model-observability: boxes, classes, the data contract
//! (records and their S3 keys), detection-quality evaluation. No AWS, no HTTP:
//! every function and Lambda handler builds on this crate.

pub mod backtest;
pub mod boxes;
pub mod calibration;
pub mod classes;
pub mod drift;
pub mod error;
pub mod eval;
pub mod export;
pub mod keys;
pub mod profile;
pub mod records;
pub mod sampling;

pub use boxes::{BBox, LabelboxBox, NormalizedBox};
pub use error::CoreError;

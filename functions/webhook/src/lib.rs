//! The webhook function: signed label events become ground truth in S3 and a
//! message on the metrics queue.

pub mod handler;
pub mod payload;
pub mod signature;
pub mod source;

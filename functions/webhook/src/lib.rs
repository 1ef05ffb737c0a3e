//! The webhook function: signed label events become ground truth in S3 and a
//! message on the metrics queue. Signatures and payloads are Labelbox's
//! (`modelobs_labelbox::webhook`).

pub mod handler;
pub mod source;

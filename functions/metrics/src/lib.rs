//! The metrics function: per-image COCO evaluation when a label arrives.

pub mod emf;
pub mod handler;
pub mod sink;

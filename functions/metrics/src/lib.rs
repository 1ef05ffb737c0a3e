//! The metrics function: per-image COCO evaluation when a label arrives
//! (`handler`), and the windows rolled up from those evaluations (`rollup`).

pub mod config;
pub mod emf;
pub mod handler;
pub mod observe;
pub mod rollup;
pub mod sink;

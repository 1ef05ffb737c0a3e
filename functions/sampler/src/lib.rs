//! The sampler function: picks the captures worth a human look and hands them,
//! with the model's boxes as pre-labels, to the labeling backend.

pub mod backend;
pub mod handler;

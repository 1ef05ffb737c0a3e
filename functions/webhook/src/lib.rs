//! The webhook function: its configuration and its HTTP edge (verify the
//! signature, parse the event, answer). Recording the label is
//! `modelobs_pipeline::label`; signatures and payloads are Labelbox's
//! (`modelobs_labelbox::webhook`).

pub mod config;
pub mod handler;

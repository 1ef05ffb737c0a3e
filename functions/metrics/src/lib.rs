//! The metrics and rollup functions: their configuration. The use cases
//! they run are `modelobs_pipeline::evaluate` (SQS label arrivals) and
//! `modelobs_pipeline::rollup` (the schedule).

pub mod config;

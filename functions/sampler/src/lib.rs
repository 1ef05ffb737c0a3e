//! The sampler function: its configuration and its S3 presigner. The use
//! case it runs is `modelobs_pipeline::sample` over `modelobs_pipeline::labeling`.

pub mod config;
pub mod presign;
pub mod wiring;

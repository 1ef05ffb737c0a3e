//! The application layer: the use cases, written once over the narrow ports
//! of `modelobs_adapters` (object store, queue) and the metrics sinks here.
//! The function crates wire them to their triggers (`main.rs` + `config.rs`);
//! the `modelobs` CLI calls the same code; neither calls the other.
//!
//! - [`evaluate`]: a label arrived → the image's COCO evaluation, stored and
//!   emitted, its windows touched (the metrics function, SQS).
//! - [`rollup`]: touched windows → `WindowMetrics` from the stored
//!   evaluations (the rollup function on a schedule; `modelobs rollup`).
//! - [`sink`], [`emf`], [`observe`]: where evaluations and windows go.
//! - [`threshold`]: the windows' operating point (`SCORE_THRESHOLD`).
//!
//! Retries are not written here: the stores and queues handed in are
//! wrapped once, in `main.rs`, by `modelobs_adapters::retrying`.

pub mod emf;
pub mod evaluate;
pub mod observe;
pub mod rollup;
pub mod sink;
pub mod threshold;

//! The application layer: the use cases, written once over the narrow ports
//! (`modelobs_adapters`' object store and queue, the detector, the labeling
//! backend, the metrics sinks here).
//! The function crates wire them to their triggers (`main.rs` + `config.rs`);
//! the `modelobs` CLI calls the same code; neither calls the other.
//!
//! - [`capture`]: a prediction and its image become a `CaptureRecord` in the
//!   bucket (the inference function, HTTP); [`ingest`]: the same for images
//!   dropped under `incoming/` (inference-upload, S3).
//! - [`sample`]: a capture record arrived → the sampling decision, and the
//!   pre-labelled task handed to the [`labeling`] backend (the sampler, S3).
//! - [`label`]: a verified label event → the label in the bucket (newest
//!   wins) and one message per version on the metrics queue; labels an event
//!   only names come from [`label_source`] (the webhook, HTTP).
//! - [`evaluate`]: a label arrived → the image's COCO evaluation, stored and
//!   emitted, its windows touched (the metrics function, SQS).
//! - [`rollup`]: touched windows → `WindowMetrics` from the stored
//!   evaluations (the rollup function on a schedule; `modelobs rollup`).
//! - [`profiles`]: every capture's label-free profile folded into hour and
//!   day windows (the sampler writes, the rollup folds), their drift against
//!   a reference and an estimated AP50 (`modelobs metrics`, EMF).
//! - [`sink`], [`emf`], [`observe`]: where evaluations and windows go.
//! - [`threshold`]: the windows' operating point (`SCORE_THRESHOLD`).
//! - [`dataset_export`]: labelled captures → a COCO training dataset on disk
//!   (`modelobs dataset export`); [`labelbox_import`]: the same from a Labelbox
//!   project export (`modelobs dataset import-labelbox`); both write the one
//!   layout of [`dataset_layout`].
//! - [`registry`]: model versions in the bucket (`modelobs model`, and the
//!   inference function's `MODEL_REF`); [`backtest`]: a candidate against the
//!   serving model on a dataset of labelled captures (`modelobs backtest`).
//!
//! Retries are not written here: the stores and queues handed in are
//! wrapped once, in `main.rs`, by `modelobs_adapters::retrying`.

pub mod backtest;
pub mod capture;
pub mod dataset_export;
pub mod dataset_layout;
pub mod emf;
pub mod evaluate;
pub mod ingest;
pub mod label;
pub mod label_source;
pub mod labelbox_import;
pub mod labeling;
pub mod observe;
pub mod profiles;
pub mod registry;
pub mod rollup;
pub mod sample;
pub mod sink;
pub mod threshold;

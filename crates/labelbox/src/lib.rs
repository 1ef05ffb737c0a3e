//! Labelbox over its GraphQL API, with the operations this project needs:
//! data rows (by global key = capture id), batches to a project, model-assisted
//! pre-labels, and the one-off project / ontology / webhook setup.
//!
//! The queries follow Labelbox's Python SDK (`labelbox-python`), which is the
//! only published description of this API: same mutations, same variables,
//! same endpoints. Labelbox cannot be reached from tests; `modelobs_testkit::fake_labelbox`
//! stands in for it and checks what is sent.

pub mod check;
pub mod client;
pub mod data_rows;
pub mod error;
pub mod export;
pub mod labeling;
pub mod presign;
pub mod setup;
pub mod webhook;

pub use check::{CheckError, CheckReport, CheckSpec, WebhookCheck};
pub use client::{DEFAULT_ENDPOINT, LabelboxClient, Polling};
pub use data_rows::{DataRowRef, NewDataRow};
pub use error::LabelboxError;
pub use export::{ExportedBox, ExportedLabel, ExportedRow, RowKey, RowKeys, RowLabel};
pub use labeling::{
    BatchOutcome, BatchSpec, BoxPrelabel, ImportOutcome, MalImport, prelabels_ndjson,
};
pub use presign::{PresignError, Presigner};
pub use setup::{SetupReport, SetupSpec, WebhookSpec};

use thiserror::Error;

/// Everything the domain can refuse. The edges (HTTP, SQS, CLI) decide what
/// each means for their caller.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("invalid box: {0}")]
    InvalidBox(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("{record} has schema_version {found}, this build reads {supported}")]
    UnsupportedSchemaVersion {
        record: &'static str,
        found: u64,
        supported: String,
    },
    #[error("invalid COCO data: {0}")]
    InvalidCoco(String),
    #[error("invalid key {key:?}: {why}")]
    InvalidKey { key: String, why: String },
}

//! The narrow ports the handlers depend on, with a real adapter (AWS SDK) and
//! an in-memory one for tests and local tools.

pub mod memory;
pub mod observe;
pub mod queue;
pub mod retrying;
pub mod s3;
pub mod secrets;

pub use modelobs_retry::{RetryPolicy, Retryable};
pub use retrying::Retrying;

use std::future::Future;

use bytes::Bytes;
use thiserror::Error;

/// JSON logs for a function, level from `RUST_LOG` (default info); Lambda
/// adds the time and request id to each line.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// Worth retrying: throttling, 5xx, timeouts, connection errors.
    #[error("object store unavailable: {0}")]
    Transient(String),
    /// Retrying won't help: access denied, no such bucket, bad request.
    #[error("object store refused: {0}")]
    Permanent(String),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// When a put may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    Always,
    /// Only if the key does not exist (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object still has this ETag (`If-Match`).
    IfMatch(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        etag: String,
    },
    /// The condition did not hold; nothing was written.
    ConditionFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub body: Bytes,
    pub etag: String,
}

/// One object as a listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub etag: String,
    pub last_modified: Option<std::time::SystemTime>,
}

/// The one data bucket.
pub trait ObjectStore: Send + Sync {
    fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Deleting a missing key is not an error (S3 semantics).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `None` when the key does not exist.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredObject>, StoreError>> + Send;

    /// Every object whose key starts with `prefix`, in key order (all pages).
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ListedObject>, StoreError>> + Send;
}

/// One store shared by several users (e.g. a handler and its labeling backend).
impl<T: ObjectStore> ObjectStore for std::sync::Arc<T> {
    fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: PutCondition,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        (**self).put(key, body, content_type, condition)
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(key)
    }

    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredObject>, StoreError>> + Send {
        (**self).get(key)
    }

    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ListedObject>, StoreError>> + Send {
        (**self).list(prefix)
    }
}

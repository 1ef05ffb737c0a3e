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

    /// Deletes `key` only while its ETag is `etag` (S3's conditional
    /// DeleteObject); `false`: it changed (or is gone), nothing was deleted.
    /// The default reads and compares first, which leaves a window between
    /// the two: the real stores override it with the atomic form.
    fn delete_if_match(
        &self,
        key: &str,
        etag: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            match self.get(key).await? {
                Some(o) if o.etag == etag => self.delete(key).await.map(|()| true),
                _ => Ok(false),
            }
        }
    }

    /// Copies `from` to `to` (server-side on S3: the bytes never pass through
    /// the function). The default reads and writes.
    fn copy(&self, from: &str, to: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            let object = self
                .get(from)
                .await?
                .ok_or_else(|| StoreError::Permanent(format!("copy: {from} does not exist")))?;
            self.put(
                to,
                object.body,
                "application/octet-stream",
                PutCondition::Always,
            )
            .await
            .map(|_| ())
        }
    }
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

    fn delete_if_match(
        &self,
        key: &str,
        etag: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).delete_if_match(key, etag)
    }

    fn copy(&self, from: &str, to: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).copy(from, to)
    }
}

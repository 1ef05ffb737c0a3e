//! The one thing Labelbox needs from our storage: a URL of the image that its
//! labeling editor can fetch.

use std::future::Future;
use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
#[error("cannot presign {key}: {reason}")]
pub struct PresignError {
    pub key: String,
    pub reason: String,
}

/// Makes a time-limited GET URL for an object of the data bucket.
pub trait Presigner: Send + Sync {
    fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> impl Future<Output = Result<String, PresignError>> + Send;
}

//! Where sampled captures go to be labelled: `trait LabelingBackend`, and the
//! local queue the local labelers answer. (Labelbox comes next.)

use std::future::Future;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::retry::Backoff;
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureRecord, LabelingTask};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("labeling backend unavailable: {0}")]
    Unavailable(String),
    #[error("labeling backend refused the item: {0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The backend's receipt: its own id for the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub external_ref: String,
}

pub trait LabelingBackend: Send + Sync {
    /// `labelbox`, `local`: recorded in the sampling decision.
    fn name(&self) -> &'static str;

    /// Hands a capture over with its boxes as pre-labels. Must be idempotent:
    /// a capture submitted twice is one item.
    fn submit(
        &self,
        capture: &CaptureRecord,
        capture_key: &str,
    ) -> impl Future<Output = Result<Submitted, BackendError>> + Send;
}

/// Writes `labeling/queue/<id>.json` into the bucket for the local labelers.
pub struct LocalQueue<S> {
    pub store: S,
    pub backoff: Backoff,
    pub now: fn() -> DateTime<Utc>,
}

impl<S: ObjectStore> LabelingBackend for LocalQueue<S> {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn submit(
        &self,
        capture: &CaptureRecord,
        capture_key: &str,
    ) -> Result<Submitted, BackendError> {
        let task = LabelingTask {
            id: capture.id,
            capture_key: capture_key.to_string(),
            image_key: capture.image.key.clone(),
            width: capture.image.width,
            height: capture.image.height,
            captured_at: capture.captured_at,
            created_at: (self.now)(),
            prelabels: capture.detections.clone(),
        };
        let key = keys::labeling_task(capture.id);
        let body = Bytes::from(records::to_json(&task));
        // Created once: a second submission finds the task already queued.
        self.backoff
            .retry(StoreError::is_transient, || {
                self.store.put(
                    &key,
                    body.clone(),
                    "application/json",
                    PutCondition::IfAbsent,
                )
            })
            .await?;
        Ok(Submitted { external_ref: key })
    }
}

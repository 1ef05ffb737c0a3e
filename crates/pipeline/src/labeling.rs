//! Where sampled captures go to be labelled: `trait LabelingBackend`, the
//! local queue the local labelers answer, and Labelbox.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureRecord, LabelingTask};
use modelobs_labelbox::{
    BatchSpec, BoxPrelabel, ImportOutcome, LabelboxClient, LabelboxError, NewDataRow, PresignError,
    Presigner,
};
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
        self.store
            .put(&key, body, "application/json", PutCondition::IfAbsent)
            .await?;
        Ok(Submitted { external_ref: key })
    }
}

/// Labelbox: the capture's image becomes a data row (global key = capture id,
/// row data = a presigned GET URL of the image), is queued in the project as a
/// batch of one, and the model's boxes become model-assisted pre-labels.
pub struct Labelbox<P> {
    pub client: LabelboxClient,
    pub presigner: P,
    pub project_id: String,
    pub dataset_id: String,
    /// Tool names of the project's ontology (our class names): boxes of other
    /// classes have no tool to become and are left out of the pre-labels.
    pub tools: BTreeSet<String>,
    /// How long the image URL stays valid: the item must be labelled by then.
    pub url_expiry: Duration,
    /// 1 (first) to 5 (last).
    pub batch_priority: u8,
}

impl<P: Presigner> Labelbox<P> {
    /// The model's boxes that have a tool, cut to the image, each with an id
    /// derived from the capture id and its position (stable across retries).
    pub fn prelabels(&self, capture: &CaptureRecord) -> Vec<BoxPrelabel> {
        capture
            .detections
            .iter()
            .enumerate()
            .filter(|(_, d)| self.tools.contains(&d.label))
            .filter_map(|(i, d)| {
                let bbox = d.bbox.clamp(capture.image.width, capture.image.height);
                (bbox.area() > 0.0).then(|| BoxPrelabel {
                    uuid: uuid_for(capture, i),
                    tool_name: d.label.clone(),
                    bbox: bbox.to_labelbox(),
                    confidence: d.score.clamp(0.0, 1.0),
                })
            })
            .collect()
    }
}

fn uuid_for(capture: &CaptureRecord, index: usize) -> uuid::Uuid {
    uuid::Uuid::new_v5(&capture.id.0, format!("prelabel/{index}").as_bytes())
}

/// Throttling, 5xx, no connection, a job still running: try again later.
/// Anything else (GraphQL errors, a bad key, an unreadable answer): refused.
fn labelbox_error(e: LabelboxError) -> BackendError {
    if e.is_transient() {
        BackendError::Unavailable(e.to_string())
    } else {
        BackendError::Refused(e.to_string())
    }
}

impl<P: Presigner> LabelingBackend for Labelbox<P> {
    fn name(&self) -> &'static str {
        "labelbox"
    }

    async fn submit(
        &self,
        capture: &CaptureRecord,
        _capture_key: &str,
    ) -> Result<Submitted, BackendError> {
        let global_key = capture.id.to_string();
        let url = self
            .presigner
            .presign_get(&capture.image.key, self.url_expiry)
            .await
            .map_err(|e: PresignError| BackendError::Unavailable(e.to_string()))?;
        // Each step finds what an earlier attempt made: the global key, the
        // batch name and the import name are all the capture id.
        let row = self
            .client
            .create_data_row(
                &self.dataset_id,
                &NewDataRow {
                    row_data: url,
                    global_key: global_key.clone(),
                    external_id: Some(capture.image.key.clone()),
                },
            )
            .await
            .map_err(labelbox_error)?;
        let name = format!("modelobs-{global_key}");
        self.client
            .wait_until_processed(std::slice::from_ref(&global_key))
            .await
            .map_err(labelbox_error)?;
        let batch = self
            .client
            .create_batch(
                &self.project_id,
                &BatchSpec {
                    name: name.clone(),
                    global_keys: vec![global_key.clone()],
                    priority: self.batch_priority,
                },
            )
            .await
            .map_err(labelbox_error)?;
        tracing::info!(id = %capture.id, data_row = %row.id, created = row.created, ?batch, "sent to Labelbox");

        let prelabels = self.prelabels(capture);
        if !prelabels.is_empty() {
            let ndjson = modelobs_labelbox::prelabels_ndjson(&global_key, &prelabels);
            match self
                .client
                .import_prelabels(&self.project_id, &name, &ndjson)
                .await
                .map_err(labelbox_error)?
            {
                ImportOutcome::Started(import) => {
                    tracing::info!(id = %capture.id, import = %import.id, boxes = prelabels.len(), "pre-labels importing");
                }
                ImportOutcome::AlreadyExists => {
                    tracing::info!(id = %capture.id, "pre-labels were imported before");
                }
            }
        }
        Ok(Submitted {
            external_ref: row.id,
        })
    }
}

/// The backend chosen at cold start (`LABELING_BACKEND`).
pub enum AnyBackend<S, P> {
    Local(LocalQueue<S>),
    Labelbox(Box<Labelbox<P>>),
}

impl<S: ObjectStore, P: Presigner> LabelingBackend for AnyBackend<S, P> {
    fn name(&self) -> &'static str {
        match self {
            Self::Local(b) => b.name(),
            Self::Labelbox(b) => b.name(),
        }
    }

    async fn submit(
        &self,
        capture: &CaptureRecord,
        capture_key: &str,
    ) -> Result<Submitted, BackendError> {
        match self {
            Self::Local(b) => b.submit(capture, capture_key).await,
            Self::Labelbox(b) => b.submit(capture, capture_key).await,
        }
    }
}

//! Batch use: an image uploaded under `incoming/` is predicted and captured
//! exactly like an HTTP request (capture time = upload time, source = the
//! key), then removed from `incoming/`. Anything that is not an image is moved
//! to `incoming-rejected/` with a reason file, so it is never retried forever.

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use bytes::Bytes;
use chrono::Utc;
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{CaptureId, CaptureSource};
use modelobs_detector::{DetectError, Detector};
use serde_json::json;
use thiserror::Error;

use crate::capture;

pub struct UploadDeps<D, S> {
    pub detector: D,
    pub store: S,
}

/// Failures worth a retry: the event fails, S3 redelivers, then the failure destination.
#[derive(Debug, Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key}: {source}")]
    Model { key: String, source: DetectError },
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Captured {
        key: String,
        capture_id: CaptureId,
    },
    Rejected {
        key: String,
        moved_to: String,
    },
    /// Not under `incoming/`, or already processed (a redelivery).
    Skipped {
        key: String,
        why: &'static str,
    },
}

pub async fn handle<D: Detector, S: ObjectStore>(
    event: S3Event,
    deps: &UploadDeps<D, S>,
) -> Result<Vec<Outcome>, UploadError> {
    let mut outcomes = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let outcome = handle_record(record, deps).await?;
        tracing::info!(?outcome, "upload handled");
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn handle_record<D: Detector, S: ObjectStore>(
    record: &S3EventRecord,
    deps: &UploadDeps<D, S>,
) -> Result<Outcome, UploadError> {
    let raw = record.s3.object.key.clone().unwrap_or_default();
    let key = match keys::decode_event_key(&raw) {
        Ok(k) if k.starts_with(keys::INCOMING) => k,
        _ => {
            return Ok(Outcome::Skipped {
                key: raw,
                why: "not under incoming/",
            });
        }
    };
    let Some(object) = deps.store.get(&key).await? else {
        return Ok(Outcome::Skipped {
            key,
            why: "gone: already processed",
        });
    };

    let captured_at = record.event_time;
    match deps.detector.detect(&object.body) {
        Ok(prediction) => {
            // Same key, bytes and upload time: same id, so a redelivery rewrites one capture.
            let id = CaptureId::derived(captured_at, &[key.as_bytes(), &object.body].concat());
            let source = CaptureSource::S3Upload { key: key.clone() };
            let record = capture::record(
                id,
                captured_at,
                source,
                &deps.detector,
                prediction,
                &object.body,
            );
            capture::store(&deps.store, &record, object.body).await?;
            deps.store.delete(&key).await?;
            Ok(Outcome::Captured {
                key,
                capture_id: id,
            })
        }
        Err(source @ DetectError::Model(_)) => Err(UploadError::Model { key, source }),
        Err(refusal) => {
            let (moved_to, reason_key) = keys::rejected_upload(&key);
            let reason = json!({
                "key": key,
                "code": refusal.code(),
                "message": refusal.to_string(),
                "rejected_at": Utc::now(),
            });
            tracing::warn!(key, error = %refusal, "upload rejected");
            deps.store
                .put(
                    &moved_to,
                    object.body,
                    "application/octet-stream",
                    PutCondition::Always,
                )
                .await?;
            deps.store
                .put(
                    &reason_key,
                    Bytes::from(reason.to_string()),
                    "application/json",
                    PutCondition::Always,
                )
                .await?;
            deps.store.delete(&key).await?;
            Ok(Outcome::Rejected { key, moved_to })
        }
    }
}

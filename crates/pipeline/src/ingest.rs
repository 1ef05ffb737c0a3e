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
    /// Larger objects are moved aside unread (`MAX_UPLOAD_BYTES`): a
    /// multi-GB drop must not be read into the function's memory.
    pub max_object_bytes: u64,
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
    // The event says how big the object is: too big is moved aside unread.
    let claimed = record.s3.object.size.unwrap_or(0).max(0) as u64;
    if claimed > deps.max_object_bytes {
        let etag = record.s3.object.e_tag.as_deref().map(quoted);
        return reject_unread(deps, key, claimed, etag).await;
    }
    let Some(object) = deps.store.get(&key).await? else {
        return Ok(Outcome::Skipped {
            key,
            why: "gone: already processed",
        });
    };
    if object.body.len() as u64 > deps.max_object_bytes {
        // Replaced by a larger object since the event: the same refusal.
        return reject_unread(deps, key, object.body.len() as u64, Some(object.etag)).await;
    }

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
            remove_if_unchanged(deps, &key, &object.etag).await?;
            Ok(Outcome::Captured {
                key,
                capture_id: id,
            })
        }
        Err(source @ DetectError::Model(_)) => Err(UploadError::Model { key, source }),
        Err(refusal) => {
            let (moved_to, reason_key) = keys::rejected_upload(&key);
            tracing::warn!(key, error = %refusal, "upload rejected");
            deps.store
                .put(
                    &moved_to,
                    object.body,
                    "application/octet-stream",
                    PutCondition::Always,
                )
                .await?;
            write_reason(deps, &reason_key, &key, refusal.code(), refusal.to_string()).await?;
            remove_if_unchanged(deps, &key, &object.etag).await?;
            Ok(Outcome::Rejected { key, moved_to })
        }
    }
}

/// Deletes the processed object only if it is still the one processed: a
/// client that uploaded again under the same key meanwhile keeps its new
/// object, and that upload's own event processes it.
async fn remove_if_unchanged<D, S: ObjectStore>(
    deps: &UploadDeps<D, S>,
    key: &str,
    etag: &str,
) -> Result<(), UploadError> {
    if !deps.store.delete_if_match(key, etag).await? {
        tracing::warn!(key, "replaced while we worked: left for its own event");
    }
    Ok(())
}

/// An object over `max_object_bytes`: copied aside server-side (never read),
/// with its reason, and removed from `incoming/`.
async fn reject_unread<D, S: ObjectStore>(
    deps: &UploadDeps<D, S>,
    key: String,
    size: u64,
    etag: Option<String>,
) -> Result<Outcome, UploadError> {
    let (moved_to, reason_key) = keys::rejected_upload(&key);
    tracing::warn!(
        key,
        size,
        limit = deps.max_object_bytes,
        "upload too large; moved aside unread"
    );
    deps.store.copy(&key, &moved_to).await?;
    let limit = deps.max_object_bytes;
    let message = format!("{size} bytes, over the limit of {limit} (MAX_UPLOAD_BYTES); not read");
    write_reason(deps, &reason_key, &key, "payload_too_large", message).await?;
    match etag {
        Some(etag) => remove_if_unchanged(deps, &key, &etag).await?,
        None => deps.store.delete(&key).await?,
    }
    Ok(Outcome::Rejected { key, moved_to })
}

/// `incoming-rejected/<key>.reason.json`: why `key` was moved aside.
async fn write_reason<D, S: ObjectStore>(
    deps: &UploadDeps<D, S>,
    reason_key: &str,
    key: &str,
    code: &str,
    message: String,
) -> Result<(), UploadError> {
    let reason = json!({"key": key, "code": code, "message": message, "rejected_at": Utc::now()});
    deps.store
        .put(
            reason_key,
            Bytes::from(reason.to_string()),
            "application/json",
            PutCondition::Always,
        )
        .await?;
    Ok(())
}

/// An ETag as S3's headers write it (event records carry it bare).
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

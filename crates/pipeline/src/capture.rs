//! Capture: the image and its `CaptureRecord` go to S3 before the answer.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, CaptureSource, CapturedImage, ProfileDelta,
};
use modelobs_detector::{Detector, Prediction};
use sha2::{Digest, Sha256};

/// The record of one prediction, whichever way the image came.
pub fn record(
    id: CaptureId,
    captured_at: DateTime<Utc>,
    source: CaptureSource,
    detector: &impl Detector,
    prediction: Prediction,
    image: &[u8],
) -> CaptureRecord {
    CaptureRecord {
        id,
        captured_at,
        source,
        model: detector.model().clone(),
        image: CapturedImage {
            key: keys::capture_image(id, captured_at, prediction.image.extension),
            width: prediction.image.width,
            height: prediction.image.height,
            content_type: prediction.image.content_type.to_string(),
            sha256: Sha256::digest(image)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            bytes: image.len() as u64,
        },
        score_threshold: detector.score_threshold(),
        detections: prediction.detections,
        timings_ms: prediction.timings_ms,
        reported_classes: detector.reported_classes(),
        profile: prediction.profile,
    }
}

/// Stores the image, then the record (whose arrival triggers the sampler, so
/// the image must already be there). Transient failures are retried by the
/// store itself (`modelobs_adapters::Retrying`, wired in `main.rs`).
pub async fn store<S: ObjectStore>(
    store: &S,
    record: &CaptureRecord,
    image: Bytes,
) -> Result<(), StoreError> {
    let json = Bytes::from(records::to_json(record));
    store
        .put(
            &record.image.key,
            image,
            &record.image.content_type,
            PutCondition::Always,
        )
        .await?;
    let key = modelobs_core::keys::capture_record(record.id, record.captured_at);
    store
        .put(&key, json, "application/json", PutCondition::Always)
        .await?;
    Ok(())
}

/// A shadow model's answer on a capture: the serving model's record with the
/// shadow's model and detections, stored at `keys::shadow_capture_record`
/// (beside the capture records, so it triggers no sampling). It never
/// changes what the caller was answered: a failure is logged and counted by
/// the caller, and the capture stands.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("shadow model {version}: {source}")]
    Model {
        version: String,
        source: modelobs_detector::DetectError,
    },
    #[error(transparent)]
    Key(#[from] modelobs_core::CoreError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs `shadow` on the image of `serving` (already stored) and stores its record.
pub async fn shadow<S: ObjectStore>(
    store: &S,
    serving: &CaptureRecord,
    shadow: &impl Detector,
    image: &[u8],
) -> Result<CaptureRecord, ShadowError> {
    let prediction = shadow.detect(image).map_err(|source| ShadowError::Model {
        version: shadow.model().version.clone(),
        source,
    })?;
    let record = CaptureRecord {
        model: shadow.model().clone(),
        score_threshold: shadow.score_threshold(),
        detections: prediction.detections,
        timings_ms: prediction.timings_ms,
        reported_classes: shadow.reported_classes(),
        profile: prediction.profile,
        ..serving.clone()
    };
    let key = keys::shadow_capture_record(record.id, record.captured_at, &record.model.version)?;
    store
        .put(
            &key,
            Bytes::from(records::to_json(&record)),
            "application/json",
            PutCondition::Always,
        )
        .await?;
    // Its profile, for the shadow version's label-free windows: the sampler
    // writes the serving record's, but a shadow record triggers no sampler.
    let delta_key = keys::profile_delta(record.id, record.captured_at, &record.model.version)?;
    store
        .put(
            &delta_key,
            Bytes::from(records::to_json(&ProfileDelta::of(&record))),
            "application/json",
            PutCondition::IfAbsent,
        )
        .await?;
    Ok(record)
}

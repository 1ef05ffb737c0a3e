//! Capture: the image and its `CaptureRecord` go to S3 before the answer.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureId, CaptureRecord, CaptureSource, CapturedImage};
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

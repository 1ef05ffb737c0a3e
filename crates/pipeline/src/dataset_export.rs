//! A training dataset from the bucket (`modelobs dataset export`): every
//! capture whose current label is not deleted, chosen by an
//! [`ExportFilter`], its image as stored and its label as COCO, in the
//! layout of [`crate::dataset_layout`].
//!
//! Current labels are found by listing `labels/` (one key per labelled
//! capture, the id carrying its capture time, so captures outside the time
//! range are never read). Each is read with its capture record, sampling
//! decision and image, oldest capture first; the first image of each
//! SHA-256 is kept.
//!
//! What cannot be exported (a record or label that does not parse, a
//! missing capture or image, an image whose bytes do not match the record,
//! classes the class map did not know) is skipped and reported by key:
//! never dropped silently. A store that fails (after the store's own
//! retries) fails the export.

use std::path::Path;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use modelobs_adapters::{ObjectStore, StoreError};
use modelobs_core::export::{self, DatasetImage, ExportFilter, SplitPlan};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureId, CaptureRecord, GroundTruth, SamplingDecision};
use thiserror::Error;

use crate::dataset_layout::{DatasetOutcome, DatasetWriter, LayoutError, Problem, Progress};

pub struct ExportRequest {
    pub filter: ExportFilter,
    pub split: Option<SplitPlan>,
    /// Captures read at once.
    pub concurrency: usize,
}

/// What the export found and did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportReport {
    /// Current labels in the bucket (`labels/<id>.json`).
    pub labels: usize,
    /// Of those, captured outside the time range (by the time their id carries).
    pub outside_range: usize,
    /// Labels that are tombstones.
    pub deleted: usize,
    /// Labelled captures the model version, label source or reason filters left out.
    pub filtered_out: usize,
    pub outcome: DatasetOutcome,
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// One current label, read.
enum Fetched {
    Deleted,
    FilteredOut,
    Skipped(Problem),
    /// The image, its bytes, and the key of its label.
    Image(Box<DatasetImage>, Bytes, String),
}

fn skipped(key: &str, why: impl ToString) -> Fetched {
    Fetched::Skipped(Problem {
        key: key.to_string(),
        why: why.to_string(),
    })
}

/// A record at `key`: `Ok(None)` when there is none, `Err` (the reason to skip) when it does not parse.
async fn read<S: ObjectStore, T: records::Record>(
    store: &S,
    key: &str,
) -> Result<Option<Result<T, Fetched>>, StoreError> {
    Ok(store
        .get(key)
        .await?
        .map(|o| records::from_json(&o.body).map_err(|e| skipped(key, e))))
}

async fn fetch<S: ObjectStore>(
    store: &S,
    filter: &ExportFilter,
    id: CaptureId,
) -> Result<Fetched, StoreError> {
    let label_key = keys::label(id);
    let truth: GroundTruth = match read(store, &label_key).await? {
        None => return Ok(skipped(&label_key, "listed, then gone")),
        Some(Err(e)) => return Ok(e),
        Some(Ok(t)) => t,
    };
    if truth.deleted {
        return Ok(Fetched::Deleted);
    }
    let Some(capture_key) = keys::capture_record_of(id) else {
        return Ok(skipped(&label_key, "the capture id carries no time"));
    };
    let capture: CaptureRecord = match read(store, &capture_key).await? {
        None => return Ok(skipped(&capture_key, "no capture record for this label")),
        Some(Err(e)) => return Ok(e),
        Some(Ok(c)) => c,
    };
    let sample_key = keys::sample(id);
    let decision: Option<SamplingDecision> = match read(store, &sample_key).await? {
        None => None,
        Some(Err(e)) => return Ok(e),
        Some(Ok(d)) => Some(d),
    };
    if !filter.admits(&capture, &truth, decision.as_ref()) {
        return Ok(Fetched::FilteredOut);
    }
    let image = match export::labelled_capture(&capture, &truth, decision.as_ref()) {
        Ok(image) => image,
        Err(e) => return Ok(skipped(&label_key, e)),
    };
    let Some(stored) = store.get(&capture.image.key).await? else {
        return Ok(skipped(
            &capture.image.key,
            "the capture's image is missing",
        ));
    };
    let sha256 = export::sha256_hex(&stored.body);
    if sha256 != capture.image.sha256 {
        return Ok(skipped(
            &capture.image.key,
            format!(
                "the image's bytes hash to {sha256}, its capture record says {}",
                capture.image.sha256
            ),
        ));
    }
    Ok(Fetched::Image(Box::new(image), stored.body, label_key))
}

/// Exports the labelled captures `request` chooses into `out` (which must not hold a dataset yet).
pub async fn export<S: ObjectStore>(
    store: &S,
    request: &ExportRequest,
    out: &Path,
    progress: &impl Progress,
) -> Result<ExportReport, ExportError> {
    let mut report = ExportReport::default();
    let mut ids = Vec::new();
    for listed in store.list(keys::LABELS).await? {
        if listed.key.starts_with(keys::LABEL_HISTORY) {
            continue;
        }
        match keys::parse_label(&listed.key) {
            Ok(id) => {
                report.labels += 1;
                if request.filter.may_admit(id) {
                    ids.push(id);
                } else {
                    report.outside_range += 1;
                }
            }
            Err(e) => report.outcome.skip(
                Problem {
                    key: listed.key,
                    why: e.to_string(),
                },
                progress,
            ),
        }
    }
    // UUIDv7: id order is capture-time order, so the oldest of duplicates is kept.
    ids.sort_unstable();

    let mut writer = DatasetWriter::create(out).await?;
    progress.start("exporting", ids.len() as u64);
    let mut fetched = stream::iter(ids)
        .map(|id| fetch(store, &request.filter, id))
        .buffered(request.concurrency.max(1));
    while let Some(item) = fetched.next().await {
        progress.advance();
        match item? {
            Fetched::Deleted => report.deleted += 1,
            Fetched::FilteredOut => report.filtered_out += 1,
            Fetched::Skipped(problem) => report.outcome.skip(problem, progress),
            Fetched::Image(image, bytes, key) => {
                let added = writer.add(*image, Some(&bytes)).await?;
                report.outcome.added(added, key, progress);
            }
        }
    }
    drop(fetched);
    report.outcome.written = writer.close(request.split.as_ref()).await?;
    Ok(report)
}

//! Label arrivals from the metrics queue: evaluate the image against its
//! newest label, store the `ImageEval` at its deterministic key (a redelivery
//! rewrites it: never counted twice), mark its windows touched (a new touch
//! key per message: `keys::window_touch`), emit it. Shadow models' answers on
//! the same capture (`captures/shadow/`) are evaluated against the same label
//! and touch their own version's windows.
//! A message that can't be handled fails alone (`batchItemFailures`): SQS
//! retries it and then moves it to the DLQ; the rest of the batch succeeds.
//!
//! # Newest label wins, whatever the order of the handlers
//!
//! A handler reads the label, then writes. A slow one may have read an older
//! label than another that wrote before it, so no write is blind:
//! - an evaluation is written by compare-and-swap (`If-Match` on the ETag
//!   read, `If-None-Match` when there is none) and only over an evaluation
//!   of the same or an older label version;
//! - a deleted label's evaluation is removed only when what is stored is of
//!   the same or an older version; S3 (and our emulators) cannot make that
//!   delete conditional, so the label is read again after it, and if it has
//!   moved on the message fails: its retry evaluates the newer label. Any
//!   evaluation the delete could have removed was written after that newer
//!   label was stored, so the second read sees it.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError};
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, Granularity, GroundTruth, ImageEval, Window,
};
use modelobs_core::{CoreError, keys};
use serde::Deserialize;
use thiserror::Error;

use crate::sink::MetricsSink;

pub struct Deps<S, M> {
    pub store: S,
    pub sink: M,
    pub now: fn() -> DateTime<Utc>,
}

#[derive(Debug, Error)]
pub enum MessageError {
    #[error("message body is not {{id, label_version}}: {0}")]
    BadMessage(String),
    #[error("{key} is missing")]
    Missing { key: String },
    #[error("{key}: {source}")]
    Malformed { key: String, source: CoreError },
    #[error("{key}: label version {stored} is older than the message's {wanted}")]
    NotYetVisible {
        key: String,
        stored: i64,
        wanted: i64,
    },
    #[error("{key} moved from version {read} to {now} while its deletion was applied; retried")]
    LabelMovedOn { key: String, read: i64, now: i64 },
    #[error("{key} kept changing under {attempts} compare-and-swap attempts")]
    Contended { key: String, attempts: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Compare-and-swap attempts on one evaluation key before the message fails.
const CAS_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Evaluated {
        id: CaptureId,
        key: String,
        ap50: f64,
    },
    /// The label was deleted: the image leaves its windows.
    Removed { id: CaptureId },
}

#[derive(Deserialize)]
struct LabelArrived {
    id: CaptureId,
    label_version: i64,
}

pub async fn handle<S: ObjectStore, M: MetricsSink>(
    event: SqsEvent,
    deps: &Deps<S, M>,
) -> SqsBatchResponse {
    deps.sink.begin_invocation();
    let mut failures = Vec::new();
    for message in &event.records {
        let message_id = message.message_id.clone().unwrap_or_default();
        match handle_message(message, deps).await {
            Ok(outcome) => tracing::info!(message_id, ?outcome, "label evaluated"),
            Err(e) => {
                tracing::error!(message_id, error = %e, "message failed; SQS will retry it, then the DLQ");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                failures.push(failure);
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

async fn load<S: ObjectStore, M, T: records::Record>(
    deps: &Deps<S, M>,
    key: &str,
) -> Result<T, MessageError> {
    let object = deps
        .store
        .get(key)
        .await?
        .ok_or_else(|| MessageError::Missing {
            key: key.to_string(),
        })?;
    records::from_json(&object.body).map_err(|source| MessageError::Malformed {
        key: key.to_string(),
        source,
    })
}

async fn put<S: ObjectStore, M>(
    deps: &Deps<S, M>,
    key: &str,
    body: Bytes,
) -> Result<(), StoreError> {
    deps.store
        .put(key, body, "application/json", PutCondition::Always)
        .await
        .map(|_| ())
}

/// A new key per handling (time, then the SQS message id): a touch is never
/// overwritten, so the rollup's delete of the touches it read can't remove a
/// later one (`crate::rollup`). A redelivery at the same instant writes the
/// same key, which is as good as one touch.
fn touch_id(message: &SqsMessage, now: DateTime<Utc>) -> String {
    let id: String = message
        .message_id
        .as_deref()
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{:013}-{id}", now.timestamp_millis().max(0))
}

async fn handle_message<S: ObjectStore, M: MetricsSink>(
    message: &SqsMessage,
    deps: &Deps<S, M>,
) -> Result<Outcome, MessageError> {
    let body = message.body.as_deref().unwrap_or("");
    let arrived: LabelArrived =
        serde_json::from_str(body).map_err(|e| MessageError::BadMessage(e.to_string()))?;
    let id = arrived.id;
    let capture_key = keys::capture_record_of(id)
        .ok_or_else(|| MessageError::BadMessage(format!("{id} carries no capture time")))?;
    let capture: CaptureRecord = load(deps, &capture_key).await?;
    let label_key = keys::label(id);
    let truth: GroundTruth = load(deps, &label_key).await?;
    if truth.version() < arrived.label_version {
        return Err(MessageError::NotYetVisible {
            key: label_key,
            stored: truth.version(),
            wanted: arrived.label_version,
        });
    }

    let eval_key = keys::image_eval(id, capture.captured_at);
    let mut removed_any = false;
    let outcome = if truth.deleted {
        removed_any |= remove_eval(deps, &eval_key, truth.version()).await?;
        Outcome::Removed { id }
    } else {
        // Always the newest label, whichever version the message names: an
        // older message arriving late re-evaluates the same, newest state.
        let eval = store_eval(deps, &eval_key, &capture, &truth, &label_key).await?;
        Outcome::Evaluated {
            id,
            key: eval_key,
            ap50: eval.ap50,
        }
    };
    // Every shadow model's answer on the same capture, against the same label.
    let mut versions = vec![capture.model.version.clone()];
    for shadow in shadows(deps, &capture).await? {
        let key = keys::shadow_image_eval(id, capture.captured_at, &shadow.model.version).map_err(
            |source| MessageError::Malformed {
                key: capture_key.clone(),
                source,
            },
        )?;
        if truth.deleted {
            removed_any |= remove_eval(deps, &key, truth.version()).await?;
        } else {
            store_eval(deps, &key, &shadow, &truth, &label_key).await?;
        }
        versions.push(shadow.model.version.clone());
    }
    if removed_any {
        let now: GroundTruth = load(deps, &label_key).await?;
        if now.version() != truth.version() {
            return Err(MessageError::LabelMovedOn {
                key: label_key,
                read: truth.version(),
                now: now.version(),
            });
        }
    }
    // After the evaluations are written: a rollup that lists these touches sees them.
    let touch = touch_id(message, (deps.now)());
    for version in &versions {
        for granularity in [Granularity::Hour, Granularity::Day] {
            let window = Window::containing(granularity, capture.captured_at);
            let marker = keys::window_touch(&window, version, &touch).map_err(|source| {
                MessageError::Malformed {
                    key: capture_key.clone(),
                    source,
                }
            })?;
            put(deps, &marker, Bytes::from_static(b"{}")).await?;
        }
    }
    Ok(outcome)
}

/// Evaluates `capture` against `truth`, stores it at `key`, emits it.
async fn store_eval<S: ObjectStore, M: MetricsSink>(
    deps: &Deps<S, M>,
    key: &str,
    capture: &CaptureRecord,
    truth: &GroundTruth,
    label_key: &str,
) -> Result<ImageEval, MessageError> {
    let eval = ImageEval::evaluate(capture, truth, (deps.now)()).map_err(|source| {
        MessageError::Malformed {
            key: label_key.to_string(),
            source,
        }
    })?;
    if !put_newest(deps, key, &eval).await? {
        tracing::info!(capture_id = %capture.id, key, label_version = eval.label_version,
            "an evaluation of a newer label is stored; this one is dropped");
        return Ok(eval);
    }
    // A sink failure never loses the evaluation: it is in S3 already.
    if let Err(e) = deps.sink.emit_image(&eval).await {
        tracing::warn!(capture_id = %capture.id, error = %e, "metrics sink failed");
    }
    Ok(eval)
}

/// The label version of the evaluation stored at `key`, with its ETag;
/// `None` for no evaluation. One that does not parse is treated as oldest
/// (version `i64::MIN`): the next write replaces it.
async fn stored_version<S: ObjectStore, M>(
    deps: &Deps<S, M>,
    key: &str,
) -> Result<Option<(i64, String)>, MessageError> {
    Ok(deps.store.get(key).await?.map(|o| {
        let version = records::from_json::<ImageEval>(&o.body)
            .map(|e| e.label_version)
            .unwrap_or_else(|e| {
                tracing::warn!(key, error = %e, "stored evaluation does not parse; replacing it");
                i64::MIN
            });
        (version, o.etag)
    }))
}

/// Writes `eval` at `key` unless an evaluation of a newer label is stored:
/// compare-and-swap on what was read. `false`: a newer one won.
async fn put_newest<S: ObjectStore, M>(
    deps: &Deps<S, M>,
    key: &str,
    eval: &ImageEval,
) -> Result<bool, MessageError> {
    let body = Bytes::from(records::to_json(eval));
    for _ in 0..CAS_ATTEMPTS {
        let condition = match stored_version(deps, key).await? {
            Some((version, _)) if version > eval.label_version => return Ok(false),
            Some((_, etag)) => PutCondition::IfMatch(etag),
            None => PutCondition::IfAbsent,
        };
        match deps
            .store
            .put(key, body.clone(), "application/json", condition)
            .await?
        {
            PutOutcome::Written { .. } => return Ok(true),
            PutOutcome::ConditionFailed => continue,
        }
    }
    Err(MessageError::Contended {
        key: key.to_string(),
        attempts: CAS_ATTEMPTS,
    })
}

/// Removes the evaluation at `key` unless it is of a label newer than
/// `version`; whether anything was deleted (the caller then re-reads the
/// label: see the module docs).
async fn remove_eval<S: ObjectStore, M>(
    deps: &Deps<S, M>,
    key: &str,
    version: i64,
) -> Result<bool, MessageError> {
    match stored_version(deps, key).await? {
        None => Ok(false),
        Some((stored, _)) if stored > version => Ok(false),
        Some(_) => {
            deps.store.delete(key).await?;
            Ok(true)
        }
    }
}

/// The shadow models' records of `capture` (`keys::shadow_captures_of`);
/// one that does not parse, or is not of this capture, fails the message.
async fn shadows<S: ObjectStore, M>(
    deps: &Deps<S, M>,
    capture: &CaptureRecord,
) -> Result<Vec<CaptureRecord>, MessageError> {
    let prefix = keys::shadow_captures_of(capture.id, capture.captured_at);
    let mut out = Vec::new();
    for listed in deps.store.list(&prefix).await? {
        let shadow: CaptureRecord = match load(deps, &listed.key).await {
            Ok(s) => s,
            // Listed, then gone: nothing to evaluate.
            Err(MessageError::Missing { .. }) => continue,
            Err(e) => return Err(e),
        };
        if shadow.id != capture.id || shadow.model.version == capture.model.version {
            return Err(MessageError::Malformed {
                key: listed.key,
                source: CoreError::InvalidRecord(format!(
                    "a shadow of capture {} must carry its id and another model version",
                    capture.id
                )),
            });
        }
        out.push(shadow);
    }
    Ok(out)
}

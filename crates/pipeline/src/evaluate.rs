//! Label arrivals from the metrics queue: evaluate the image against its
//! newest label, store the `ImageEval` at its deterministic key (a redelivery
//! rewrites it: never counted twice), mark its windows touched (a new touch
//! key per message: `keys::window_touch`), emit it. Shadow models' answers on
//! the same capture (`captures/shadow/`) are evaluated against the same label
//! and touch their own version's windows.
//! A message that can't be handled fails alone (`batchItemFailures`): SQS
//! retries it and then moves it to the DLQ; the rest of the batch succeeds.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, StoreError};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
    let outcome = if truth.deleted {
        deps.store.delete(&eval_key).await?;
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
            deps.store.delete(&key).await?;
        } else {
            store_eval(deps, &key, &shadow, &truth, &label_key).await?;
        }
        versions.push(shadow.model.version.clone());
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
    put(deps, key, Bytes::from(records::to_json(&eval))).await?;
    // A sink failure never loses the evaluation: it is in S3 already.
    if let Err(e) = deps.sink.emit_image(&eval).await {
        tracing::warn!(capture_id = %capture.id, error = %e, "metrics sink failed");
    }
    Ok(eval)
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

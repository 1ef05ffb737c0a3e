//! Recording a label: what the webhook does once an event is verified and
//! parsed. The label (carried by the event, or fetched from its source when
//! the event only names it) becomes `labels/<id>.json`, and one
//! `{id, label_version}` message per version goes on the metrics queue.
//!
//! Exactly once in effect: each label version is written to
//! `labels/history/<id>/<version>.json` once, `labels/<id>.json` only moves
//! forward (compare-and-swap on its ETag), and a `<version>.queued` marker
//! written after the message means a replay of the same version sends nothing.

use bytes::Bytes;
use modelobs_adapters::queue::Queue;
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{self, GroundTruth};
use modelobs_labelbox::webhook::payload::{ClassMap, LabelEvent, Topic};
use serde_json::json;
use thiserror::Error;

use crate::label_source::{FetchError, LabelFetcher, LabelRef};

/// What recording needs: the bucket, the metrics queue, the label source,
/// the class map, and the source name recorded in each `GroundTruth`.
pub struct Recorder<'a, S, Q, F> {
    pub store: &'a S,
    pub queue: &'a Q,
    pub fetcher: &'a F,
    pub class_map: &'a ClassMap,
    pub source: &'a str,
}

/// What became of an event, with the details the sender is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `false`: nothing to record (a label its source no longer has, a review
    /// of a label we never had); the sender need not retry.
    pub stored: bool,
    pub detail: serde_json::Value,
}

impl Recorded {
    fn stored(detail: serde_json::Value) -> Self {
        Self {
            stored: true,
            detail,
        }
    }

    fn ignored(detail: serde_json::Value) -> Self {
        Self {
            stored: false,
            detail,
        }
    }
}

#[derive(Debug, Error)]
pub enum RecordError {
    /// The event can't be recorded as sent (no such capture, not a capture id).
    #[error("{0}")]
    BadRequest(String),
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("metrics queue unavailable: {0}")]
    Queue(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

async fn get<S: ObjectStore, Q, F>(
    deps: &Recorder<'_, S, Q, F>,
    key: &str,
) -> Result<Option<modelobs_adapters::StoredObject>, StoreError> {
    deps.store.get(key).await
}

async fn put<S: ObjectStore, Q, F>(
    deps: &Recorder<'_, S, Q, F>,
    key: &str,
    body: Bytes,
    condition: PutCondition,
) -> Result<PutOutcome, StoreError> {
    deps.store
        .put(key, body, "application/json", condition)
        .await
}

/// Stores the label an event carries (or names: fetched from its source),
/// newest version winning, and queues its evaluation once per version.
/// `topic` names the event in what is answered.
pub async fn record<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    deps: &Recorder<'_, S, Q, F>,
    topic: &str,
    event: LabelEvent,
) -> Result<Recorded, RecordError> {
    let id = event.capture_id;
    let capture_key = keys::capture_record_of(id).ok_or_else(|| {
        RecordError::BadRequest(format!("dataRow.globalKey {id} is not a capture id"))
    })?;
    // A label for a capture we never made cannot be evaluated, and retrying
    // won't change that: 400 so the sender's delivery log shows it.
    if get(deps, &capture_key).await?.is_none() {
        return Err(RecordError::BadRequest(format!("no capture {id}")));
    }

    let event = match (event.topic, &event.objects) {
        (Topic::LabelCreated | Topic::LabelUpdated, None) => {
            let label = LabelRef {
                project_id: event.project_id.clone(),
                global_key: id.to_string(),
                label_id: event.label_id.clone(),
            };
            match deps.fetcher.fetch(&label).await? {
                // The source's time when later: the version of what was read.
                Some(fetched) => LabelEvent {
                    updated_at: fetched
                        .updated_at
                        .map_or(event.updated_at, |t| t.max(event.updated_at)),
                    objects: Some(fetched.objects),
                    ..event
                },
                None => {
                    tracing::warn!(%id, label_id = %event.label_id, project_id = ?event.project_id,
                        "label not found at its source; nothing stored");
                    return Ok(Recorded::ignored(
                        json!({"status": "ignored", "topic": topic, "id": id,
                            "label_id": event.label_id, "why": "label not found at its source"}),
                    ));
                }
            }
        }
        _ => event,
    };

    let label_key = keys::label(id);
    let current = get(deps, &label_key).await?;
    let current_gt: Option<GroundTruth> = current
        .as_ref()
        .map(|o| records::from_json(&o.body))
        .transpose()
        .map_err(|e| RecordError::Store(StoreError::Permanent(format!("{label_key}: {e}"))))?;

    let truth = match (event.topic, &event.objects) {
        (Topic::LabelDeleted, _) => GroundTruth {
            id,
            source: deps.source.to_string(),
            label_id: event.label_id.clone(),
            updated_at: event.updated_at,
            deleted: true,
            objects: Vec::new(),
            unmapped_objects: Vec::new(),
            review_score: None,
        },
        (_, Some(objects)) => {
            let (objects, unmapped) = deps.class_map.map(objects);
            GroundTruth {
                id,
                source: deps.source.to_string(),
                label_id: event.label_id.clone(),
                updated_at: event.updated_at,
                deleted: false,
                objects,
                unmapped_objects: unmapped,
                review_score: event.review_score,
            }
        }
        // A review without the label: the score amends the label we have.
        (Topic::ReviewCreated, None) => match &current_gt {
            Some(gt) => GroundTruth {
                updated_at: event.updated_at,
                review_score: event.review_score,
                ..gt.clone()
            },
            None => {
                return Ok(Recorded::ignored(
                    json!({"status": "ignored", "topic": topic, "why": "review of a label we don't have"}),
                ));
            }
        },
        // Created and updated labels without objects were fetched above.
        (Topic::LabelCreated | Topic::LabelUpdated, None) => {
            return Err(FetchError::NotConfigured.into());
        }
    };
    let version = truth.version();
    let json_body = Bytes::from(records::to_json(&truth));
    put(
        deps,
        &keys::label_history(id, version),
        json_body.clone(),
        PutCondition::IfAbsent,
    )
    .await?;

    match (&current, &current_gt) {
        (Some(_), Some(gt)) if gt.version() > version => {
            return Ok(Recorded::stored(
                json!({"status": "stale", "id": id, "label_version": version, "current_version": gt.version()}),
            ));
        }
        (Some(_), Some(gt)) if gt.version() == version => {} // a replay: already current
        (existing, _) => {
            let condition = match existing {
                Some(o) => PutCondition::IfMatch(o.etag.clone()),
                None => PutCondition::IfAbsent,
            };
            if put(deps, &label_key, json_body, condition).await? == PutOutcome::ConditionFailed {
                return Err(RecordError::Store(StoreError::Transient(format!(
                    "{label_key} changed while we wrote it; retry"
                ))));
            }
        }
    }

    let marker = keys::label_notified(id, version);
    let queued_before = get(deps, &marker).await?.is_some();
    if !queued_before {
        let message = json!({"id": id, "label_version": version}).to_string();
        deps.queue
            .send(message)
            .await
            .map_err(|e| RecordError::Queue(e.to_string()))?;
        put(
            deps,
            &marker,
            Bytes::from_static(b"{}"),
            PutCondition::IfAbsent,
        )
        .await?;
    }
    Ok(Recorded::stored(json!({
        "status": if queued_before { "unchanged" } else { "accepted" },
        "id": id,
        "label_version": version,
        "deleted": truth.deleted,
        "objects": truth.objects.len(),
        "unmapped_objects": truth.unmapped_objects,
    })))
}

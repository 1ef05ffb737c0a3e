//! Recording a label: what the webhook does once an event is verified and
//! parsed. The label (carried by the event, or fetched from its source when
//! the event only names it) becomes `labels/<id>.json`, and one
//! `{id, label_version}` message per version goes on the metrics queue.
//!
//! What a payload may lack is read from the label source (Labelbox's
//! export): the capture id, when the payload names its data row only by id;
//! a created or updated label's content and time, as one pair (the version
//! the source holds), when it lacks either. Without a source to ask, such an
//! event is a 400 naming what it lacked. A log line per event says which
//! payload generation it was and where its capture id and label came from.
//!
//! Exactly once in effect: each label version is written to
//! `labels/history/<id>/<version>.json` once, `labels/<id>.json` only moves
//! forward (compare-and-swap on its ETag), and a `<version>.queued` marker
//! written after the message means a replay of the same version sends nothing.
//!
//! Which label an event changes ([`plan`]):
//! - content (created, updated, a review carrying the label) becomes current
//!   when its version (`updatedAt`) is newer than the current one; a label
//!   recorded as deleted stays deleted (Labelbox does not bring a deleted
//!   label back, so its content arriving later is a delayed delivery);
//! - a deletion applies only to the label it names: the current one is
//!   replaced by a tombstone versioned just after it (or at the deletion's own
//!   time when later), never at the time it arrived; a deletion of another
//!   label goes into the history only and the current label stays;
//! - a review without the label amends the current label's score when it
//!   reviews that label, without a new version: the label's version stays its
//!   content's `updatedAt`, so a delayed update of older content than the
//!   review still wins, and the score goes with it. A review older than the
//!   one recorded (`reviewed_at`) changes nothing.

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use modelobs_adapters::queue::Queue;
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{self, CaptureId, GroundTruth};
use modelobs_labelbox::webhook::payload::{ClassMap, LabelEvent, Topic, TopicFrom};
use serde_json::json;
use thiserror::Error;

use crate::label_source::{FetchError, FetchedLabel, LabelFetcher, LabelRef, RowRef};

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
    /// of a label we never had); `true`: stored, or superseded by what is
    /// stored (`"status": "stale"`). Either way the sender need not retry.
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
    /// The event can't be recorded as sent (no such capture, not a capture
    /// id, a deletion only the unsigned header asks for).
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
/// as [`plan`] decides, and queues its evaluation once per version.
/// `topic` names the event in what is answered.
pub async fn record<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    deps: &Recorder<'_, S, Q, F>,
    topic: &str,
    event: LabelEvent,
) -> Result<Recorded, RecordError> {
    // A label's content and time, when the payload lacks either, are read
    // from the source: as one pair, the version the source holds.
    let needs_content = matches!(event.topic, Topic::LabelCreated | Topic::LabelUpdated)
        && (event.objects.is_none() || event.updated_at.is_none());
    let mut fetched: Option<Option<FetchedLabel>> = None;
    let id = match event.capture_id {
        Some(id) => id,
        None => {
            let Some(data_row_id) = event.data_row_id.clone() else {
                return Err(RecordError::BadRequest(
                    "the payload names no data row (dataRow.globalKey or dataRow.id)".into(),
                ));
            };
            let key = if needs_content {
                let label = deps
                    .fetcher
                    .fetch(&label_ref(&event, RowRef::DataRowId(data_row_id.clone())))
                    .await
                    .map_err(|e| unconfigured(&event, e))?;
                let key = label.as_ref().and_then(|l| l.global_key.clone());
                let found = label.is_some();
                fetched = Some(label);
                if !found {
                    return Ok(not_at_source(topic, &event, None));
                }
                key
            } else {
                deps.fetcher
                    .global_key_of(event.project_id.as_deref(), &data_row_id)
                    .await
                    .map_err(|e| unconfigured(&event, e))?
            };
            let key = key.ok_or_else(|| {
                RecordError::BadRequest(format!(
                    "data row {data_row_id} has no global key at the source: not one of our captures"
                ))
            })?;
            CaptureId::parse(&key).map_err(|e| {
                RecordError::BadRequest(format!(
                    "data row {data_row_id}'s global key {key} is not a capture id: {e}"
                ))
            })?
        }
    };
    let capture_key = keys::capture_record_of(id).ok_or_else(|| {
        RecordError::BadRequest(format!("dataRow.globalKey {id} is not a capture id"))
    })?;
    // A label for a capture we never made cannot be evaluated, and retrying
    // won't change that: 400 so the sender's delivery log shows it.
    if get(deps, &capture_key).await?.is_none() {
        return Err(RecordError::BadRequest(format!("no capture {id}")));
    }
    let row = RowRef::GlobalKey(id.to_string());
    if event.topic == Topic::LabelDeleted && event.topic_from == TopicFrom::Header {
        confirm_deleted(deps, &event, row.clone()).await?;
    }
    tracing::info!(%id, label_id = %event.label_id, topic, payload = event.shape.as_str(),
        capture_id_from = if event.capture_id.is_some() { "payload" } else { "source" },
        label_from = if needs_content { "source" } else { "payload" },
        "label event read");

    let event = if needs_content {
        let label = match fetched {
            Some(label) => label,
            None => deps
                .fetcher
                .fetch(&label_ref(&event, row))
                .await
                .map_err(|e| unconfigured(&event, e))?,
        };
        match label {
            // The source's time when later: the version of what was read.
            Some(label) => LabelEvent {
                capture_id: Some(id),
                updated_at: match (label.updated_at, event.updated_at) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                },
                objects: Some(label.objects),
                ..event
            },
            None => return Ok(not_at_source(topic, &event, Some(id))),
        }
    } else {
        LabelEvent {
            capture_id: Some(id),
            ..event
        }
    };

    let label_key = keys::label(id);
    let current = get(deps, &label_key).await?;
    let current_gt: Option<GroundTruth> = current
        .as_ref()
        .map(|o| records::from_json(&o.body))
        .transpose()
        .map_err(|e| RecordError::Store(StoreError::Permanent(format!("{label_key}: {e}"))))?;

    // Every write of labels/<id>.json is over what was just read, or none.
    let unchanged_since_read = match &current {
        Some(o) => PutCondition::IfMatch(o.etag.clone()),
        None => PutCondition::IfAbsent,
    };
    let truth = match plan(deps.class_map, deps.source, &event, current_gt.as_ref())? {
        Plan::Ignore(why) => {
            return Ok(Recorded::ignored(
                json!({"status": "ignored", "topic": topic, "id": id,
                "label_id": event.label_id, "why": why}),
            ));
        }
        Plan::Stale { truth, why } => {
            if let Some(truth) = &truth {
                put_history(deps, truth).await?;
            }
            return Ok(Recorded::stored(json!({"status": "stale", "id": id,
                "label_id": event.label_id,
                "label_version": truth.as_ref().map(GroundTruth::version),
                "current_version": current_gt.as_ref().map(GroundTruth::version),
                "why": why})));
        }
        Plan::Amend(truth) => {
            swap(deps, &label_key, &truth, unchanged_since_read).await?;
            return Ok(Recorded::stored(json!({"status": "reviewed", "id": id,
                "label_id": truth.label_id, "label_version": truth.version(),
                "review_score": truth.review_score})));
        }
        Plan::Advance(truth) => {
            put_history(deps, &truth).await?;
            swap(deps, &label_key, &truth, unchanged_since_read).await?;
            truth
        }
        Plan::Replay(truth) => truth,
    };

    let version = truth.version();
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
        "label_id": truth.label_id,
        "label_version": version,
        "deleted": truth.deleted,
        "objects": truth.objects.len(),
        "unmapped_objects": truth.unmapped_objects,
    })))
}

fn label_ref(event: &LabelEvent, row: RowRef) -> LabelRef {
    LabelRef {
        project_id: event.project_id.clone(),
        row,
        label_id: event.label_id.clone(),
    }
}

/// A fetch that is not configured, as the error the sender needs: what the
/// payload lacked.
fn unconfigured(event: &LabelEvent, e: FetchError) -> RecordError {
    if e != FetchError::NotConfigured {
        return e.into();
    }
    let content = matches!(event.topic, Topic::LabelCreated | Topic::LabelUpdated);
    let lacks: Vec<&str> = [
        (event.capture_id.is_none(), "no dataRow.globalKey"),
        (
            content && event.objects.is_none(),
            "no label JSON (field label)",
        ),
        (content && event.updated_at.is_none(), "no time (updatedAt)"),
    ]
    .into_iter()
    .filter_map(|(lacking, what)| lacking.then_some(what))
    .collect();
    RecordError::BadRequest(format!(
        "the payload carries {}, and fetching labels from Labelbox is not configured \
         (LABEL_SOURCE=labelbox)",
        lacks.join(", ")
    ))
}

/// A created or updated label its source does not have (deleted since):
/// nothing to store.
fn not_at_source(topic: &str, event: &LabelEvent, id: Option<CaptureId>) -> Recorded {
    tracing::warn!(id = ?id, label_id = %event.label_id, data_row_id = ?event.data_row_id,
        project_id = ?event.project_id, "label not found at its source; nothing stored");
    Recorded::ignored(json!({"status": "ignored", "topic": topic, "id": id,
        "label_id": event.label_id, "why": "label not found at its source"}))
}

/// A deletion whose topic only the unsigned `X-Labelbox-Event` header gives
/// (Labelbox's own deliveries) could be any signed body resent under that
/// header. It is applied only when the label's source confirms the label is
/// gone; with no source to ask, only to a body that carries no label content
/// (a label's content under a deletion's header is a replayed label).
async fn confirm_deleted<S, Q, F: LabelFetcher>(
    deps: &Recorder<'_, S, Q, F>,
    event: &LabelEvent,
    row: RowRef,
) -> Result<(), RecordError> {
    let unsigned = "LABEL_DELETED comes only from the X-Labelbox-Event header, which the \
        signature does not cover";
    match deps.fetcher.fetch(&label_ref(event, row)).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(RecordError::BadRequest(format!(
            "{unsigned}, and label {} still exists at its source: refused",
            event.label_id
        ))),
        Err(FetchError::NotConfigured | FetchError::NoProject) if event.objects.is_none() => Ok(()),
        Err(FetchError::NotConfigured | FetchError::NoProject) => {
            Err(RecordError::BadRequest(format!(
                "{unsigned}, and the signed body carries label {}'s content with no label \
                 source to confirm the deletion: refused",
                event.label_id
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// What an event does to the capture's label, given the current one.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A new version: into the history, current by compare-and-swap, one message.
    Advance(GroundTruth),
    /// The current version again: its message, if it never went out.
    Replay(GroundTruth),
    /// The current version with a newer review: current by compare-and-swap,
    /// no new version and so no message.
    Amend(GroundTruth),
    /// Superseded by the current label: into the history when it has a
    /// version of its own, and the current label stays.
    Stale {
        truth: Option<GroundTruth>,
        why: String,
    },
    /// Nothing to record.
    Ignore(String),
}

/// The rules of the module's doc, as a pure function of the event and the
/// current label.
pub fn plan(
    class_map: &ClassMap,
    source: &str,
    event: &LabelEvent,
    current: Option<&GroundTruth>,
) -> Result<Plan, RecordError> {
    let Some(id) = event.capture_id else {
        return Err(RecordError::BadRequest(
            "the event names no capture (dataRow.globalKey)".into(),
        ));
    };
    let base = |updated_at: DateTime<Utc>| GroundTruth {
        id,
        source: source.to_string(),
        label_id: event.label_id.clone(),
        updated_at,
        deleted: false,
        objects: Vec::new(),
        unmapped_objects: Vec::new(),
        review_score: None,
        reviewed_at: None,
    };
    let timed = || {
        event
            .updated_at
            .ok_or_else(|| RecordError::BadRequest("missing field updatedAt".into()))
    };
    let same_label = |gt: &GroundTruth| gt.label_id == event.label_id;
    Ok(match (event.topic, &event.objects) {
        (Topic::LabelDeleted, _) => {
            let tombstone = |at| GroundTruth {
                deleted: true,
                ..base(at)
            };
            match current {
                // Before the label it deletes: recorded, so that the label
                // arriving late stays deleted. Without a time of its own, at
                // the epoch: it then loses to any other label.
                None => Plan::Advance(tombstone(event.updated_at.unwrap_or(DateTime::UNIX_EPOCH))),
                Some(cur) if !same_label(cur) => Plan::Stale {
                    truth: event.updated_at.map(tombstone),
                    why: format!(
                        "deletes label {}, but the current label is {}",
                        event.label_id, cur.label_id
                    ),
                },
                Some(cur) if cur.deleted => Plan::Replay(cur.clone()),
                // After the current version whatever time it says, so that
                // labels/<id>.json moves forward: nothing newer of a deleted
                // label can exist.
                Some(cur) => {
                    let after = cur.updated_at + Duration::milliseconds(1);
                    Plan::Advance(tombstone(event.updated_at.map_or(after, |t| t.max(after))))
                }
            }
        }
        (_, Some(objects)) => {
            let updated_at = timed()?;
            let (objects, unmapped_objects) = class_map.map(objects);
            let mut truth = GroundTruth {
                objects,
                unmapped_objects,
                ..base(updated_at)
            };
            if event.topic == Topic::ReviewCreated || event.review_score.is_some() {
                truth.review_score = event.review_score;
                truth.reviewed_at = Some(updated_at);
            }
            match current {
                None => Plan::Advance(truth),
                Some(cur) if same_label(cur) && cur.deleted => Plan::Stale {
                    why: format!(
                        "label {} was deleted (version {}); a deleted label stays deleted",
                        cur.label_id,
                        cur.version()
                    ),
                    truth: Some(truth),
                },
                Some(cur) if truth.version() > cur.version() => {
                    // The label's review goes with its newer content.
                    if same_label(cur) && truth.reviewed_at.is_none() {
                        truth.review_score = cur.review_score;
                        truth.reviewed_at = cur.reviewed_at;
                    }
                    Plan::Advance(truth)
                }
                Some(cur) if truth.version() == cur.version() && same_label(cur) => {
                    Plan::Replay(cur.clone())
                }
                Some(cur) => Plan::Stale {
                    why: format!(
                        "version {} is not newer than the current label's ({}, version {})",
                        truth.version(),
                        cur.label_id,
                        cur.version()
                    ),
                    truth: Some(truth),
                },
            }
        }
        (Topic::ReviewCreated, None) => {
            let reviewed_at = timed()?;
            match current {
                None => Plan::Ignore("review of a label we don't have".into()),
                Some(cur) if !same_label(cur) => Plan::Ignore(format!(
                    "review of label {}, but the current label is {}",
                    event.label_id, cur.label_id
                )),
                Some(cur) if cur.deleted => {
                    Plan::Ignore(format!("review of label {}, deleted", cur.label_id))
                }
                Some(cur) => match cur.reviewed_at {
                    Some(at) if at > reviewed_at => Plan::Stale {
                        truth: None,
                        why: format!("a review older than the one recorded ({at})"),
                    },
                    Some(at) if at == reviewed_at && cur.review_score == event.review_score => {
                        Plan::Replay(cur.clone())
                    }
                    _ => Plan::Amend(GroundTruth {
                        review_score: event.review_score,
                        reviewed_at: Some(reviewed_at),
                        ..cur.clone()
                    }),
                },
            }
        }
        // Created and updated labels without objects were fetched before.
        (Topic::LabelCreated | Topic::LabelUpdated, None) => {
            return Err(FetchError::NotConfigured.into());
        }
    })
}

/// `labels/history/<id>/<version>.json`, once per version.
async fn put_history<S: ObjectStore, Q, F>(
    deps: &Recorder<'_, S, Q, F>,
    truth: &GroundTruth,
) -> Result<(), StoreError> {
    put(
        deps,
        &keys::label_history(truth.id, truth.version()),
        Bytes::from(records::to_json(truth)),
        PutCondition::IfAbsent,
    )
    .await
    .map(drop)
}

/// `labels/<id>.json` replaced only if it is still what was read.
async fn swap<S: ObjectStore, Q, F>(
    deps: &Recorder<'_, S, Q, F>,
    label_key: &str,
    truth: &GroundTruth,
    condition: PutCondition,
) -> Result<(), RecordError> {
    let body = Bytes::from(records::to_json(truth));
    if put(deps, label_key, body, condition).await? == PutOutcome::ConditionFailed {
        return Err(RecordError::Store(StoreError::Transient(format!(
            "{label_key} changed while we wrote it; retry"
        ))));
    }
    Ok(())
}

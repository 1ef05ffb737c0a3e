//! `captures/predictions/**.json` created → decide → hand to the labeling
//! backend. Every step is idempotent, so S3's at-least-once delivery (and our
//! own retries) never upload a capture twice and never lose one:
//!
//! 1. the decision is written once (`If-None-Match: *`), drawn from the
//!    capture id, so every delivery agrees on it;
//! 2. a sampled decision starts `pending` and becomes `submitted` (`If-Match`)
//!    only after the backend accepted the item; a failure leaves it pending and
//!    fails the event, so S3 retries it (then the failure destination);
//! 3. a delivery that finds `submitted` or `skipped` does nothing;
//! 4. a decision still `pending` after S3's retries gave up (a labeling
//!    outage longer than they last) is re-submitted by [`sweep`], on a
//!    schedule: it already holds its quota slot, so the slot is not lost.

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError, StoredObject};
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, ProfileDelta, SampleState, SamplingDecision,
};
use modelobs_core::sampling::{self, Candidate, QuotaOutcome, SamplingPolicy};
use modelobs_core::{CoreError, keys};
use thiserror::Error;

use crate::labeling::{BackendError, LabelingBackend};

pub struct Deps<B, S> {
    pub policy: SamplingPolicy,
    pub backend: B,
    pub store: S,
    pub now: fn() -> DateTime<Utc>,
}

/// Real errors: the event fails and is retried, then sent to the failure destination.
#[derive(Debug, Error)]
pub enum SamplerError {
    #[error("{key}: {source}")]
    Store { key: String, source: StoreError },
    #[error("{key}: {source}")]
    Malformed { key: String, source: CoreError },
    #[error("{key}: {source}")]
    Backend { key: String, source: BackendError },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a capture record of ours, or gone.
    Skipped {
        key: String,
        why: &'static str,
    },
    /// Already decided and done: a redelivery.
    AlreadyDone {
        id: CaptureId,
        state: SampleState,
    },
    NotSampled {
        id: CaptureId,
    },
    Submitted {
        id: CaptureId,
        external_ref: String,
    },
}

pub async fn handle<B: LabelingBackend, S: ObjectStore>(
    event: S3Event,
    deps: &Deps<B, S>,
) -> Result<Vec<Outcome>, SamplerError> {
    let mut outcomes = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let outcome = handle_record(record, deps).await?;
        tracing::info!(?outcome, "capture handled");
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn get<S: ObjectStore>(
    deps: &Deps<impl LabelingBackend, S>,
    key: &str,
) -> Result<Option<StoredObject>, SamplerError> {
    deps.store
        .get(key)
        .await
        .map_err(|source| SamplerError::Store {
            key: key.to_string(),
            source,
        })
}

async fn put<S: ObjectStore>(
    deps: &Deps<impl LabelingBackend, S>,
    key: &str,
    body: Bytes,
    condition: PutCondition,
) -> Result<PutOutcome, SamplerError> {
    deps.store
        .put(key, body, "application/json", condition)
        .await
        .map_err(|source| SamplerError::Store {
            key: key.to_string(),
            source,
        })
}

async fn handle_record<B: LabelingBackend, S: ObjectStore>(
    event: &S3EventRecord,
    deps: &Deps<B, S>,
) -> Result<Outcome, SamplerError> {
    let raw = event.s3.object.key.clone().unwrap_or_default();
    let Ok(key) = keys::decode_event_key(&raw) else {
        return Ok(skipped(raw, "key is not UTF-8"));
    };
    let Ok(parsed) = keys::parse_capture_record(&key) else {
        return Ok(skipped(key, "not a capture record key"));
    };
    let Some(object) = get(deps, &key).await? else {
        return Ok(skipped(key, "capture record is gone"));
    };
    let malformed = |source| SamplerError::Malformed {
        key: key.clone(),
        source,
    };
    let capture: CaptureRecord = records::from_json(&object.body).map_err(malformed)?;
    if capture.id != parsed.id {
        return Err(malformed(CoreError::InvalidRecord(format!(
            "record id {} does not match its key",
            capture.id
        ))));
    }

    // Its profile, for the label-free windows: before the decision, so a
    // delivery that fails here is retried with nothing decided yet.
    record_delta(deps, &capture, &key).await?;

    let sample_key = keys::sample(capture.id);
    // Two rounds at most: if another delivery writes the decision between our
    // read and our write, we go on from what it wrote.
    for _ in 0..2 {
        if let Some(existing) = get(deps, &sample_key).await? {
            let decision: SamplingDecision =
                records::from_json(&existing.body).map_err(|source| SamplerError::Malformed {
                    key: sample_key.clone(),
                    source,
                })?;
            return match decision.state {
                SampleState::Pending => submit(deps, &capture, &key, decision, existing.etag).await,
                state => Ok(Outcome::AlreadyDone {
                    id: capture.id,
                    state,
                }),
            };
        }
        let candidate = sampling::candidate(&deps.policy, &capture);
        let quota = if candidate.wanted() {
            claim(deps, &candidate).await?
        } else {
            QuotaOutcome::Granted
        };
        let decision = sampling::decide(&deps.policy, &candidate, &quota, &key, (deps.now)());
        let body = Bytes::from(records::to_json(&decision));
        if let PutOutcome::Written { etag } =
            put(deps, &sample_key, body, PutCondition::IfAbsent).await?
        {
            return if decision.sampled {
                submit(deps, &capture, &key, decision, etag).await
            } else {
                Ok(Outcome::NotSampled { id: capture.id })
            };
        }
    }
    Err(SamplerError::Store {
        key: sample_key,
        source: StoreError::Transient("the decision kept changing under us".into()),
    })
}

/// The capture's profile as a pending delta for the label-free windows
/// (`crate::profiles` folds it), written
/// once (`If-None-Match`), so a redelivered event changes nothing.
async fn record_delta<S: ObjectStore>(
    deps: &Deps<impl LabelingBackend, S>,
    capture: &CaptureRecord,
    record_key: &str,
) -> Result<(), SamplerError> {
    let key = keys::profile_delta(capture.id, capture.captured_at, &capture.model.version)
        .map_err(|source| SamplerError::Malformed {
            key: record_key.to_string(),
            source,
        })?;
    put(
        deps,
        &key,
        Bytes::from(records::to_json(&ProfileDelta::of(capture))),
        PutCondition::IfAbsent,
    )
    .await?;
    Ok(())
}

/// Claims one slot in each of the candidate's quota units (see `sampling`).
async fn claim<B: LabelingBackend, S: ObjectStore>(
    deps: &Deps<B, S>,
    candidate: &Candidate,
) -> Result<QuotaOutcome, SamplerError> {
    let body = Bytes::from(sampling::slot_body(candidate.id));
    for unit in &candidate.units {
        let mut held = false;
        for slot in unit.slot_keys(candidate.id) {
            match put(deps, &slot, body.clone(), PutCondition::IfAbsent).await? {
                PutOutcome::Written { .. } => held = true,
                PutOutcome::ConditionFailed => {
                    held = get(deps, &slot)
                        .await?
                        .is_some_and(|o| sampling::holds_slot(&o.body, candidate.id));
                }
            }
            if held {
                break;
            }
        }
        if !held {
            return Ok(QuotaOutcome::Exhausted(*unit));
        }
    }
    Ok(QuotaOutcome::Granted)
}

async fn submit<B: LabelingBackend, S: ObjectStore>(
    deps: &Deps<B, S>,
    capture: &CaptureRecord,
    capture_key: &str,
    mut decision: SamplingDecision,
    etag: String,
) -> Result<Outcome, SamplerError> {
    let receipt = deps
        .backend
        .submit(capture, capture_key)
        .await
        .map_err(|source| SamplerError::Backend {
            key: capture_key.to_string(),
            source,
        })?;
    decision.state = SampleState::Submitted;
    decision.backend = Some(deps.backend.name().to_string());
    decision.external_ref = Some(receipt.external_ref.clone());
    let sample_key = keys::sample(capture.id);
    let body = Bytes::from(records::to_json(&decision));
    match put(deps, &sample_key, body, PutCondition::IfMatch(etag)).await? {
        PutOutcome::Written { .. } => Ok(Outcome::Submitted {
            id: capture.id,
            external_ref: receipt.external_ref,
        }),
        // A concurrent delivery got there first; the backend deduplicated.
        PutOutcome::ConditionFailed => Ok(Outcome::AlreadyDone {
            id: capture.id,
            state: SampleState::Submitted,
        }),
    }
}

/// Which pending decisions a sweep re-submits.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Only decisions made at least this long ago: younger ones may still be
    /// in S3's own retries.
    pub older_than: Duration,
    /// Only captures from this far back (the listing is by capture-id time).
    pub within: Duration,
}

impl Default for SweepSettings {
    fn default() -> Self {
        Self {
            older_than: Duration::minutes(15),
            within: Duration::days(7),
        }
    }
}

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SweepReport {
    /// Decisions read.
    pub checked: usize,
    /// Of those, pending and old enough.
    pub pending: usize,
    pub resubmitted: Vec<CaptureId>,
    /// Still failing: `(capture id, error)`; they stay pending for the next sweep.
    pub failed: Vec<(CaptureId, String)>,
}

/// Re-submits every decision still `pending` (see the module docs). Decision
/// keys are `samples/<capture id>.json` and capture ids are UUIDv7, so the
/// listing is by id prefix: one LIST per ~3 days of captures in `within`,
/// never the quota slots. A capture that fails again is reported and stays
/// pending; the others go on.
pub async fn sweep<B: LabelingBackend, S: ObjectStore>(
    deps: &Deps<B, S>,
    settings: SweepSettings,
) -> Result<SweepReport, SamplerError> {
    let now = (deps.now)();
    let (from, to) = (now - settings.within, now - settings.older_than);
    let mut report = SweepReport::default();
    // The UUID's first 5 hex digits are the top 20 of its 48-bit millisecond time.
    let unit = |t: DateTime<Utc>| (t.timestamp_millis().max(0) as u64) >> 28;
    for prefix in unit(from)..=unit(to) {
        let prefix = format!("{}{prefix:05x}", keys::SAMPLES);
        let listed = deps
            .store
            .list(&prefix)
            .await
            .map_err(|source| SamplerError::Store {
                key: prefix.clone(),
                source,
            })?;
        for object in listed {
            let Some(id) = object
                .key
                .strip_prefix(keys::SAMPLES)
                .and_then(|k| k.strip_suffix(".json"))
                .and_then(|k| k.parse::<uuid::Uuid>().ok())
                .map(CaptureId)
            else {
                continue;
            };
            if id.captured_at().is_none_or(|t| t < from || t > to) {
                continue;
            }
            let Some(existing) = get(deps, &object.key).await? else {
                continue;
            };
            report.checked += 1;
            let decision: SamplingDecision = match records::from_json(&existing.body) {
                Ok(d) => d,
                Err(e) => {
                    report.failed.push((id, format!("{}: {e}", object.key)));
                    continue;
                }
            };
            if decision.state != SampleState::Pending || decision.decided_at > to {
                continue;
            }
            report.pending += 1;
            match resubmit(deps, decision, existing.etag).await {
                Ok(_) => {
                    tracing::info!(capture_id = %id, "pending decision re-submitted");
                    report.resubmitted.push(id);
                }
                Err(e) => {
                    tracing::warn!(capture_id = %id, error = %e, "pending decision still failing");
                    report.failed.push((id, e.to_string()));
                }
            }
        }
    }
    Ok(report)
}

async fn resubmit<B: LabelingBackend, S: ObjectStore>(
    deps: &Deps<B, S>,
    decision: SamplingDecision,
    etag: String,
) -> Result<Outcome, SamplerError> {
    let key = decision.capture_key.clone();
    let Some(object) = get(deps, &key).await? else {
        return Err(SamplerError::Malformed {
            key,
            source: CoreError::InvalidRecord("the capture record is gone".into()),
        });
    };
    let capture: CaptureRecord =
        records::from_json(&object.body).map_err(|source| SamplerError::Malformed {
            key: key.clone(),
            source,
        })?;
    submit(deps, &capture, &key, decision, etag).await
}

fn skipped(key: String, why: &'static str) -> Outcome {
    tracing::info!(key, why, "skipped");
    Outcome::Skipped { key, why }
}

//! The webhook's function URL: verify, parse, store the ground truth, queue
//! the evaluation. 200 only after both the label and the queue message are
//! safe; S3 or SQS trouble answers 503 so the sender retries.
//!
//! A created or updated label whose payload lacks the label JSON is fetched
//! from its source (Labelbox's export) and then mapped like one that came
//! with it. Labelbox unavailable (throttled, 5xx, export still running): 503,
//! the sender retries. Labelbox refusing (bad API key, a rejected query): 502.
//! The label not there (deleted since, or never in that project): 202 and a
//! warning, because no retry of this delivery can change that, and a deletion
//! arrives as its own event.
//!
//! Exactly once in effect: each label version is written to
//! `labels/history/<id>/<version>.json` once, `labels/<id>.json` only moves
//! forward (compare-and-swap on its ETag), and a `<version>.queued` marker
//! written after the message means a replay of the same version sends nothing.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use modelobs_adapters::queue::Queue;
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError};
use modelobs_core::keys;
use modelobs_core::records::{self, GroundTruth};
use modelobs_http::{LambdaApp, Paths, lambda_request, method_not_allowed};
use serde_json::json;
use thiserror::Error;

use crate::source::{FetchError, LabelFetcher, LabelRef};
use modelobs_labelbox::webhook::payload::{self, ClassMap, LabelEvent, PayloadError, Topic};
use modelobs_labelbox::webhook::signature::{self, SignatureError};

pub struct Deps<S, Q, F> {
    pub store: S,
    pub queue: Q,
    /// Labels the payload does not carry (`None`: not configured, 400).
    pub fetcher: F,
    pub secret: Vec<u8>,
    pub max_body_bytes: usize,
    pub class_map: ClassMap,
    /// Labels from these sources are recorded as such (`labelbox`, `local`).
    pub source: String,
}

#[derive(Debug, Error)]
enum WebhookError {
    #[error("body is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Unauthorized(#[from] SignatureErrorWrap),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("{0}")]
    BadRequest(String),
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("metrics queue unavailable: {0}")]
    Queue(String),
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

#[derive(Debug, Error)]
#[error("{0}")]
struct SignatureErrorWrap(SignatureError);

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Payload(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) | Self::Queue(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Fetch(e) => match e {
                FetchError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                FetchError::Refused(_) => StatusCode::BAD_GATEWAY,
                FetchError::NoProject | FetchError::NotConfigured => StatusCode::BAD_REQUEST,
            },
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "payload_too_large",
            Self::Unauthorized(_) => "unauthorized",
            Self::Payload(_) | Self::BadRequest(_) => "bad_request",
            Self::Store(_) | Self::Queue(_) => "unavailable",
            Self::Fetch(e) => match e {
                FetchError::Unavailable(_) => "unavailable",
                FetchError::Refused(_) => "label_source_error",
                FetchError::NoProject | FetchError::NotConfigured => "bad_request",
            },
        }
    }
}

fn respond(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    modelobs_http::json_response(status, &body)
}

/// The function URL's app: `POST` on any path (the URL is the function's
/// own), 405 with `Allow: POST` otherwise, every answer JSON. Built once per
/// container in `main.rs`.
pub fn app<S, Q, F>(deps: Arc<Deps<S, Q, F>>) -> LambdaApp
where
    S: ObjectStore + 'static,
    Q: Queue + 'static,
    F: LabelFetcher + Send + Sync + 'static,
{
    let event = || post(event_route::<S, Q, F>).fallback(method_not_allowed("POST"));
    let router = Router::new()
        .route("/", event())
        .route("/{*path}", event())
        .with_state(deps);
    LambdaApp::new(router, Paths::AsSent)
}

/// One request through a fresh [`app`] (tests; `main.rs` keeps one app).
pub async fn handle<S, Q, F>(req: Request, deps: &Arc<Deps<S, Q, F>>) -> Response<Body>
where
    S: ObjectStore + 'static,
    Q: Queue + 'static,
    F: LabelFetcher + Send + Sync + 'static,
{
    app(deps.clone()).handle(req).await
}

async fn event_route<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    State(deps): State<Arc<Deps<S, Q, F>>>,
    req: axum::extract::Request,
) -> Response<Body> {
    match lambda_request(req).await {
        Ok(req) => handle_event(req, &deps).await,
        Err(e) => respond(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "bad_request", "message": e}}),
        ),
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn handle_event<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    req: Request,
    deps: &Deps<S, Q, F>,
) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let delivery = header(&req, "x-labelbox-id").unwrap_or("").to_string();
    match process(&req, deps).await {
        Ok((status, body)) => {
            tracing::info!(request_id, delivery, %body, "label event handled");
            respond(status, body)
        }
        Err(e) => {
            // Never the body: it is unauthenticated input until verified.
            if e.status().is_server_error() {
                tracing::error!(request_id, delivery, code = e.code(), error = %e, "label event failed");
            } else {
                tracing::warn!(request_id, delivery, code = e.code(), error = %e, "label event refused");
            }
            respond(
                e.status(),
                json!({"error": {"code": e.code(), "message": e.to_string()}}),
            )
        }
    }
}

async fn process<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    req: &Request,
    deps: &Deps<S, Q, F>,
) -> Result<(StatusCode, serde_json::Value), WebhookError> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > deps.max_body_bytes {
        return Err(WebhookError::TooLarge {
            size: body.len(),
            limit: deps.max_body_bytes,
        });
    }
    signature::verify_request(
        &deps.secret,
        body,
        header(req, "x-hub-signature"),
        header(req, "x-hub-signature-256"),
    )
    .map_err(|e| WebhookError::Unauthorized(SignatureErrorWrap(e)))?;

    let Some((topic, event)) = payload::parse(body, header(req, "x-labelbox-event"))? else {
        let topic = header(req, "x-labelbox-event").unwrap_or("(in payload)");
        tracing::info!(topic, "ignoring a topic we don't handle");
        return Ok((
            StatusCode::ACCEPTED,
            json!({"status": "ignored", "topic": topic}),
        ));
    };
    store_and_queue(deps, &topic, event).await
}

async fn get<S: ObjectStore, Q, F>(
    deps: &Deps<S, Q, F>,
    key: &str,
) -> Result<Option<modelobs_adapters::StoredObject>, StoreError> {
    deps.store.get(key).await
}

async fn put<S: ObjectStore, Q, F>(
    deps: &Deps<S, Q, F>,
    key: &str,
    body: Bytes,
    condition: PutCondition,
) -> Result<PutOutcome, StoreError> {
    deps.store
        .put(key, body, "application/json", condition)
        .await
}

async fn store_and_queue<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    deps: &Deps<S, Q, F>,
    topic: &str,
    event: LabelEvent,
) -> Result<(StatusCode, serde_json::Value), WebhookError> {
    let id = event.capture_id;
    let capture_key = keys::capture_record_of(id).ok_or_else(|| {
        WebhookError::BadRequest(format!("dataRow.globalKey {id} is not a capture id"))
    })?;
    // A label for a capture we never made cannot be evaluated, and retrying
    // won't change that: 400 so the sender's delivery log shows it.
    if get(deps, &capture_key).await?.is_none() {
        return Err(WebhookError::BadRequest(format!("no capture {id}")));
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
                    return Ok((
                        StatusCode::ACCEPTED,
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
        .map_err(|e| WebhookError::Store(StoreError::Permanent(format!("{label_key}: {e}"))))?;

    let truth = match (event.topic, &event.objects) {
        (Topic::LabelDeleted, _) => GroundTruth {
            id,
            source: deps.source.clone(),
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
                source: deps.source.clone(),
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
                return Ok((
                    StatusCode::ACCEPTED,
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
            return Ok((
                StatusCode::OK,
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
                return Err(WebhookError::Store(StoreError::Transient(format!(
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
            .map_err(|e| WebhookError::Queue(e.to_string()))?;
        put(
            deps,
            &marker,
            Bytes::from_static(b"{}"),
            PutCondition::IfAbsent,
        )
        .await?;
    }
    Ok((
        StatusCode::OK,
        json!({
            "status": if queued_before { "unchanged" } else { "accepted" },
            "id": id,
            "label_version": version,
            "deleted": truth.deleted,
            "objects": truth.objects.len(),
            "unmapped_objects": truth.unmapped_objects,
        }),
    ))
}

/// For callers that need the time a label event counts as (tests, labelers).
pub fn version_of(updated_at: DateTime<Utc>) -> i64 {
    updated_at.timestamp_millis()
}

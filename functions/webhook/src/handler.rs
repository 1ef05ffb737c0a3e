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
//! Recording itself (exactly once in effect, newest wins) is
//! `modelobs_pipeline::label`; this file is the HTTP answer to each outcome.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use modelobs_adapters::ObjectStore;
use modelobs_adapters::queue::Queue;
use modelobs_http::{LambdaApp, Paths, lambda_request, method_not_allowed};
use serde_json::json;
use thiserror::Error;

use modelobs_labelbox::webhook::payload::{self, ClassMap, LabelEvent, PayloadError};
use modelobs_labelbox::webhook::signature::{self, SignatureError};
use modelobs_pipeline::label::{self, RecordError, Recorder};
use modelobs_pipeline::label_source::{FetchError, LabelFetcher};

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
    /// What recording the verified label ran into (`modelobs_pipeline::label`).
    #[error(transparent)]
    Record(#[from] RecordError),
}

#[derive(Debug, Error)]
#[error("{0}")]
struct SignatureErrorWrap(SignatureError);

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Payload(_) | Self::Record(RecordError::BadRequest(_)) => StatusCode::BAD_REQUEST,
            Self::Record(RecordError::Store(_) | RecordError::Queue(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Record(RecordError::Fetch(e)) => match e {
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
            Self::Payload(_) | Self::Record(RecordError::BadRequest(_)) => "bad_request",
            Self::Record(RecordError::Store(_) | RecordError::Queue(_)) => "unavailable",
            Self::Record(RecordError::Fetch(e)) => match e {
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

async fn store_and_queue<S: ObjectStore, Q: Queue, F: LabelFetcher>(
    deps: &Deps<S, Q, F>,
    topic: &str,
    event: LabelEvent,
) -> Result<(StatusCode, serde_json::Value), WebhookError> {
    let recorder = Recorder {
        store: &deps.store,
        queue: &deps.queue,
        fetcher: &deps.fetcher,
        class_map: &deps.class_map,
        source: &deps.source,
    };
    let recorded = label::record(&recorder, topic, event).await?;
    let status = if recorded.stored {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, recorded.detail))
}

/// For callers that need the time a label event counts as (tests, labelers).
pub fn version_of(updated_at: DateTime<Utc>) -> i64 {
    updated_at.timestamp_millis()
}

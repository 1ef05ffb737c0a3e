//! `POST /predict` and `GET /health`, behind HttpApi and a function URL alike,
//! on an axum router: the routes, 405 with `Allow`, 404, and the one error
//! shape `{"error": {"code", "message"}}` (`crate::error`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use modelobs_adapters::ObjectStore;
use modelobs_core::records::{CaptureId, CaptureRecord, CaptureSource};
use modelobs_detector::Detector;
use modelobs_http::{
    LambdaApp, Paths, json_response, lambda_request, method_not_allowed, not_found, request_id,
};
use serde_json::json;

use crate::error::ApiError;
use modelobs_pipeline::capture;

/// What the handler needs, built once per container.
pub struct Deps<D, S> {
    pub detector: D,
    /// `SHADOW_MODEL_REF`: runs on every captured request after the serving
    /// model; its answer is stored under its own version, never returned.
    pub shadow: Option<D>,
    pub store: S,
    pub max_body_bytes: usize,
    pub allow_client_timestamps: bool,
}

/// The function's HTTP app (routes, 405 with `Allow`, 404, one error shape):
/// built once per container in `main.rs`.
pub fn app<D, S>(deps: Arc<Deps<D, S>>) -> LambdaApp
where
    D: Detector + Send + Sync + 'static,
    S: ObjectStore + 'static,
{
    let router = Router::new()
        .route(
            "/predict",
            post(predict_route::<D, S>).fallback(method_not_allowed("POST")),
        )
        .route(
            "/health",
            get(health_route::<D, S>).fallback(method_not_allowed("GET")),
        )
        .fallback(not_found)
        .with_state(deps);
    // `/predict`, `/prod/predict` (an HttpApi stage), `/lambda-url/inference/predict`.
    LambdaApp::new(router, Paths::LastSegment)
}

/// One request through a fresh [`app`] (tests; `main.rs` keeps one app).
pub async fn handle<D, S>(req: Request, deps: &Arc<Deps<D, S>>) -> Response<Body>
where
    D: Detector + Send + Sync + 'static,
    S: ObjectStore + 'static,
{
    app(deps.clone()).handle(req).await
}

/// Errors become `{"error": {"code", "message"}}` with their status, logged with the request id.
fn refuse(request_id: &str, e: ApiError) -> Response<Body> {
    if e.status().is_server_error() {
        tracing::error!(request_id, code = e.code(), error = %e, "request failed");
    } else {
        tracing::warn!(request_id, code = e.code(), error = %e, "request refused");
    }
    e.into_response()
}

async fn health_route<D: Detector, S>(State(deps): State<Arc<Deps<D, S>>>) -> Response<Body> {
    health(&deps)
}

async fn predict_route<D: Detector, S: ObjectStore>(
    State(deps): State<Arc<Deps<D, S>>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let request_id = request_id(&req);
    let req = match lambda_request(req).await {
        Ok(req) => req,
        Err(e) => return refuse(&request_id, ApiError::BadRequest(e)),
    };
    match predict(&req, &request_id, &deps).await {
        Ok(resp) => resp,
        Err(e) => refuse(&request_id, e),
    }
}

fn health<D: Detector, S>(deps: &Deps<D, S>) -> Response<Body> {
    let model = deps.detector.model();
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "model": {"name": model.name, "version": model.version}}),
    )
}

/// `X-Capture-Time` when allowed (traffic simulation), else now.
fn capture_time(req: &Request, allowed: bool) -> Result<DateTime<Utc>, ApiError> {
    let Some(value) = req.headers().get("x-capture-time") else {
        return Ok(Utc::now());
    };
    if !allowed {
        // Ignored, not refused: clients in production may send anything.
        return Ok(Utc::now());
    }
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("X-Capture-Time is not text".into()))?;
    let t = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ApiError::BadRequest(format!("X-Capture-Time {text:?} is not RFC 3339: {e}"))
        })?;
    // Capture ids carry the time as UUIDv7 milliseconds since 1970 (48 bits):
    // outside that the id and the time-partitioned keys would disagree.
    if !CaptureId::can_carry(t) {
        return Err(ApiError::BadRequest(format!(
            "X-Capture-Time {text:?} is outside what a capture id can carry (1970 to 10889)"
        )));
    }
    Ok(t)
}

async fn predict<D: Detector, S: ObjectStore>(
    req: &Request,
    request_id: &str,
    deps: &Deps<D, S>,
) -> Result<Response<Body>, ApiError> {
    let captured_at = capture_time(req, deps.allow_client_timestamps)?;
    let image = crate::request::image_bytes(req, deps.max_body_bytes).await?;
    let prediction = deps.detector.detect(&image)?;

    let id = CaptureId::new(captured_at);
    let source = CaptureSource::Http {
        request_id: (!request_id.is_empty()).then(|| request_id.to_string()),
    };
    let record = capture::record(id, captured_at, source, &deps.detector, prediction, &image);
    let captured = store_capture(deps, &record, image.clone()).await;
    // Only beside a stored capture: a shadow answer on nothing is never evaluated.
    if captured && let Some(shadow) = &deps.shadow {
        match capture::shadow(&deps.store, &record, shadow, &image).await {
            Ok(s) => tracing::info!(
                request_id,
                capture_id = %id,
                shadow_version = %s.model.version,
                detections = s.detections.len(),
                total_ms = s.timings_ms.total,
                "shadow predicted"
            ),
            Err(e) => tracing::warn!(request_id, capture_id = %id, error = %e, "shadow failed"),
        }
    }
    tracing::info!(
        request_id,
        capture_id = %id,
        detections = record.detections.len(),
        total_ms = record.timings_ms.total,
        captured,
        "predicted"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "id": id,
            "model": record.model,
            "image": {"width": record.image.width, "height": record.image.height},
            "detections": record.detections,
            "timings_ms": record.timings_ms,
            "captured": captured,
        }),
    ))
}

/// Never loses a capture silently: on failure the whole record goes to the
/// log as a structured error, and an EMF line counts it.
async fn store_capture<D, S: ObjectStore>(
    deps: &Deps<D, S>,
    record: &CaptureRecord,
    image: Bytes,
) -> bool {
    match capture::store(&deps.store, record, image).await {
        Ok(()) => true,
        Err(e) => {
            let json = String::from_utf8(modelobs_core::records::to_json(record))
                .expect("records are UTF-8 JSON");
            tracing::error!(capture_id = %record.id, error = %e, record = %json, "capture lost");
            println!(
                "{}",
                modelobs_pipeline::emf::capture_failure_line(record, Utc::now().timestamp_millis())
            );
            false
        }
    }
}

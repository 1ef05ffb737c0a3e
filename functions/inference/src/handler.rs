//! `POST /predict` and `GET /health`, behind HttpApi and a function URL alike.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use modelobs_adapters::ObjectStore;
use modelobs_core::records::{CaptureId, CaptureRecord, CaptureSource};
use modelobs_detector::Detector;
use serde_json::json;

use crate::capture;
use crate::error::{ApiError, json_response};

/// What the handler needs, built once per container.
pub struct Deps<D, S> {
    pub detector: D,
    pub store: S,
    pub max_body_bytes: usize,
    pub allow_client_timestamps: bool,
}

enum Route {
    Predict,
    Health,
}

/// The route from the path's last segment, so `/predict`, `/prod/predict`
/// (HttpApi stage) and `/lambda-url/inference/predict` (cargo lambda) all work.
fn route(path: &str) -> Option<Route> {
    match path.trim_end_matches('/').rsplit('/').next() {
        Some("predict") => Some(Route::Predict),
        Some("health") => Some(Route::Health),
        _ => None,
    }
}

/// Always answers: errors become `{"error": {"code", "message"}}` with their status.
pub async fn handle<D: Detector, S: ObjectStore>(
    req: Request,
    deps: &Deps<D, S>,
) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let path = match req.raw_http_path() {
        "" => req.uri().path().to_string(),
        raw => raw.to_string(),
    };
    let method = req.method().clone();
    let result = match (route(&path), &method) {
        (Some(Route::Predict), &Method::POST) => predict(&req, &request_id, deps).await,
        (Some(Route::Health), &Method::GET) => Ok(health(deps)),
        (Some(Route::Predict), _) => Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path,
            allowed: "POST",
        }),
        (Some(Route::Health), _) => Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            path,
            allowed: "GET",
        }),
        (None, _) => Err(ApiError::NotFound(path)),
    };
    result.unwrap_or_else(|e| {
        if e.status().is_server_error() {
            tracing::error!(request_id, code = e.code(), error = %e, "request failed");
        } else {
            tracing::warn!(request_id, code = e.code(), error = %e, "request refused");
        }
        e.into_response()
    })
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
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::BadRequest(format!("X-Capture-Time {text:?} is not RFC 3339: {e}")))
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
    let captured = store_capture(deps, &record, image).await;
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

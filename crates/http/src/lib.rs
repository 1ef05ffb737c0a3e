//! The HTTP functions' edge (inference, webhook): an axum [`Router`] driven
//! from a `lambda_http` handler, and the one answer shape for refusals,
//! `{"error": {"code", "message"}}` with its status (405s with `Allow`).
//!
//! A function builds its router once per container and hands every event to
//! [`LambdaApp::handle`]; its route handlers take the request back as a
//! `lambda_http::Request` ([`lambda_request`]) so the parsers and tests keep
//! speaking Lambda's types. Requests arrive through API Gateway HttpApi (with
//! or without a stage in the path), function URLs, `sam local start-api` and
//! `cargo lambda watch` (`/lambda-url/<function>/...`): [`Paths`] says how a
//! function maps those onto its routes.

use axum::Router;
use lambda_http::http::{StatusCode, Uri};
use lambda_http::{Body, Request, RequestExt, Response};
use tower::ServiceExt;

/// How a path reaches the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paths {
    /// As sent.
    AsSent,
    /// Its last segment only: `/predict`, `/prod/predict` (an HttpApi stage)
    /// and `/lambda-url/inference/predict` all route as `/predict`.
    LastSegment,
}

impl Paths {
    fn route(self, path: &str) -> String {
        match self {
            Self::AsSent => path.to_string(),
            Self::LastSegment => {
                let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                format!("/{last}")
            }
        }
    }
}

/// The path as the caller sent it (before [`Paths`]), for answers that name it.
#[derive(Debug, Clone)]
pub struct CalledPath(pub String);

/// A function's router, built once, answering Lambda HTTP events.
#[derive(Clone)]
pub struct LambdaApp {
    router: Router,
    paths: Paths,
    /// Kept free before the invocation's deadline to answer in.
    margin: std::time::Duration,
}

impl LambdaApp {
    /// Answers are cut off this long before the invocation's deadline, unless
    /// [`Self::with_deadline_margin`].
    pub const DEFAULT_MARGIN: std::time::Duration = std::time::Duration::from_secs(1);

    pub fn new(router: Router, paths: Paths) -> Self {
        Self {
            router,
            paths,
            margin: Self::DEFAULT_MARGIN,
        }
    }

    pub fn with_deadline_margin(mut self, margin: std::time::Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Always answers (routing can't fail); the body comes back as text when
    /// it is UTF-8 (every answer here is JSON).
    pub async fn handle(&self, mut req: Request) -> Response<Body> {
        let path = match req.raw_http_path() {
            "" => req.uri().path().to_string(),
            raw => raw.to_string(),
        };
        let routed = match req.uri().query() {
            Some(q) => format!("{}?{q}", self.paths.route(&path)),
            None => self.paths.route(&path),
        };
        *req.uri_mut() = routed.parse().unwrap_or_else(|_| Uri::from_static("/"));
        req.extensions_mut().insert(CalledPath(path));
        // Out of time is a clean 503 the caller retries, never a killed
        // invocation: whatever the route's clients spend, it stops here.
        let budget = req
            .lambda_context_ref()
            .and_then(|c| modelobs_retry::deadline::time_left(c.deadline, self.margin));
        let id = request_id(&req);
        let routed = modelobs_retry::deadline::within(
            budget,
            self.router.clone().oneshot(req.map(axum::body::Body::new)),
        )
        .await;
        let resp = match routed {
            Ok(resp) => resp.unwrap_or_else(|never| match never {}),
            Err(out) => {
                tracing::error!(request_id = id, code = "out_of_time", error = %out, "request cut off");
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "out_of_time",
                    &format!("{out}; nothing was acknowledged, retry"),
                );
            }
        };
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let body = match String::from_utf8(bytes.to_vec()) {
            Ok(text) if text.is_empty() => Body::Empty,
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        };
        Response::from_parts(parts, body)
    }
}

/// The route's request as `lambda_http` gave it (headers, extensions: the
/// request context, the Lambda context). The event's body is in memory
/// already (Lambda's payload limit); this only hands it back.
pub async fn lambda_request(req: axum::extract::Request) -> Result<Request, String> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok(Request::from_parts(parts, Body::Binary(bytes.to_vec())))
}

/// The path the caller sent (see [`CalledPath`]).
pub fn called_path<B>(req: &lambda_http::http::Request<B>) -> String {
    req.extensions()
        .get::<CalledPath>()
        .map(|p| p.0.clone())
        .unwrap_or_else(|| req.uri().path().to_string())
}

/// The Lambda request id ("" outside Lambda), for log lines.
pub fn request_id<B>(req: &lambda_http::http::Request<B>) -> String {
    req.lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default()
}

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("status and one static header make a valid response")
}

/// The one refusal shape: `{"error": {"code", "message"}}` with its status.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(
        status,
        &serde_json::json!({"error": {"code": code, "message": message}}),
    )
}

/// 405 for a route's other methods, `Allow` naming the one it takes
/// (`MethodRouter::fallback`).
pub fn method_not_allowed(
    allowed: &'static str,
) -> impl Fn(axum::extract::Request) -> std::future::Ready<Response<Body>> + Clone + Send + 'static
{
    move |req: axum::extract::Request| {
        let message = format!(
            "{} is not allowed on {}; use {allowed}",
            req.method(),
            called_path(&req)
        );
        tracing::warn!(request_id = request_id(&req), code = "method_not_allowed", error = %message, "request refused");
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &message,
        );
        resp.headers_mut().insert(
            "allow",
            allowed.parse().expect("a method name is a header value"),
        );
        std::future::ready(resp)
    }
}

/// 404 for paths no route takes.
pub async fn not_found(req: axum::extract::Request) -> Response<Body> {
    let message = format!("no route for {}", called_path(&req));
    tracing::warn!(request_id = request_id(&req), code = "not_found", error = %message, "request refused");
    error_response(StatusCode::NOT_FOUND, "not_found", &message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};

    fn app(paths: Paths) -> LambdaApp {
        let router = Router::new()
            .route(
                "/predict",
                post(|| async { json_response(StatusCode::OK, &serde_json::json!({"ok": true})) })
                    .fallback(method_not_allowed("POST")),
            )
            .route("/health", get(|| async { "up" }))
            .fallback(not_found);
        LambdaApp::new(router, paths)
    }

    fn request(method: &str, path: &str) -> Request {
        lambda_http::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::Empty)
            .unwrap()
    }

    fn text(resp: &Response<Body>) -> serde_json::Value {
        match resp.body() {
            Body::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn any_prefix_reaches_the_route_by_its_last_segment() {
        let app = app(Paths::LastSegment);
        for path in [
            "/predict",
            "/prod/predict",
            "/lambda-url/inference/predict/",
        ] {
            let resp = app.handle(request("POST", path)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(text(&resp)["ok"], true);
        }
        let strict = self::app(Paths::AsSent);
        assert_eq!(
            strict
                .handle(request("POST", "/prod/predict"))
                .await
                .status(),
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn wrong_methods_and_unknown_paths_get_the_json_error_shape() {
        let app = app(Paths::LastSegment);
        let resp = app.handle(request("GET", "/prod/predict")).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["allow"], "POST");
        let body = text(&resp);
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/prod/predict")
        );

        let resp = app.handle(request("POST", "/nope")).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(text(&resp)["error"]["code"], "not_found");
    }

    #[tokio::test]
    async fn a_route_that_outlasts_the_invocation_is_a_503_before_the_deadline() {
        // GIVEN a route that never answers, and an invocation with 1.3 s left
        let router = Router::new().route("/hang", post(std::future::pending::<&str>));
        let app = LambdaApp::new(router, Paths::AsSent);
        let mut context = lambda_http::Context::default();
        context.request_id = "req-7".into();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        context.deadline = now_ms + 1_300;
        let req = request("POST", "/hang").with_lambda_context(context);
        // WHEN it is called THEN it answers 503 out_of_time (1 s margin kept)
        let resp = app.handle(req).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(text(&resp)["error"]["code"], "out_of_time");
    }
}

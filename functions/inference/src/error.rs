//! Everything a request can fail with, and the HTTP answer each one gets.

use lambda_http::Body;
use lambda_http::http::{Response, StatusCode};
use modelobs_detector::DetectError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("no route for {0}")]
    NotFound(String),
    #[error("{method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    #[error("body is {size} bytes, over the limit of {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error(
        "unsupported content type {0:?}: send image/*, multipart/form-data with an `image` field, or JSON {{\"image_base64\": ...}}"
    )]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Detect(#[from] DetectError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Detect(DetectError::UnsupportedFormat(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Detect(DetectError::Decode(_)) => StatusCode::BAD_REQUEST,
            Self::Detect(DetectError::TooManyPixels { .. }) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Detect(DetectError::Model(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::BadRequest(_) => "bad_request",
            Self::Detect(DetectError::UnsupportedFormat(_)) => "unsupported_image_format",
            Self::Detect(DetectError::Decode(_)) => "undecodable_image",
            Self::Detect(DetectError::TooManyPixels { .. }) => "image_too_large",
            Self::Detect(DetectError::Model(_)) => "model_failure",
        }
    }

    /// `{"error": {"code", "message"}}` with the status.
    pub fn into_response(self) -> Response<Body> {
        let mut resp = json_response(
            self.status(),
            &serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}}),
        );
        if let Self::MethodNotAllowed { allowed, .. } = self {
            resp.headers_mut().insert(
                "allow",
                allowed.parse().expect("a method name is a header value"),
            );
        }
        resp
    }
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("status and one static header make a valid response")
}

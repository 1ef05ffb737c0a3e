//! Everything a request can fail with, and the HTTP answer each one gets.

use lambda_http::Body;
use lambda_http::http::{Response, StatusCode};
use modelobs_detector::DetectError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ApiError {
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
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Detect(DetectError::UnsupportedFormat(_)) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Detect(DetectError::Decode(_)) => StatusCode::BAD_REQUEST,
            Self::Detect(DetectError::TooManyPixels { .. } | DetectError::OverMemoryBudget(_)) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Detect(DetectError::Model(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::BadRequest(_) => "bad_request",
            Self::Detect(e) => e.code(),
        }
    }

    /// `{"error": {"code", "message"}}` with the status (404 and 405 come
    /// from the router, `modelobs_http`, in the same shape).
    pub fn into_response(self) -> Response<Body> {
        modelobs_http::error_response(self.status(), self.code(), &self.to_string())
    }
}

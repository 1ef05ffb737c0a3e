//! The inference function's request body parsing
//! (`modelobs_inference::request::image_bytes`): a raw `image/*` or
//! octet-stream body, `multipart/form-data` (multer) with an `image` field,
//! or JSON `{"image_base64": ...}` (a data URL too).
//!
//! Input: `<flags byte><Content-Type header>\n<body>`. Bit 0 of the flags
//! picks a small body limit (64 bytes) instead of the 6 MB default, so the
//! limit's refusal is fuzzed too; bit 1 leaves the Content-Type header out.

use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request};
use modelobs_inference::error::ApiError;
use modelobs_inference::request::image_bytes;

pub const SMALL_LIMIT: usize = 64;
pub const DEFAULT_LIMIT: usize = 6_000_000;

/// The input `run` takes, from its parts (for seeds).
pub fn input(small_limit: bool, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let flags = u8::from(small_limit) | (u8::from(content_type.is_none()) << 1);
    let mut out = vec![flags];
    out.extend_from_slice(content_type.unwrap_or("").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

pub fn run(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let limit = if flags & 1 == 1 {
        SMALL_LIMIT
    } else {
        DEFAULT_LIMIT
    };
    let (lines, body) = crate::split_lines(data, 1);
    let content_type = &lines[0];
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/predict");
    if flags & 2 == 0 {
        // A value the http crate refuses can't reach the function either.
        let Ok(value) = lambda_http::http::HeaderValue::from_bytes(content_type.as_bytes()) else {
            return;
        };
        builder = builder.header(CONTENT_TYPE, value);
    }
    let req: Request = builder
        .body(Body::Binary(body.to_vec()))
        .expect("method, URI and header are valid");

    match crate::block_on(image_bytes(&req, limit)) {
        Ok(image) => {
            assert!(
                body.len() <= limit,
                "{} bytes passed a {limit} byte limit",
                body.len()
            );
            assert!(!image.is_empty(), "an empty image was accepted");
            // Raw, a multipart field or base64: never more bytes than were sent.
            assert!(
                image.len() <= body.len(),
                "{} image bytes from a {} byte body",
                image.len(),
                body.len()
            );
            let mime = content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if mime.starts_with("image/") || mime == "application/octet-stream" {
                assert_eq!(&image[..], body, "a raw body was changed");
            }
        }
        Err(e) => {
            let status = e.status();
            assert!(status.is_client_error(), "{status} for {e}");
            if let ApiError::PayloadTooLarge { size, limit: l } = e {
                assert_eq!((size, l), (body.len(), limit));
                assert!(size > limit);
            } else {
                assert!(
                    body.len() <= limit,
                    "an oversized body got past the size check"
                );
                let _ = e.into_response();
            }
        }
    }
}

//! Getting the image out of a request: a raw `image/*` body, a
//! `multipart/form-data` field `image`, or JSON `{"image_base64": ...}`.

use base64::Engine;
use bytes::Bytes;
use lambda_http::Request;
use lambda_http::http::header::CONTENT_TYPE;
use serde::Deserialize;

use crate::error::ApiError;

/// The image bytes of a `POST /predict`, size-checked against `limit`.
pub async fn image_bytes(req: &Request, limit: usize) -> Result<Bytes, ApiError> {
    let body: &[u8] = req.body().as_ref();
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge {
            size: body.len(),
            limit,
        });
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let image = match mime.as_str() {
        m if m.starts_with("image/") => Bytes::copy_from_slice(body),
        "application/octet-stream" => Bytes::copy_from_slice(body),
        "multipart/form-data" => multipart_image(&content_type, body).await?,
        "application/json" => json_image(body)?,
        _ => return Err(ApiError::UnsupportedMediaType(content_type)),
    };
    if image.is_empty() {
        return Err(ApiError::BadRequest("the image is empty".into()));
    }
    Ok(image)
}

async fn multipart_image(content_type: &str, body: &[u8]) -> Result<Bytes, ApiError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::BadRequest(format!("multipart/form-data: {e}")))?;
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, std::io::Error>(
        Bytes::copy_from_slice(body),
    )));
    let mut form = multer::Multipart::new(stream, boundary);
    let bad = |e: multer::Error| ApiError::BadRequest(format!("multipart/form-data: {e}"));
    while let Some(field) = form.next_field().await.map_err(bad)? {
        if field.name() == Some("image") {
            return field.bytes().await.map_err(bad);
        }
    }
    Err(ApiError::BadRequest(
        "multipart/form-data has no field named `image`".into(),
    ))
}

fn json_image(body: &[u8]) -> Result<Bytes, ApiError> {
    #[derive(Deserialize)]
    struct ImageJson {
        image_base64: String,
    }
    let parsed: ImageJson = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("JSON body: {e}")))?;
    // Accept a data URL too: `data:image/png;base64,....`
    let b64 = match parsed.image_base64.split_once(";base64,") {
        Some((prefix, data)) if prefix.starts_with("data:") => data,
        _ => parsed.image_base64.as_str(),
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map(Bytes::from)
        .map_err(|e| ApiError::BadRequest(format!("image_base64 is not valid base64: {e}")))
}

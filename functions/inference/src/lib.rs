//! The inference function: a COCO detector behind HTTP that captures every
//! request and answer to S3, and its twin for images uploaded to `incoming/`.

pub mod config;
pub mod error;
pub mod handler;
pub mod request;

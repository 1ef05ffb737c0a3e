//! The inference function: a COCO detector behind HTTP that captures every
//! request and answer to S3, and its twin for images uploaded to `incoming/`.

pub mod capture;
pub mod config;
pub mod error;
pub mod handler;
pub mod request;
pub mod upload;

/// JSON logs, level from `RUST_LOG` (default info); Lambda adds the time.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

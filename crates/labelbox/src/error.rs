use std::time::Duration;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LabelboxError {
    /// Labelbox answered, with GraphQL `errors`: the request itself is wrong
    /// or refused (validation, conflict, missing resource...).
    #[error("Labelbox refused the request: {}", errors.join("; "))]
    Graphql {
        errors: Vec<String>,
        /// `extensions.code` of each error that had one (`RESOURCE_CONFLICT`, ...).
        codes: Vec<String>,
    },
    /// Still HTTP 429 when the attempts were spent.
    #[error("Labelbox rate limit: still throttled after the retries")]
    RateLimited { retry_after: Option<Duration> },
    /// Still HTTP 5xx when the attempts were spent.
    #[error("Labelbox server error: HTTP {0}")]
    Server(u16),
    /// No answer: connection refused or reset, timeout, TLS.
    #[error("cannot reach Labelbox: {0}")]
    Http(#[from] reqwest::Error),
    /// The API key is missing, wrong or revoked.
    #[error("Labelbox rejected the API key")]
    Unauthorized,
    /// An asynchronous Labelbox job ended badly or not in time.
    #[error("Labelbox task {task}: {detail}")]
    Task {
        task: String,
        detail: String,
        /// Ran out of time rather than failed: worth trying again later.
        timed_out: bool,
    },
    /// An answer we cannot read: not JSON, a missing field, an unexpected status.
    #[error("unexpected answer from Labelbox: {0}")]
    Protocol(String),
    /// The organisation is not set up for what was asked (no default IAM
    /// integration, one that is not valid...): a person fixes it in Labelbox.
    #[error("Labelbox is not set up for this: {0}")]
    Configuration(String),
}

impl LabelboxError {
    /// Worth trying again later: throttling, 5xx, no connection, a job still running.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server(_) => true,
            Self::Http(e) => e.is_connect() || e.is_timeout(),
            Self::Task { timed_out, .. } => *timed_out,
            Self::Graphql { .. }
            | Self::Unauthorized
            | Self::Protocol(_)
            | Self::Configuration(_) => false,
        }
    }

    /// Labelbox says the thing already exists (a batch or an import of that
    /// name, a used global key). Labelbox publishes no error catalogue: this
    /// reads the `RESOURCE_CONFLICT` code the SDK maps to `ResourceConflict`,
    /// and the wording seen in its messages.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Graphql { errors, codes } => {
                codes.iter().any(|c| c == "RESOURCE_CONFLICT")
                    || errors.iter().any(|m| mentions_existing(m))
            }
            _ => false,
        }
    }
}

/// "already exists", "Duplicate global keys found", "is already in use"...
pub(crate) fn mentions_existing(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("already exist") || m.contains("duplicate") || m.contains("already in use")
}

//! Observe HTTP ingest: observations as gzipped NDJSON, one `POST` per batch.
//!
//! `POST https://<customer id>.collect.observeinc.com/v1/http/model-observability` with
//! `Authorization: Bearer <datastream token>`; the path becomes a tag, each NDJSON line one
//! observation. 429, 5xx, timeouts and connection errors are retried with the one [`RetryPolicy`];
//! other answers are final. What to send (the JSON of each observation) is the caller's.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use thiserror::Error;

use modelobs_retry::{RetryPolicy, Retryable};

/// The ingest path: tags every observation with where it came from.
pub const INGEST_PATH: &str = "/v1/http/model-observability";

/// Where to send, and the datastream token.
#[derive(Clone)]
pub struct ObserveConfig {
    /// Scheme and host, no trailing slash: `https://123.collect.observeinc.com`.
    pub base_url: String,
    pub token: String,
}

impl std::fmt::Debug for ObserveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObserveConfig")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl ObserveConfig {
    /// The collector of an Observe customer.
    pub fn for_customer(customer_id: &str, token: impl Into<String>) -> Self {
        Self {
            base_url: format!("https://{customer_id}.collect.observeinc.com"),
            token: token.into(),
        }
    }

    /// Another collector (a region's, or a local fake in tests).
    pub fn with_base_url(base_url: &str, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.into(),
        }
    }

    pub fn ingest_url(&self) -> String {
        format!("{}{INGEST_PATH}", self.base_url)
    }
}

#[derive(Debug, Error)]
pub enum ObserveError {
    /// 429, 5xx, timeouts, connection errors: worth another try later.
    #[error("Observe unavailable: {0}")]
    Transient(String),
    /// Any other answer (bad token, body refused).
    #[error("Observe refused the observations: {0}")]
    Permanent(String),
}

impl Retryable for ObserveError {
    fn is_transient(&self) -> bool {
        ObserveError::is_transient(self)
    }
}

impl ObserveError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

pub struct ObserveClient {
    http: reqwest::Client,
    url: String,
    token: String,
    retry: RetryPolicy,
}

impl ObserveClient {
    pub fn new(config: &ObserveConfig) -> Result<Self, ObserveError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ObserveError::Permanent(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            url: config.ingest_url(),
            token: config.token.clone(),
            retry: RetryPolicy {
                attempts: 4,
                first_delay: Duration::from_millis(200),
                max_delay: Duration::from_secs(2),
                max_retry_after: Duration::from_secs(2),
                jitter: true,
            },
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sends `observations` (each one JSON object on one line) as one gzipped
    /// NDJSON body, retrying transient failures.
    pub async fn send(&self, observations: &[String]) -> Result<(), ObserveError> {
        if observations.is_empty() {
            return Ok(());
        }
        let body = gzip_ndjson(observations)?;
        self.retry
            .run("observe ingest", || self.post(body.clone()))
            .await
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), ObserveError> {
        let sent = self
            .http
            .post(&self.url)
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "gzip")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // Connection refused, reset, timed out, DNS: all worth a retry.
            Err(e) => return Err(ObserveError::Transient(format!("POST {}: {e}", self.url))),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let what = format!("POST {}: {status} {}", self.url, text.trim());
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(ObserveError::Transient(what))
        } else {
            Err(ObserveError::Permanent(what))
        }
    }
}

fn gzip_ndjson(observations: &[String]) -> Result<Vec<u8>, ObserveError> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    for line in observations {
        if line.contains('\n') {
            return Err(ObserveError::Permanent(
                "an NDJSON observation must be on one line".into(),
            ));
        }
        gz.write_all(line.as_bytes())
            .and_then(|()| gz.write_all(b"\n"))
            .map_err(|e| ObserveError::Permanent(format!("gzip: {e}")))?;
    }
    gz.finish()
        .map_err(|e| ObserveError::Permanent(format!("gzip: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_debug_keep_the_token_out() {
        let c = ObserveConfig::for_customer("123456", "secret-token");
        assert_eq!(
            c.ingest_url(),
            "https://123456.collect.observeinc.com/v1/http/model-observability"
        );
        assert!(!format!("{c:?}").contains("secret-token"));
        let local = ObserveConfig::with_base_url("http://127.0.0.1:9/", "t");
        assert_eq!(
            local.ingest_url(),
            "http://127.0.0.1:9/v1/http/model-observability"
        );
    }

    #[test]
    fn multi_line_observations_are_refused() {
        let err = gzip_ndjson(&["{\"a\":\n1}".to_string()]).unwrap_err();
        assert!(!err.is_transient());
    }
}

//! The metrics queue: a port, SQS behind it, and an in-memory fake.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("queue unavailable: {message}")]
pub struct QueueError {
    pub message: String,
    /// Throttling, 5xx, timeouts, lost connections (retried by
    /// [`crate::retrying::Retrying`]); not a missing queue or a refused key.
    pub transient: bool,
}

impl QueueError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: true,
        }
    }
}

pub trait Queue: Send + Sync {
    fn send(&self, body: String) -> impl Future<Output = Result<(), QueueError>> + Send;
}

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// A client from the environment, with the SDK's own retries off: the
    /// [`Retrying`](crate::retrying::Retrying) decorator is the one retry
    /// layer, so a send is tried its policy's attempts, not 3 × that.
    pub async fn client_from_env() -> aws_sdk_sqs::Client {
        let shared = aws_config::load_from_env().await;
        let config = aws_sdk_sqs::config::Builder::from(&shared)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            // No SDK limit on an attempt otherwise (see S3Store::client_from_env).
            .timeout_config(
                aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(std::time::Duration::from_secs(5))
                    .build(),
            )
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }
}

impl Queue for SqsQueue {
    async fn send(&self, body: String) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}

/// Sorts an SQS failure into retry-worthy (throttled, 5xx, timeouts, lost
/// connections) or not (a missing queue, a refused key), keeping SQS's words.
fn classify<E>(err: &SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let transient = match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => matches!(se.raw().status().as_u16(), 429 | 500..),
        _ => false,
    };
    QueueError {
        message: err
            .as_service_error()
            .and_then(|s| s.message().or(s.code()).map(str::to_string))
            .unwrap_or_else(|| format!("{err:?}")),
        transient,
    }
}

/// Keeps what was sent; can be told to fail.
#[derive(Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<String>>,
    failures: AtomicU32,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn fail_next(&self, n: u32) {
        self.failures.store(n, Ordering::SeqCst);
    }

    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

impl Queue for MemoryQueue {
    async fn send(&self, body: String) -> Result<(), QueueError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(QueueError::transient("injected failure"));
        }
        self.sent.lock().unwrap().push(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_sqs::operation::send_message::SendMessageError;
    // The SQS crate does not re-export the body type; the S3 crate does (the same smithy type).
    use aws_sdk_s3::primitives::SdkBody;

    fn service(status: u16, code: &str) -> SdkError<SendMessageError, HttpResponse> {
        let error = SendMessageError::generic(ErrorMetadata::builder().code(code).build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(error, raw)
    }

    #[test]
    fn throttling_outages_and_lost_connections_are_transient() {
        for status in [429, 500, 503] {
            assert!(
                classify(&service(status, "ServiceUnavailable")).transient,
                "{status}"
            );
        }
        let lost: SdkError<SendMessageError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert!(classify(&lost).transient);
        let timeout: SdkError<SendMessageError, HttpResponse> =
            SdkError::timeout_error("timed out");
        assert!(classify(&timeout).transient);
    }

    #[test]
    fn a_missing_queue_or_a_refused_key_is_permanent() {
        let missing = classify(&service(400, "AWS.SimpleQueueService.NonExistentQueue"));
        assert!(!missing.transient);
        assert!(
            missing.message.contains("NonExistentQueue"),
            "{}",
            missing.message
        );
        assert!(!classify(&service(403, "AccessDenied")).transient);
    }
}

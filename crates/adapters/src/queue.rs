//! The metrics queue: a port, SQS behind it, and an in-memory fake.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

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

    pub async fn client_from_env() -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&aws_config::load_from_env().await)
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
            .map_err(|e: SdkError<_, _>| {
                QueueError(
                    e.as_service_error()
                        .and_then(|s| s.message().map(str::to_string))
                        .unwrap_or_else(|| format!("{e:?}")),
                )
            })
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
            return Err(QueueError("injected failure".into()));
        }
        self.sent.lock().unwrap().push(body);
        Ok(())
    }
}

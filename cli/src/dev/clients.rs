//! The router's real ports: SQS (LocalStack) and `cargo lambda watch`'s invoke API.

use std::time::Duration;

use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::router::{EventQueue, Invocation, Invoker, Received, RouterError};

pub struct Sqs(pub aws_sdk_sqs::Client);

fn queue_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    url: &str,
    e: SdkError<E, R>,
) -> RouterError {
    RouterError::Queue {
        url: url.to_string(),
        message: e
            .as_service_error()
            .and_then(|s| s.message().or(s.code()).map(str::to_string))
            .unwrap_or_else(|| format!("{e:?}")),
    }
}

impl EventQueue for Sqs {
    async fn receive(
        &self,
        url: &str,
        max: i32,
        wait: Duration,
    ) -> Result<Vec<Received>, RouterError> {
        let out = self
            .0
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| queue_error(url, e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                let attrs = m.attributes.unwrap_or_default();
                let attr = |name: MessageSystemAttributeName| {
                    attrs.get(&name).and_then(|v| v.parse::<i64>().ok())
                };
                Received {
                    message_id: m.message_id.unwrap_or_default(),
                    receipt_handle: m.receipt_handle.unwrap_or_default(),
                    body: m.body.unwrap_or_default(),
                    receive_count: attr(MessageSystemAttributeName::ApproximateReceiveCount)
                        .unwrap_or(1) as u32,
                    sent_at: attr(MessageSystemAttributeName::SentTimestamp)
                        .and_then(DateTime::<Utc>::from_timestamp_millis)
                        .unwrap_or_else(Utc::now),
                }
            })
            .collect())
    }

    async fn delete(&self, url: &str, receipt_handle: &str) -> Result<(), RouterError> {
        self.0
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| queue_error(url, e))
    }

    async fn release(
        &self,
        url: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), RouterError> {
        self.0
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| queue_error(url, e))
    }

    async fn send(&self, url: &str, body: String) -> Result<(), RouterError> {
        self.0
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| queue_error(url, e))
    }
}

/// `cargo lambda watch`'s emulation of Lambda's Invoke API.
pub struct WatchInvoker {
    pub http: reqwest::Client,
    /// `http://127.0.0.1:9000`
    pub base: String,
}

impl Invoker for WatchInvoker {
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Invocation, RouterError> {
        let failed = |message: String| RouterError::Invoke {
            function: function.to_string(),
            message,
        };
        let response = self
            .http
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.base
            ))
            .json(payload)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        // A function error comes back as 500 with {errorType, errorMessage};
        // anything else that isn't 200 is the emulator's own trouble.
        if status.is_success() {
            Ok(Invocation::Succeeded(value))
        } else if value.get("errorType").is_some() || value.get("errorMessage").is_some() {
            Ok(Invocation::Failed(value))
        } else {
            Err(failed(format!("HTTP {status}: {value}")))
        }
    }
}

//! The local event router: what AWS does between S3, SQS and Lambda, done for
//! functions running under `cargo lambda watch` (LocalStack can't run them
//! without Docker).
//!
//! - **S3 notifications** arrive on a queue standing in for the direct S3 →
//!   Lambda trigger. Like Lambda's asynchronous invocation, an event whose
//!   function fails is retried, and after `attempts` tries goes to the
//!   function's on-failure destination, wrapped the way Lambda wraps it.
//! - **SQS event sources** get batches (`SqsEvent`) and honour
//!   `batchItemFailures`: what succeeded is deleted, what failed is made
//!   visible again after `retry_delay`, and SQS itself (the queue's redrive
//!   policy) moves a message past `maxReceiveCount` to the DLQ.
//! - **Schedules** invoke a function with an EventBridge scheduled event.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RouterError {
    #[error("queue {url}: {message}")]
    Queue { url: String, message: String },
    #[error("invoking {function}: {message}")]
    Invoke { function: String, message: String },
}

/// One message as received, with how often SQS has handed it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    pub receive_count: u32,
    pub sent_at: DateTime<Utc>,
}

/// The SQS calls the router makes.
pub trait EventQueue: Send + Sync {
    fn receive(
        &self,
        url: &str,
        max: i32,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Received>, RouterError>> + Send;
    fn delete(
        &self,
        url: &str,
        receipt_handle: &str,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;
    /// Makes a received message visible again after `delay`.
    fn release(
        &self,
        url: &str,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;
    fn send(&self, url: &str, body: String)
    -> impl Future<Output = Result<(), RouterError>> + Send;
}

/// What a function invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    Succeeded(Value),
    /// The function returned an error (`errorType`, `errorMessage`).
    Failed(Value),
}

pub trait Invoker: Send + Sync {
    fn invoke(
        &self,
        function: &str,
        payload: &Value,
    ) -> impl Future<Output = Result<Invocation, RouterError>> + Send;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// S3 → Lambda, asynchronous: each notification is one invocation.
    S3Notification {
        /// Tries in all before the event goes to `on_failure` (Lambda: 1 + 2 retries).
        attempts: u32,
        /// The on-failure destination queue; without one the event is dropped, as in AWS.
        on_failure: Option<String>,
    },
    /// SQS → Lambda event source mapping with `ReportBatchItemFailures`.
    SqsBatch {
        batch_size: i32,
        /// For the events' `eventSourceARN`.
        queue_arn: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub queue_url: String,
    pub function: String,
    pub delivery: Delivery,
    /// How long a failed message stays invisible before its next try.
    pub retry_delay: Duration,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub received: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Sent to the on-failure destination after the last attempt.
    pub dead_lettered: usize,
    /// Not an event for the function (S3's test event).
    pub skipped: usize,
}

impl Stats {
    pub fn add(&mut self, other: Stats) {
        self.received += other.received;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.dead_lettered += other.dead_lettered;
        self.skipped += other.skipped;
    }
}

/// Receives once from the route's queue (waiting up to `wait`) and delivers what came.
pub async fn poll_once<Q: EventQueue, I: Invoker>(
    route: &Route,
    queue: &Q,
    invoker: &I,
    wait: Duration,
) -> Result<Stats, RouterError> {
    match &route.delivery {
        Delivery::S3Notification {
            attempts,
            on_failure,
        } => {
            let messages = queue.receive(&route.queue_url, 10, wait).await?;
            let mut stats = Stats {
                received: messages.len(),
                ..Stats::default()
            };
            for message in &messages {
                stats.add(
                    deliver_notification(route, queue, invoker, message, *attempts, on_failure)
                        .await?,
                );
            }
            Ok(stats)
        }
        Delivery::SqsBatch {
            batch_size,
            queue_arn,
        } => {
            let messages = queue.receive(&route.queue_url, *batch_size, wait).await?;
            if messages.is_empty() {
                return Ok(Stats::default());
            }
            deliver_batch(route, queue, invoker, &messages, queue_arn).await
        }
    }
}

async fn deliver_notification<Q: EventQueue, I: Invoker>(
    route: &Route,
    queue: &Q,
    invoker: &I,
    message: &Received,
    attempts: u32,
    on_failure: &Option<String>,
) -> Result<Stats, RouterError> {
    let event: Value = match serde_json::from_str(&message.body) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(message_id = %message.message_id, error = %e, "notification is not JSON; dropped");
            queue
                .delete(&route.queue_url, &message.receipt_handle)
                .await?;
            return Ok(Stats {
                skipped: 1,
                ..Stats::default()
            });
        }
    };
    // S3 sends `s3:TestEvent` when a notification is configured: not for the function.
    if event.get("Records").is_none() {
        tracing::info!(message_id = %message.message_id, "not an S3 event record set; skipped");
        queue
            .delete(&route.queue_url, &message.receipt_handle)
            .await?;
        return Ok(Stats {
            skipped: 1,
            ..Stats::default()
        });
    }
    let outcome = invoker.invoke(&route.function, &event).await;
    let error = match outcome {
        Ok(Invocation::Succeeded(_)) => {
            queue
                .delete(&route.queue_url, &message.receipt_handle)
                .await?;
            return Ok(Stats {
                delivered: 1,
                ..Stats::default()
            });
        }
        Ok(Invocation::Failed(error)) => error,
        // The function didn't answer (still building, crashed): not its fault
        // yet, so try again without spending an attempt's worth of judgement.
        Err(e) => {
            tracing::warn!(function = %route.function, error = %e, "invocation failed; retrying");
            queue
                .release(&route.queue_url, &message.receipt_handle, route.retry_delay)
                .await?;
            return Ok(Stats {
                failed: 1,
                ..Stats::default()
            });
        }
    };
    tracing::warn!(function = %route.function, message_id = %message.message_id, attempt = message.receive_count, %error, "function failed on an S3 event");
    if message.receive_count < attempts {
        queue
            .release(&route.queue_url, &message.receipt_handle, route.retry_delay)
            .await?;
        return Ok(Stats {
            failed: 1,
            ..Stats::default()
        });
    }
    if let Some(destination) = on_failure {
        let record = failure_record(&route.function, &event, &error, attempts, Utc::now());
        queue.send(destination, record.to_string()).await?;
    } else {
        tracing::error!(function = %route.function, message_id = %message.message_id, "attempts exhausted and no on-failure destination: event dropped");
    }
    queue
        .delete(&route.queue_url, &message.receipt_handle)
        .await?;
    Ok(Stats {
        failed: 1,
        dead_lettered: 1,
        ..Stats::default()
    })
}

/// The record Lambda sends to an on-failure destination of an asynchronous invocation.
pub fn failure_record(
    function: &str,
    event: &Value,
    error: &Value,
    attempts: u32,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "version": "1.0",
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "requestContext": {
            "functionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{function}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": error,
    })
}

/// The `SqsEvent` Lambda's event source mapping would send for these messages.
pub fn sqs_event(messages: &[Received], queue_arn: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = [
                (
                    "ApproximateReceiveCount".to_string(),
                    m.receive_count.to_string(),
                ),
                (
                    "SentTimestamp".to_string(),
                    m.sent_at.timestamp_millis().to_string(),
                ),
            ]
            .into();
            record.event_source = Some("aws:sqs".into());
            record.event_source_arn = Some(queue_arn.to_string());
            record.aws_region = Some("us-east-1".into());
            record
        })
        .collect();
    event
}

async fn deliver_batch<Q: EventQueue, I: Invoker>(
    route: &Route,
    queue: &Q,
    invoker: &I,
    messages: &[Received],
    queue_arn: &str,
) -> Result<Stats, RouterError> {
    let event = serde_json::to_value(sqs_event(messages, queue_arn))
        .expect("an SqsEvent always serialises");
    let failed_ids: Vec<&str> = match invoker.invoke(&route.function, &event).await {
        Ok(Invocation::Succeeded(response)) => {
            match serde_json::from_value::<SqsBatchResponse>(response.clone()) {
                Ok(r) => {
                    let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
                    let mut failed = Vec::new();
                    for f in &r.batch_item_failures {
                        match ids.iter().find(|id| **id == f.item_identifier) {
                            Some(id) => failed.push(*id),
                            // Lambda treats an unknown identifier as a failure of the whole batch.
                            None => {
                                tracing::error!(function = %route.function, item = %f.item_identifier, "batchItemFailures names a message not in the batch: whole batch fails");
                                failed = ids.clone();
                                break;
                            }
                        }
                    }
                    failed
                }
                // A response that isn't a batch response means "all succeeded", as in AWS.
                Err(_) => Vec::new(),
            }
        }
        Ok(Invocation::Failed(error)) => {
            tracing::warn!(function = %route.function, %error, "function failed: the whole batch returns to the queue");
            messages.iter().map(|m| m.message_id.as_str()).collect()
        }
        Err(e) => {
            tracing::warn!(function = %route.function, error = %e, "invocation failed: the whole batch returns to the queue");
            messages.iter().map(|m| m.message_id.as_str()).collect()
        }
    };
    let mut stats = Stats {
        received: messages.len(),
        ..Stats::default()
    };
    for m in messages {
        if failed_ids.contains(&m.message_id.as_str()) {
            queue
                .release(&route.queue_url, &m.receipt_handle, route.retry_delay)
                .await?;
            stats.failed += 1;
        } else {
            queue.delete(&route.queue_url, &m.receipt_handle).await?;
            stats.delivered += 1;
        }
    }
    Ok(stats)
}

/// The event EventBridge Scheduler sends for a `rate(...)` schedule.
pub fn scheduled_event(rule: &str, at: DateTime<Utc>) -> Value {
    json!({
        "version": "0",
        "id": uuid_like(at),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:000000000000:rule/{rule}")],
        "detail": {},
    })
}

fn uuid_like(at: DateTime<Utc>) -> String {
    modelobs_core::records::CaptureId::new(at).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A queue: messages, their receive counts, visibility, and what was sent elsewhere.
    #[derive(Default)]
    struct FakeQueue {
        messages: Mutex<BTreeMap<String, (Received, bool)>>,
        sent: Mutex<Vec<(String, String)>>,
    }

    impl FakeQueue {
        fn with(bodies: &[&str]) -> Self {
            let q = FakeQueue::default();
            for (i, body) in bodies.iter().enumerate() {
                let id = format!("m{i}");
                q.messages.lock().unwrap().insert(
                    id.clone(),
                    (
                        Received {
                            message_id: id.clone(),
                            receipt_handle: format!("r-{id}"),
                            body: body.to_string(),
                            receive_count: 0,
                            sent_at: Utc::now(),
                        },
                        true,
                    ),
                );
            }
            q
        }
        fn left(&self) -> Vec<String> {
            self.messages.lock().unwrap().keys().cloned().collect()
        }
    }

    impl EventQueue for FakeQueue {
        async fn receive(
            &self,
            _url: &str,
            max: i32,
            _wait: Duration,
        ) -> Result<Vec<Received>, RouterError> {
            let mut out = Vec::new();
            for (m, visible) in self.messages.lock().unwrap().values_mut() {
                if *visible && out.len() < max as usize {
                    m.receive_count += 1;
                    *visible = false;
                    out.push(m.clone());
                }
            }
            Ok(out)
        }
        async fn delete(&self, _url: &str, receipt: &str) -> Result<(), RouterError> {
            self.messages
                .lock()
                .unwrap()
                .retain(|_, (m, _)| m.receipt_handle != receipt);
            Ok(())
        }
        async fn release(
            &self,
            _url: &str,
            receipt: &str,
            _delay: Duration,
        ) -> Result<(), RouterError> {
            for (m, visible) in self.messages.lock().unwrap().values_mut() {
                if m.receipt_handle == receipt {
                    *visible = true;
                }
            }
            Ok(())
        }
        async fn send(&self, url: &str, body: String) -> Result<(), RouterError> {
            self.sent.lock().unwrap().push((url.to_string(), body));
            Ok(())
        }
    }

    /// Answers each invocation with a closure of the payload; keeps the payloads.
    struct FakeInvoker<F> {
        answer: F,
        payloads: Mutex<Vec<Value>>,
    }

    impl<F: Fn(&Value) -> Result<Invocation, RouterError> + Send + Sync> Invoker for FakeInvoker<F> {
        async fn invoke(
            &self,
            _function: &str,
            payload: &Value,
        ) -> Result<Invocation, RouterError> {
            self.payloads.lock().unwrap().push(payload.clone());
            (self.answer)(payload)
        }
    }

    fn invoker<F: Fn(&Value) -> Result<Invocation, RouterError> + Send + Sync>(
        answer: F,
    ) -> FakeInvoker<F> {
        FakeInvoker {
            answer,
            payloads: Mutex::new(Vec::new()),
        }
    }

    fn batch_route() -> Route {
        Route {
            queue_url: "q".into(),
            function: "metrics".into(),
            delivery: Delivery::SqsBatch {
                batch_size: 10,
                queue_arn: "arn:aws:sqs:us-east-1:000000000000:metrics".into(),
            },
            retry_delay: Duration::ZERO,
        }
    }

    fn s3_route() -> Route {
        Route {
            queue_url: "events".into(),
            function: "sampler".into(),
            delivery: Delivery::S3Notification {
                attempts: 3,
                on_failure: Some("failures".into()),
            },
            retry_delay: Duration::ZERO,
        }
    }

    const S3_EVENT: &str =
        r#"{"Records":[{"s3":{"object":{"key":"captures/predictions/x.json"}}}]}"#;

    #[tokio::test]
    async fn batch_failures_stay_and_the_rest_is_deleted() {
        // GIVEN three messages, the function failing the one whose body is "bad"
        let queue = FakeQueue::with(&["good", "bad", "good too"]);
        let invoker = invoker(|payload: &Value| {
            let failures: Vec<Value> = payload["Records"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["body"] == "bad")
                .map(|r| json!({"itemIdentifier": r["messageId"]}))
                .collect();
            Ok(Invocation::Succeeded(
                json!({ "batchItemFailures": failures }),
            ))
        });
        // WHEN the router polls once
        let stats = poll_once(&batch_route(), &queue, &invoker, Duration::ZERO)
            .await
            .unwrap();
        // THEN one batch went out as a real SqsEvent, and only the failure is left
        assert_eq!((stats.delivered, stats.failed), (2, 1));
        assert_eq!(queue.left(), vec!["m1".to_string()]);
        let payloads = invoker.payloads.lock().unwrap();
        assert_eq!(payloads.len(), 1);
        let event: SqsEvent = serde_json::from_value(payloads[0].clone()).unwrap();
        assert_eq!(event.records.len(), 3);
        assert_eq!(
            event.records[0].attributes["ApproximateReceiveCount"],
            "1".to_string()
        );
        assert_eq!(event.records[0].event_source.as_deref(), Some("aws:sqs"));
    }

    #[tokio::test]
    async fn a_function_error_or_an_unknown_identifier_fails_the_whole_batch() {
        let queue = FakeQueue::with(&["a", "b"]);
        let failing = invoker(|_: &Value| {
            Ok(Invocation::Failed(
                json!({"errorType": "x", "errorMessage": "boom"}),
            ))
        });
        let stats = poll_once(&batch_route(), &queue, &failing, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!((stats.delivered, stats.failed), (0, 2));
        assert_eq!(queue.left().len(), 2);

        let confused = invoker(|_: &Value| {
            Ok(Invocation::Succeeded(
                json!({"batchItemFailures": [{"itemIdentifier": "nope"}]}),
            ))
        });
        let stats = poll_once(&batch_route(), &queue, &confused, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!((stats.delivered, stats.failed), (0, 2));
        assert_eq!(queue.left().len(), 2);
    }

    #[tokio::test]
    async fn an_empty_response_means_the_whole_batch_succeeded() {
        let queue = FakeQueue::with(&["a", "b"]);
        let ok = invoker(|_: &Value| Ok(Invocation::Succeeded(Value::Null)));
        let stats = poll_once(&batch_route(), &queue, &ok, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(stats.delivered, 2);
        assert!(queue.left().is_empty());
    }

    #[tokio::test]
    async fn an_s3_event_that_keeps_failing_goes_to_the_destination_after_its_attempts() {
        // GIVEN an S3 notification the function always fails on
        let queue = FakeQueue::with(&[S3_EVENT]);
        let failing = invoker(|_: &Value| {
            Ok(Invocation::Failed(
                json!({"errorType": "Store", "errorMessage": "denied"}),
            ))
        });
        // WHEN it is tried twice: it is still queued, nothing sent aside
        for _ in 0..2 {
            let stats = poll_once(&s3_route(), &queue, &failing, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!((stats.failed, stats.dead_lettered), (1, 0));
        }
        assert_eq!(queue.left().len(), 1);
        assert!(queue.sent.lock().unwrap().is_empty());
        // THEN the third failure sends the Lambda-shaped failure record and deletes it
        let stats = poll_once(&s3_route(), &queue, &failing, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(stats.dead_lettered, 1);
        assert!(queue.left().is_empty());
        let sent = queue.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "failures");
        let record: Value = serde_json::from_str(&sent[0].1).unwrap();
        assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(
            record["requestPayload"],
            serde_json::from_str::<Value>(S3_EVENT).unwrap()
        );
        assert_eq!(record["responsePayload"]["errorMessage"], "denied");
        // and the function saw the S3 event itself, three times
        assert_eq!(failing.payloads.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_unreachable_function_spends_no_attempt_on_the_destination() {
        let queue = FakeQueue::with(&[S3_EVENT]);
        let down = invoker(|_: &Value| {
            Err(RouterError::Invoke {
                function: "sampler".into(),
                message: "connection refused".into(),
            })
        });
        for _ in 0..5 {
            poll_once(&s3_route(), &queue, &down, Duration::ZERO)
                .await
                .unwrap();
        }
        assert_eq!(queue.left().len(), 1);
        assert!(queue.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_s3_test_event_is_skipped_and_a_success_deleted() {
        let queue = FakeQueue::with(&[
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#,
            S3_EVENT,
        ]);
        let ok = invoker(|_: &Value| Ok(Invocation::Succeeded(Value::Null)));
        let stats = poll_once(&s3_route(), &queue, &ok, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!((stats.skipped, stats.delivered), (1, 1));
        assert!(queue.left().is_empty());
        assert_eq!(ok.payloads.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_scheduled_event_is_what_eventbridge_sends() {
        let at = DateTime::parse_from_rfc3339("2026-11-26T08:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = scheduled_event("rollup", at);
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["time"], "2026-11-26T08:05:00Z");
        let parsed: aws_lambda_events::event::eventbridge::EventBridgeEvent =
            serde_json::from_value(event).unwrap();
        assert_eq!(parsed.source, "aws.events");
    }
}

//! Where evaluations are sent besides S3: `trait MetricsSink`, with EMF on
//! stdout (CloudWatch Logs turns it into metrics), Observe (`crate::observe`),
//! and [`Fanout`] to send to both.
//!
//! S3 holds every evaluation before any sink sees it, so a sink failure never
//! loses one: [`Fanout`] counts and logs it and the caller carries on.
//!
//! # One deadline per invocation
//!
//! A black-holed collector must not hold each message for its client's whole
//! timeout (10 messages x ~41 s outlived the metrics function, and after 5
//! receives good labels went to the DLQ). The handlers call
//! [`MetricsSink::begin_invocation`] first; from then [`Fanout`] gives its
//! second sink at most its budget in total, cuts a call off at the deadline,
//! and after it skips the second sink (each skip counted as a failure).

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use modelobs_core::records::{ImageEval, WindowDrift, WindowMetrics};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("metrics sink failed: {0}")]
pub struct SinkError(pub String);

pub trait MetricsSink: Send + Sync {
    fn emit_image(&self, eval: &ImageEval) -> impl Future<Output = Result<(), SinkError>> + Send;

    fn emit_window(
        &self,
        window: &WindowMetrics,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// A window's label-free side (drift, estimated AP50). Sinks that have
    /// nothing to do with it need not implement it.
    fn emit_drift(
        &self,
        _drift: &WindowDrift,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    /// Records that another sink (`sink`) failed; only the sink that turns
    /// it into a metric (EMF) does anything.
    fn count_sink_failure(&self, _sink: &str) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A handler's invocation starts: a sink with a time budget per
    /// invocation ([`Fanout`]) starts it afresh.
    fn begin_invocation(&self) {}
}

/// EMF lines on stdout, which Lambda ships to CloudWatch Logs.
pub struct EmfSink;

impl MetricsSink for EmfSink {
    async fn emit_image(&self, eval: &ImageEval) -> Result<(), SinkError> {
        for line in crate::emf::image_lines(eval) {
            println!("{line}");
        }
        Ok(())
    }

    async fn emit_window(&self, window: &WindowMetrics) -> Result<(), SinkError> {
        for line in crate::emf::window_lines(window) {
            println!("{line}");
        }
        Ok(())
    }

    async fn emit_drift(&self, drift: &WindowDrift) -> Result<(), SinkError> {
        println!("{}", crate::emf::drift_line(drift));
        Ok(())
    }

    async fn count_sink_failure(&self, sink: &str) {
        println!(
            "{}",
            crate::emf::sink_failure_line(chrono::Utc::now().timestamp_millis(), sink)
        );
    }
}

/// Keeps the EMF lines; for tests.
#[derive(Default)]
pub struct MemorySink {
    pub lines: Mutex<Vec<String>>,
}

impl MetricsSink for MemorySink {
    async fn emit_drift(&self, drift: &WindowDrift) -> Result<(), SinkError> {
        self.lines
            .lock()
            .unwrap()
            .push(crate::emf::drift_line(drift));
        Ok(())
    }

    async fn emit_image(&self, eval: &ImageEval) -> Result<(), SinkError> {
        self.lines
            .lock()
            .unwrap()
            .extend(crate::emf::image_lines(eval));
        Ok(())
    }

    async fn emit_window(&self, window: &WindowMetrics) -> Result<(), SinkError> {
        self.lines
            .lock()
            .unwrap()
            .extend(crate::emf::window_lines(window));
        Ok(())
    }

    async fn count_sink_failure(&self, sink: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(crate::emf::sink_failure_line(0, sink));
    }
}

/// Sends nowhere: `modelobs rollup` without `--emf`.
pub struct Discard;

impl MetricsSink for Discard {
    async fn emit_image(&self, _: &ImageEval) -> Result<(), SinkError> {
        Ok(())
    }

    async fn emit_window(&self, _: &WindowMetrics) -> Result<(), SinkError> {
        Ok(())
    }
}

/// The primary sink (EMF) and an optional second one (Observe). A failure of
/// the second is counted ([`Fanout::failures`], an EMF `SinkFailures` line
/// through the primary) and logged, never returned: the evaluation is in S3
/// and on the primary already, and failing the message or window for it
/// would only redo work that succeeded.
pub struct Fanout<P, S> {
    primary: P,
    secondary: Option<(&'static str, S)>,
    failures: AtomicU64,
    /// The second sink's time per invocation, and this invocation's deadline.
    budget: Duration,
    deadline: Mutex<Option<Instant>>,
}

impl<P, S> Fanout<P, S> {
    /// The second sink's budget per invocation, unless [`Self::with_budget`].
    pub const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

    pub fn new(primary: P, secondary: Option<(&'static str, S)>) -> Self {
        Self {
            primary,
            secondary,
            failures: AtomicU64::new(0),
            budget: Self::DEFAULT_BUDGET,
            deadline: Mutex::new(None),
        }
    }

    /// At most `budget` of each invocation for the second sink, in total.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// This invocation's deadline (one from now if no invocation began).
    fn deadline(&self) -> Instant {
        *self
            .deadline
            .lock()
            .unwrap()
            .get_or_insert_with(|| Instant::now() + self.budget)
    }

    /// Failed deliveries to the second sink since this fanout was built.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn primary(&self) -> &P {
        &self.primary
    }

    pub fn secondary(&self) -> Option<&S> {
        self.secondary.as_ref().map(|(_, s)| s)
    }
}

impl<P: MetricsSink, S: MetricsSink> Fanout<P, S> {
    /// `call` on the second sink within this invocation's deadline.
    async fn within_budget(
        &self,
        call: impl Future<Output = Result<(), SinkError>>,
    ) -> Result<(), SinkError> {
        let deadline = self.deadline();
        if Instant::now() >= deadline {
            return Err(SinkError(format!(
                "skipped: this invocation's {:?} for the sink is spent",
                self.budget
            )));
        }
        tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(SinkError(format!(
                    "cut off at this invocation's deadline ({:?} for the sink)",
                    self.budget
                )))
            })
    }

    async fn settle(&self, result: Option<Result<(), SinkError>>, what: &str) {
        let Some(Err(e)) = result else { return };
        let name = self.secondary.as_ref().map_or("secondary", |(n, _)| *n);
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(sink = name, what, failures, error = %e, "metrics sink failed; the evaluation is kept in S3");
        self.primary.count_sink_failure(name).await;
    }
}

impl<P: MetricsSink, S: MetricsSink> MetricsSink for Fanout<P, S> {
    async fn emit_image(&self, eval: &ImageEval) -> Result<(), SinkError> {
        self.primary.emit_image(eval).await?;
        let second = match &self.secondary {
            Some((_, s)) => Some(self.within_budget(s.emit_image(eval)).await),
            None => None,
        };
        self.settle(second, "image").await;
        Ok(())
    }

    async fn emit_window(&self, window: &WindowMetrics) -> Result<(), SinkError> {
        self.primary.emit_window(window).await?;
        let second = match &self.secondary {
            Some((_, s)) => Some(self.within_budget(s.emit_window(window)).await),
            None => None,
        };
        self.settle(second, "window").await;
        Ok(())
    }

    async fn emit_drift(&self, drift: &WindowDrift) -> Result<(), SinkError> {
        self.primary.emit_drift(drift).await?;
        let second = match &self.secondary {
            Some((_, s)) => Some(self.within_budget(s.emit_drift(drift)).await),
            None => None,
        };
        self.settle(second, "drift").await;
        Ok(())
    }

    async fn count_sink_failure(&self, sink: &str) {
        self.primary.count_sink_failure(sink).await;
    }

    fn begin_invocation(&self) {
        *self.deadline.lock().unwrap() = Some(Instant::now() + self.budget);
        self.primary.begin_invocation();
    }
}

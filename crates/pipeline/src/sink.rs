//! Where evaluations are sent besides S3: `trait MetricsSink`, with EMF on
//! stdout (CloudWatch Logs turns it into metrics), Observe (`crate::observe`),
//! and [`Fanout`] to send to both.
//!
//! S3 holds every evaluation before any sink sees it, so a sink failure never
//! loses one: [`Fanout`] counts and logs it and the caller carries on.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use modelobs_core::records::{ImageEval, WindowMetrics};
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

    /// Records that another sink (`sink`) failed; only the sink that turns
    /// it into a metric (EMF) does anything.
    fn count_sink_failure(&self, _sink: &str) -> impl Future<Output = ()> + Send {
        async {}
    }
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
}

impl<P, S> Fanout<P, S> {
    pub fn new(primary: P, secondary: Option<(&'static str, S)>) -> Self {
        Self {
            primary,
            secondary,
            failures: AtomicU64::new(0),
        }
    }

    /// Failed deliveries to the second sink since this fanout was built.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn primary(&self) -> &P {
        &self.primary
    }
}

impl<P: MetricsSink, S: MetricsSink> Fanout<P, S> {
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
            Some((_, s)) => Some(s.emit_image(eval).await),
            None => None,
        };
        self.settle(second, "image").await;
        Ok(())
    }

    async fn emit_window(&self, window: &WindowMetrics) -> Result<(), SinkError> {
        self.primary.emit_window(window).await?;
        let second = match &self.secondary {
            Some((_, s)) => Some(s.emit_window(window).await),
            None => None,
        };
        self.settle(second, "window").await;
        Ok(())
    }

    async fn count_sink_failure(&self, sink: &str) {
        self.primary.count_sink_failure(sink).await;
    }
}

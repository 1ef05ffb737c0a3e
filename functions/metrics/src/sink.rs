//! Where per-image evaluations are sent besides S3: `trait MetricsSink`, with
//! EMF on stdout (CloudWatch Logs turns it into metrics).

use std::future::Future;
use std::sync::Mutex;

use modelobs_core::records::ImageEval;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("metrics sink failed: {0}")]
pub struct SinkError(pub String);

pub trait MetricsSink: Send + Sync {
    fn emit_image(&self, eval: &ImageEval) -> impl Future<Output = Result<(), SinkError>> + Send;
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
}

/// Keeps the lines; for tests.
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
}

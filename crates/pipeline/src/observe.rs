//! Evaluations as Observe observations: one JSON object each, with a `kind`
//! (`image_eval`, `window_metrics`) to tell them apart in one datastream. The
//! HTTP side (gzip NDJSON, bearer token, retries) is `modelobs_adapters::observe`.

use modelobs_adapters::observe::ObserveClient;
use modelobs_core::records::{ImageEval, WindowDrift, WindowMetrics};
use serde::Serialize;
use serde_json::Value;

use crate::sink::{MetricsSink, SinkError};

pub struct ObserveSink {
    client: ObserveClient,
}

impl ObserveSink {
    pub fn new(client: ObserveClient) -> Self {
        Self { client }
    }
}

/// `record` as a JSON object with `kind` added and `drop` removed.
fn observation(kind: &str, record: &impl Serialize, drop: &[&str]) -> Result<String, SinkError> {
    let mut value = serde_json::to_value(record).map_err(|e| SinkError(e.to_string()))?;
    let Value::Object(fields) = &mut value else {
        return Err(SinkError(format!("{kind} is not a JSON object")));
    };
    for name in drop {
        fields.remove(*name);
    }
    fields.insert("kind".into(), Value::from(kind));
    Ok(value.to_string())
}

/// An image's evaluation without its per-class matching cells (what windows
/// accumulate; large and of no use on a dashboard).
pub fn image_observation(eval: &ImageEval) -> Result<String, SinkError> {
    observation("image_eval", eval, &["classes"])
}

pub fn window_observation(window: &WindowMetrics) -> Result<String, SinkError> {
    observation("window_metrics", window, &[])
}

/// A window's drift (with each feature's test) and estimated AP50.
pub fn drift_observation(drift: &WindowDrift) -> Result<String, SinkError> {
    observation("window_drift", drift, &[])
}

impl MetricsSink for ObserveSink {
    async fn emit_drift(&self, drift: &WindowDrift) -> Result<(), SinkError> {
        self.client
            .send(&[drift_observation(drift)?])
            .await
            .map_err(|e| SinkError(e.to_string()))
    }

    async fn emit_image(&self, eval: &ImageEval) -> Result<(), SinkError> {
        self.client
            .send(&[image_observation(eval)?])
            .await
            .map_err(|e| SinkError(e.to_string()))
    }

    async fn emit_window(&self, window: &WindowMetrics) -> Result<(), SinkError> {
        self.client
            .send(&[window_observation(window)?])
            .await
            .map_err(|e| SinkError(e.to_string()))
    }
}

//! CloudWatch Embedded Metric Format: log lines CloudWatch turns into metrics
//! (namespace `ModelObservability`). Limits checked here, not by CloudWatch's
//! silence: at most 100 metrics per directive, 30 dimensions per set.

use modelobs_core::records::{CaptureRecord, ImageEval, WindowDrift, WindowMetrics};
use serde_json::{Map, Value, json};

pub const NAMESPACE: &str = "ModelObservability";
pub const MAX_METRICS: usize = 100;
pub const MAX_DIMENSIONS: usize = 30;

/// One EMF event: dimension values and metric values with their unit.
pub fn line(
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    metrics: &[(&str, f64, &str)],
) -> String {
    assert!(metrics.len() <= MAX_METRICS && dimensions.len() <= MAX_DIMENSIONS);
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        root.insert((*k).into(), Value::from(*v));
    }
    for (name, value, _) in metrics {
        root.insert((*name).into(), json!(value));
    }
    Value::Object(root).to_string()
}

/// The lines for one evaluated image: the image's figures, and per class.
pub fn image_lines(e: &ImageEval) -> Vec<String> {
    let ts = e.captured_at.timestamp_millis();
    let model = [
        ("ModelName", e.model.name.as_str()),
        ("ModelVersion", e.model.version.as_str()),
    ];
    let op = &e.at_serving_threshold;
    let mut metrics = vec![
        ("TP", op.tp as f64, "Count"),
        ("FP", op.fp as f64, "Count"),
        ("FN", op.fn_ as f64, "Count"),
        ("Detections", f64::from(e.detections), "Count"),
        ("GroundTruthObjects", f64::from(e.gt_objects), "Count"),
        ("LabelLagSeconds", e.label_lag_s, "Seconds"),
    ];
    // Undefined figures are left out rather than sent as -1.
    if e.ap50 >= 0.0 {
        metrics.push(("AP50", e.ap50, "None"));
    }
    if let Some(iou) = op.mean_iou {
        metrics.push(("MeanIoU", iou, "None"));
    }
    let mut lines = vec![line(ts, &model, &metrics)];
    let per_class = modelobs_core::records::summarize([e.classes.as_slice()]).per_class;
    for (class, ap) in per_class.iter().filter(|(_, ap)| ap.ap50 >= 0.0) {
        let dims = [model[0], model[1], ("ClassName", class.as_str())];
        lines.push(line(ts, &dims, &[("AP50", ap.ap50, "None")]));
    }
    lines
}

/// The lines for one window: its COCO summary, operating point, coverage and
/// lag, and AP per class (`ClassName`). Stamped with the window's start;
/// `Granularity` keeps hour and day figures apart.
pub fn window_lines(m: &WindowMetrics) -> Vec<String> {
    let ts = m.window.start.timestamp_millis();
    let dims = [
        ("ModelName", m.model.name.as_str()),
        ("ModelVersion", m.model.version.as_str()),
        ("Granularity", m.window.granularity.as_str()),
    ];
    let c = &m.coco;
    let op = &m.at_serving_threshold;
    let mut metrics = vec![
        ("ImagesLabelled", f64::from(m.images_labelled), "Count"),
        ("CapturesInWindow", m.captures_in_window as f64, "Count"),
        ("TP", op.tp as f64, "Count"),
        ("FP", op.fp as f64, "Count"),
        ("FN", op.fn_ as f64, "Count"),
    ];
    // Undefined figures (-1 or None) are left out rather than sent.
    for (name, v) in [
        ("AP", c.ap),
        ("AP50", c.ap50),
        ("AP75", c.ap75),
        ("AR100", c.ar100),
    ] {
        if v >= 0.0 {
            metrics.push((name, v, "None"));
        }
    }
    for (name, v, unit) in [
        ("Precision", op.precision, "None"),
        ("Recall", op.recall, "None"),
        ("F1", op.f1, "None"),
        ("MeanIoU", op.mean_iou, "None"),
        ("LabelCoverage", m.label_coverage, "None"),
        ("LabelLagSeconds", m.mean_label_lag_s, "Seconds"),
    ] {
        if let Some(v) = v {
            metrics.push((name, v, unit));
        }
    }
    let mut lines = vec![line(ts, &dims, &metrics)];
    for (class, ap) in &c.per_class {
        let values: Vec<_> = [("AP", ap.ap), ("AP50", ap.ap50)]
            .into_iter()
            .filter(|(_, v)| *v >= 0.0)
            .map(|(n, v)| (n, v, "None"))
            .collect();
        if !values.is_empty() {
            let dims = [dims[0], dims[1], dims[2], ("ClassName", class.as_str())];
            lines.push(line(ts, &dims, &values));
        }
    }
    lines
}

/// A window's label-free side: `ProfiledCaptures`, and `DriftScore` /
/// `DriftAlert` (when the version has a reference) and `EstimatedAP50` with
/// its band (when it has a calibration), by model and granularity. The
/// features that moved ride along as `DriftedFeatures` (a property, not a
/// metric: Logs Insights shows it beside the alarm's datapoint).
pub fn drift_line(d: &WindowDrift) -> String {
    let dims = [
        ("ModelName", d.model.name.as_str()),
        ("ModelVersion", d.model.version.as_str()),
        ("Granularity", d.window.granularity.as_str()),
    ];
    let mut metrics = vec![("ProfiledCaptures", d.profiled as f64, "Count")];
    if let Some(r) = &d.drift {
        metrics.push(("DriftScore", r.score, "None"));
        metrics.push(("DriftAlert", f64::from(u8::from(r.alert)), "Count"));
    }
    if let Some(e) = &d.estimated_ap50 {
        metrics.push(("EstimatedAP50", e.value, "None"));
        metrics.push(("EstimatedAP50Low", e.low, "None"));
        metrics.push(("EstimatedAP50High", e.high, "None"));
    }
    let mut event: Value =
        serde_json::from_str(&line(d.window.start.timestamp_millis(), &dims, &metrics))
            .expect("line writes JSON");
    if let Some(r) = &d.drift {
        event["DriftedFeatures"] = Value::from(r.features.join(","));
    }
    event.to_string()
}

/// One lost capture (the inference function answered, S3 stayed down):
/// `CaptureFailures` by model, with the capture's id so the logged record
/// can be found.
pub fn capture_failure_line(record: &CaptureRecord, timestamp_ms: i64) -> String {
    let mut event: Value = serde_json::from_str(&line(
        timestamp_ms,
        &[
            ("ModelName", record.model.name.as_str()),
            ("ModelVersion", record.model.version.as_str()),
        ],
        &[("CaptureFailures", 1.0, "Count")],
    ))
    .expect("line writes JSON");
    event["capture_id"] = Value::from(record.id.to_string());
    event.to_string()
}

/// One failed delivery to a sink (`Sink`: `observe`), counted where it can't fail: in the logs.
pub fn sink_failure_line(timestamp_ms: i64, sink: &str) -> String {
    line(
        timestamp_ms,
        &[("Sink", sink)],
        &[("SinkFailures", 1.0, "Count")],
    )
}

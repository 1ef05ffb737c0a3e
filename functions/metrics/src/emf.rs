//! CloudWatch Embedded Metric Format: log lines CloudWatch turns into metrics
//! (namespace `ModelObservability`). Limits checked here, not by CloudWatch's
//! silence: at most 100 metrics per directive, 30 dimensions per set.

use modelobs_core::records::ImageEval;
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

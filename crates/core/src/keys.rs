//! The S3 key layout of the one data bucket. Every key is built (and parsed)
//! here and nowhere else; docs/data-contract.md describes it.
//!
//! Time partitions (`dt=YYYY-MM-DD/hr=HH`) are by capture time in UTC, so a
//! window's evaluations are one prefix listing away.

use chrono::{DateTime, NaiveDate, Timelike, Utc};

use crate::error::CoreError;
use crate::records::{CaptureId, Granularity, Window};

pub const CAPTURE_IMAGES: &str = "captures/images/";
pub const CAPTURE_PREDICTIONS: &str = "captures/predictions/";
pub const SAMPLES: &str = "samples/";
pub const LABELS: &str = "labels/";
pub const LABEL_HISTORY: &str = "labels/history/";
pub const EVALS: &str = "evals/";
pub const WINDOWS: &str = "windows/";
/// Users drop images here for batch prediction.
pub const INCOMING: &str = "incoming/";
pub const INCOMING_REJECTED: &str = "incoming-rejected/";
/// Tasks for the local labelers.
pub const LABELING_QUEUE: &str = "labeling/queue/";

fn partition(t: DateTime<Utc>) -> String {
    format!("dt={}/hr={:02}", t.format("%Y-%m-%d"), t.hour())
}

/// `captures/images/dt=YYYY-MM-DD/hr=HH/<id>.<ext>`
pub fn capture_image(id: CaptureId, captured_at: DateTime<Utc>, ext: &str) -> String {
    format!("{CAPTURE_IMAGES}{}/{id}.{ext}", partition(captured_at))
}

/// `captures/predictions/dt=YYYY-MM-DD/hr=HH/<id>.json`
pub fn capture_record(id: CaptureId, captured_at: DateTime<Utc>) -> String {
    format!("{CAPTURE_PREDICTIONS}{}/{id}.json", partition(captured_at))
}

/// `samples/<id>.json`
pub fn sample(id: CaptureId) -> String {
    format!("{SAMPLES}{id}.json")
}

/// `labels/<id>.json`: the newest label version.
pub fn label(id: CaptureId) -> String {
    format!("{LABELS}{id}.json")
}

/// `labels/history/<id>/<version>.json`: every version ever received.
pub fn label_history(id: CaptureId, version: i64) -> String {
    format!("{LABEL_HISTORY}{id}/{version}.json")
}

/// `labeling/queue/<id>.json`
pub fn labeling_task(id: CaptureId) -> String {
    format!("{LABELING_QUEUE}{id}.json")
}

/// `evals/dt=YYYY-MM-DD/hr=HH/<id>.json`, partitioned by capture time.
pub fn image_eval(id: CaptureId, captured_at: DateTime<Utc>) -> String {
    format!("{EVALS}{}/{id}.json", partition(captured_at))
}

/// The prefix holding every evaluation of captures in `window`.
pub fn image_evals_prefix(window: &Window) -> String {
    match window.granularity {
        Granularity::Hour => format!("{EVALS}{}/", partition(window.start)),
        Granularity::Day => format!("{EVALS}dt={}/", window.start.format("%Y-%m-%d")),
    }
}

/// The prefix holding every capture record of `window`.
pub fn capture_records_prefix(window: &Window) -> String {
    match window.granularity {
        Granularity::Hour => format!("{CAPTURE_PREDICTIONS}{}/", partition(window.start)),
        Granularity::Day => format!(
            "{CAPTURE_PREDICTIONS}dt={}/",
            window.start.format("%Y-%m-%d")
        ),
    }
}

fn window_start(window: &Window) -> String {
    match window.granularity {
        Granularity::Hour => window.start.format("%Y-%m-%dT%H").to_string(),
        Granularity::Day => window.start.format("%Y-%m-%d").to_string(),
    }
}

/// A model version as a key segment: letters, digits, `.`, `_`, `-` only, so
/// a version can never escape its prefix.
pub fn check_segment(s: &str) -> Result<&str, CoreError> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(s)
    } else {
        Err(CoreError::InvalidKey {
            key: s.to_string(),
            why: "a key segment may hold only letters, digits, '.', '_' and '-'".into(),
        })
    }
}

/// `windows/<hour|day>/<start>/<model-version>.json`, start as `2026-11-26T22` or `2026-11-26`.
pub fn window_metrics(window: &Window, model_version: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{WINDOWS}{}/{}/{}.json",
        window.granularity.as_str(),
        window_start(window),
        check_segment(model_version)?
    ))
}

/// What a capture record key says about its capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureKey {
    pub id: CaptureId,
    pub date: NaiveDate,
    pub hour: u32,
}

/// Parses `captures/predictions/dt=YYYY-MM-DD/hr=HH/<id>.json`; anything else
/// is not a capture record of ours. Keys from S3 events must be URL-decoded first.
pub fn parse_capture_record(key: &str) -> Result<CaptureKey, CoreError> {
    let bad = |why: &str| CoreError::InvalidKey {
        key: key.to_string(),
        why: why.to_string(),
    };
    let rest = key
        .strip_prefix(CAPTURE_PREDICTIONS)
        .ok_or_else(|| bad("not under captures/predictions/"))?;
    let mut parts = rest.split('/');
    let (Some(dt), Some(hr), Some(file), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected dt=YYYY-MM-DD/hr=HH/<id>.json"));
    };
    let date = dt
        .strip_prefix("dt=")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| bad("bad dt= partition"))?;
    let hour = hr
        .strip_prefix("hr=")
        .filter(|h| h.len() == 2)
        .and_then(|h| h.parse::<u32>().ok())
        .filter(|&h| h < 24)
        .ok_or_else(|| bad("bad hr= partition"))?;
    let id = file
        .strip_suffix(".json")
        .and_then(|s| CaptureId::parse(s).ok())
        .ok_or_else(|| bad("file name is not <uuid>.json"))?;
    Ok(CaptureKey { id, date, hour })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 7, 42, 13).unwrap()
    }

    #[test]
    fn keys_are_time_partitioned() {
        let id = CaptureId::new(t());
        assert_eq!(
            capture_image(id, t(), "jpg"),
            format!("captures/images/dt=2026-11-26/hr=07/{id}.jpg")
        );
        let rec = capture_record(id, t());
        assert_eq!(
            rec,
            format!("captures/predictions/dt=2026-11-26/hr=07/{id}.json")
        );
        assert_eq!(
            parse_capture_record(&rec).unwrap(),
            CaptureKey {
                id,
                date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
                hour: 7
            }
        );
        assert_eq!(
            image_eval(id, t()),
            format!("evals/dt=2026-11-26/hr=07/{id}.json")
        );
        assert_eq!(
            label_history(id, 17),
            format!("labels/history/{id}/17.json")
        );
    }

    #[test]
    fn window_keys_and_prefixes() {
        let hour = Window::containing(Granularity::Hour, t());
        let day = Window::containing(Granularity::Day, t());
        assert_eq!(
            window_metrics(&hour, "1.2.0").unwrap(),
            "windows/hour/2026-11-26T07/1.2.0.json"
        );
        assert_eq!(
            window_metrics(&day, "v3").unwrap(),
            "windows/day/2026-11-26/v3.json"
        );
        assert!(image_eval(CaptureId::new(t()), t()).starts_with(&image_evals_prefix(&hour)));
        assert!(image_eval(CaptureId::new(t()), t()).starts_with(&image_evals_prefix(&day)));
        assert_eq!(image_evals_prefix(&day), "evals/dt=2026-11-26/");
        assert_eq!(
            capture_records_prefix(&hour),
            "captures/predictions/dt=2026-11-26/hr=07/"
        );
    }

    #[test]
    fn model_versions_cannot_escape_their_prefix() {
        let w = Window::containing(Granularity::Hour, t());
        for bad in ["", "..", "a/b", "v 1", "ü"] {
            assert!(window_metrics(&w, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn foreign_keys_are_refused() {
        for key in [
            "captures/images/dt=2026-11-26/hr=07/x.jpg",
            "captures/predictions/dt=2026-11-26/hr=7/0193.json",
            "captures/predictions/dt=2026-13-26/hr=07/0193.json",
            "captures/predictions/dt=2026-11-26/hr=07/not-a-uuid.json",
            "captures/predictions/dt=2026-11-26/hr=07/sub/0193.json",
        ] {
            assert!(parse_capture_record(key).is_err(), "{key}");
        }
    }
}

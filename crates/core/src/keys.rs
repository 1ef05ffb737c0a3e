//! The S3 key layout of the one data bucket. Every key is built (and parsed)
//! here and nowhere else; docs/data-contract.md describes it.
//!
//! Time partitions (`dt=YYYY-MM-DD/hr=HH`) are by capture time in UTC, so a
//! window's evaluations are one prefix listing away.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

use crate::classes::CocoClass;
use crate::error::CoreError;
use crate::records::{CaptureId, Granularity, Window};

pub const CAPTURE_IMAGES: &str = "captures/images/";
pub const CAPTURE_PREDICTIONS: &str = "captures/predictions/";
pub const SAMPLES: &str = "samples/";
/// The sampler's daily quota slots (`crate::sampling`).
pub const SAMPLE_SLOTS: &str = "samples/slots/";
pub const LABELS: &str = "labels/";
pub const LABEL_HISTORY: &str = "labels/history/";
pub const EVALS: &str = "evals/";
pub const WINDOWS: &str = "windows/";
/// Users drop images here for batch prediction.
pub const INCOMING: &str = "incoming/";
pub const INCOMING_REJECTED: &str = "incoming-rejected/";
/// Tasks for the local labelers.
pub const LABELING_QUEUE: &str = "labeling/queue/";
/// What shadow models answered on the captures (`shadow_capture_record`).
pub const CAPTURE_SHADOWS: &str = "captures/shadow/";
/// Label-free profile windows, their pending deltas and references (`profile_window`).
pub const PROFILES: &str = "profiles/";
pub const PROFILES_PENDING: &str = "profiles/pending/";
pub const PROFILES_REFERENCE: &str = "profiles/reference/";
/// The model registry: `models/<name>/<version>/` (`model_object`).
pub const MODELS: &str = "models/";

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

/// The capture record of `id`, found from the time the id carries.
pub fn capture_record_of(id: CaptureId) -> Option<String> {
    id.captured_at().map(|t| capture_record(id, t))
}

/// Written once the metrics queue has the message for this label version.
pub fn label_notified(id: CaptureId, version: i64) -> String {
    format!("{LABEL_HISTORY}{id}/{version}.queued")
}

/// `samples/<id>.json`
pub fn sample(id: CaptureId) -> String {
    format!("{SAMPLES}{id}.json")
}

/// `samples/slots/<YYYY-MM-DD>/all/`: the overall daily budget's slots.
pub fn budget_slots_prefix(day: NaiveDate) -> String {
    format!("{SAMPLE_SLOTS}{}/all/", day.format("%Y-%m-%d"))
}

/// `samples/slots/<YYYY-MM-DD>/all/<n>`: one unit of the daily budget.
pub fn budget_slot(day: NaiveDate, n: u32) -> String {
    format!("{}{n}", budget_slots_prefix(day))
}

/// `samples/slots/<YYYY-MM-DD>/class/<class>/`: one class's daily quota,
/// the class name with `-` for a space (`traffic-light`).
pub fn class_slots_prefix(day: NaiveDate, class: &CocoClass) -> String {
    format!(
        "{SAMPLE_SLOTS}{}/class/{}/",
        day.format("%Y-%m-%d"),
        class.name.replace(' ', "-")
    )
}

/// `samples/slots/<YYYY-MM-DD>/class/<class>/<n>`: one unit of a class quota.
pub fn class_slot(day: NaiveDate, class: &CocoClass, n: u32) -> String {
    format!("{}{n}", class_slots_prefix(day, class))
}

/// `labels/<id>.json`: the newest label version.
pub fn label(id: CaptureId) -> String {
    format!("{LABELS}{id}.json")
}

/// The capture whose current label is at `key` (`labels/<id>.json`); keys
/// under `labels/history/` and anything else are not current labels.
pub fn parse_label(key: &str) -> Result<CaptureId, CoreError> {
    key.strip_prefix(LABELS)
        .filter(|rest| !rest.contains('/'))
        .and_then(|rest| rest.strip_suffix(".json"))
        .and_then(|id| CaptureId::parse(id).ok())
        .ok_or_else(|| CoreError::InvalidKey {
            key: key.to_string(),
            why: "not labels/<capture id>.json".into(),
        })
}

/// `labels/history/<id>/<version>.json`: every version ever received.
pub fn label_history(id: CaptureId, version: i64) -> String {
    format!("{LABEL_HISTORY}{id}/{version}.json")
}

/// `labeling/queue/<id>.json`
pub fn labeling_task(id: CaptureId) -> String {
    format!("{LABELING_QUEUE}{id}.json")
}

/// `captures/shadow/dt=YYYY-MM-DD/hr=HH/<id>/<model-version>.json`: a shadow
/// model's answer on a capture, beside (not among) the capture records, so it
/// triggers no sampling and every shadow of one capture is one listing away.
pub fn shadow_capture_record(
    id: CaptureId,
    captured_at: DateTime<Utc>,
    model_version: &str,
) -> Result<String, CoreError> {
    Ok(format!(
        "{}{}.json",
        shadow_captures_of(id, captured_at),
        check_segment(model_version)?
    ))
}

/// The prefix holding every shadow answer on capture `id`.
pub fn shadow_captures_of(id: CaptureId, captured_at: DateTime<Utc>) -> String {
    format!("{CAPTURE_SHADOWS}{}/{id}/", partition(captured_at))
}

/// `evals/dt=YYYY-MM-DD/hr=HH/shadow/<model-version>/<id>.json`: a shadow
/// model's evaluation, under the same window prefix as the serving model's, so
/// a rollup finds both and tells them apart by the version they carry.
pub fn shadow_image_eval(
    id: CaptureId,
    captured_at: DateTime<Utc>,
    model_version: &str,
) -> Result<String, CoreError> {
    Ok(format!(
        "{EVALS}{}/shadow/{}/{id}.json",
        partition(captured_at),
        check_segment(model_version)?
    ))
}

/// `models/<name>/<version>/<file>`: one file of a registered model version.
pub fn model_object(name: &str, version: &str, file: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{}{}",
        model_version_prefix(name, version)?,
        check_segment(file)?
    ))
}

/// `models/<name>/<version>/`
pub fn model_version_prefix(name: &str, version: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{MODELS}{}/{}/",
        check_segment(name)?,
        check_segment(version)?
    ))
}

/// `models/<name>/promoted.json`: the version `modelobs model promote` chose last.
pub fn model_promotion(name: &str) -> Result<String, CoreError> {
    Ok(format!("{MODELS}{}/promoted.json", check_segment(name)?))
}

/// `(name, version)` of a registry key `models/<name>/<version>/model.json`.
pub fn parse_model_metadata_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(MODELS)?.strip_suffix("/model.json")?;
    let (name, version) = rest.split_once('/')?;
    (check_segment(name).is_ok() && check_segment(version).is_ok()).then_some((name, version))
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

/// `profiles/<hour|day>/<start>/<model-version>.json`: a [`crate::records::ProfileWindow`].
pub fn profile_window(window: &Window, model_version: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{PROFILES}{}/{}/{}.json",
        window.granularity.as_str(),
        window_start(window),
        check_segment(model_version)?
    ))
}

/// The prefix of every profile window of this granularity starting on
/// `date` (all model versions), like [`window_metrics_on`].
pub fn profile_windows_on(granularity: Granularity, date: NaiveDate) -> String {
    let day = date.format("%Y-%m-%d");
    match granularity {
        Granularity::Hour => format!("{PROFILES}hour/{day}T"),
        Granularity::Day => format!("{PROFILES}day/{day}/"),
    }
}

/// The prefix of every profile window of this granularity.
pub fn profile_windows_of(granularity: Granularity) -> String {
    format!("{PROFILES}{}/", granularity.as_str())
}

/// Parses [`profile_window`] keys: the window and the model version.
pub fn parse_profile_window(key: &str) -> Result<(Window, String), CoreError> {
    let bad = |why: &str| CoreError::InvalidKey {
        key: key.to_string(),
        why: why.to_string(),
    };
    let rest = key
        .strip_prefix(PROFILES)
        .ok_or_else(|| bad("not under profiles/"))?;
    let mut parts = rest.splitn(3, '/');
    let (Some(granularity), Some(start), Some(file)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected profiles/<hour|day>/<start>/<version>.json"));
    };
    let version = file
        .strip_suffix(".json")
        .ok_or_else(|| bad("not a .json"))?;
    check_segment(version)?;
    let window = parse_window_start(granularity, start).ok_or_else(|| bad("bad window start"))?;
    Ok((window, version.to_string()))
}

fn parse_window_start(granularity: &str, start: &str) -> Option<Window> {
    match granularity {
        "hour" => NaiveDateTime::parse_from_str(&format!("{start}:00"), "%Y-%m-%dT%H:%M")
            .ok()
            .map(|t| Window {
                granularity: Granularity::Hour,
                start: t.and_utc(),
            }),
        "day" => NaiveDate::parse_from_str(start, "%Y-%m-%d")
            .ok()
            .map(|d| Window {
                granularity: Granularity::Day,
                start: d.and_time(NaiveTime::MIN).and_utc(),
            }),
        _ => None,
    }
}

/// `profiles/pending/<hour-start>/<model-version>/<capture-id>.json`: one
/// capture's [`crate::records::ProfileDelta`], until the rollup folds it.
pub fn profile_delta(
    id: CaptureId,
    captured_at: DateTime<Utc>,
    model_version: &str,
) -> Result<String, CoreError> {
    let hour = Window::containing(Granularity::Hour, captured_at);
    Ok(format!(
        "{PROFILES_PENDING}{}/{}/{id}.json",
        window_start(&hour),
        check_segment(model_version)?
    ))
}

/// Parses [`profile_delta`] keys: the hour window, the model version and the capture.
pub fn parse_profile_delta(key: &str) -> Result<(Window, String, CaptureId), CoreError> {
    let bad = |why: &str| CoreError::InvalidKey {
        key: key.to_string(),
        why: why.to_string(),
    };
    let rest = key
        .strip_prefix(PROFILES_PENDING)
        .ok_or_else(|| bad("not under profiles/pending/"))?;
    let mut parts = rest.splitn(3, '/');
    let (Some(start), Some(version), Some(file)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected profiles/pending/<hour>/<version>/<id>.json"));
    };
    let window = parse_window_start("hour", start).ok_or_else(|| bad("bad hour"))?;
    check_segment(version)?;
    let id = file
        .strip_suffix(".json")
        .and_then(|id| id.parse::<uuid::Uuid>().ok())
        .ok_or_else(|| bad("not <capture-id>.json"))?;
    Ok((window, version.to_string(), CaptureId(id)))
}

/// `profiles/reference/<model-version>.json`: a [`crate::records::ProfileReference`].
pub fn profile_reference(model_version: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{PROFILES_REFERENCE}{}.json",
        check_segment(model_version)?
    ))
}

/// A key as it arrives in an S3 event notification: URL-encoded, with `+`
/// for a space (AWS and emulators alike).
pub fn decode_event_key(raw: &str) -> Result<String, CoreError> {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| CoreError::InvalidKey {
            key: raw.to_string(),
            why: format!("not UTF-8 once URL-decoded: {e}"),
        })
}

/// Where a rejected `incoming/` object goes, and its reason file.
pub fn rejected_upload(incoming_key: &str) -> (String, String) {
    let rest = incoming_key.strip_prefix(INCOMING).unwrap_or(incoming_key);
    let key = format!("{INCOMING_REJECTED}{rest}");
    let reason = format!("{key}.reason.json");
    (key, reason)
}

/// Where the touch markers live: `windows/touched/`.
pub const WINDOWS_TOUCHED: &str = "windows/touched/";

/// `windows/touched/<hour|day>/<start>/<model-version>/`: the touch markers of
/// a window whose evaluations changed since the last rollup.
pub fn window_touched(window: &Window, model_version: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{WINDOWS_TOUCHED}{}/{}/{}/",
        window.granularity.as_str(),
        window_start(window),
        check_segment(model_version)?
    ))
}

/// `windows/touched/<hour|day>/<start>/<model-version>/<touch>`: one touch of
/// a window, written by the metrics handler, deleted by the rollup that saw
/// it. Each touch is a new key (`touch` unique per message and time), so a
/// rollup never deletes a touch it did not read (see the rollup).
pub fn window_touch(
    window: &Window,
    model_version: &str,
    touch: &str,
) -> Result<String, CoreError> {
    Ok(format!(
        "{}{}",
        window_touched(window, model_version)?,
        check_segment(touch)?
    ))
}

/// What a touch marker key says: which window of which model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchKey {
    pub window: Window,
    pub model_version: String,
}

/// Parses [`window_touch`] keys; anything else under `windows/touched/` is not ours.
pub fn parse_window_touch(key: &str) -> Result<TouchKey, CoreError> {
    let bad = |why: &str| CoreError::InvalidKey {
        key: key.to_string(),
        why: why.to_string(),
    };
    let rest = key
        .strip_prefix(WINDOWS_TOUCHED)
        .ok_or_else(|| bad("not under windows/touched/"))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [granularity, start, version, touch] = parts[..] else {
        return Err(bad("expected <hour|day>/<start>/<model-version>/<touch>"));
    };
    // chrono's %Y takes a sign: `-026-11-26T07` is 13 characters too, and
    // window_touch never writes it (found by `make fuzz`).
    if !start.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad("bad window start"));
    }
    let window = match granularity {
        "hour" => NaiveDateTime::parse_from_str(&format!("{start}:00"), "%Y-%m-%dT%H:%M")
            .ok()
            .filter(|_| start.len() == 13)
            .map(|t| Window {
                granularity: Granularity::Hour,
                start: t.and_utc(),
            }),
        "day" => NaiveDate::parse_from_str(start, "%Y-%m-%d")
            .ok()
            .filter(|_| start.len() == 10)
            .map(|d| Window {
                granularity: Granularity::Day,
                start: d.and_time(NaiveTime::MIN).and_utc(),
            }),
        _ => return Err(bad("granularity is not hour or day")),
    }
    .ok_or_else(|| bad("bad window start"))?;
    check_segment(version).map_err(|_| bad("bad model version segment"))?;
    check_segment(touch).map_err(|_| bad("bad touch segment"))?;
    Ok(TouchKey {
        window,
        model_version: version.to_string(),
    })
}

/// Prefix of the stored windows of `granularity` that start on `date`:
/// `windows/hour/2026-11-26T` (its 24 hours) or `windows/day/2026-11-26/`.
pub fn window_metrics_on(granularity: Granularity, date: NaiveDate) -> String {
    let day = date.format("%Y-%m-%d");
    match granularity {
        Granularity::Hour => format!("{WINDOWS}hour/{day}T"),
        Granularity::Day => format!("{WINDOWS}day/{day}/"),
    }
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

    #[test]
    fn registry_keys_stay_inside_their_prefix() {
        assert_eq!(
            model_object("nanodet", "ft-1a2b-s1", "model.json").unwrap(),
            "models/nanodet/ft-1a2b-s1/model.json"
        );
        assert_eq!(
            parse_model_metadata_key("models/nanodet/ft-1a2b-s1/model.json"),
            Some(("nanodet", "ft-1a2b-s1"))
        );
        assert_eq!(
            parse_model_metadata_key("models/nanodet/promoted.json"),
            None
        );
        assert_eq!(parse_model_metadata_key("models/a/b/c/model.json"), None);
        assert!(model_object("nanodet", "..", "model.json").is_err());
        assert!(model_object("nano/det", "v1", "model.json").is_err());
        assert!(model_object("nanodet", "v1", "../x").is_err());
        assert_eq!(
            model_promotion("nanodet").unwrap(),
            "models/nanodet/promoted.json"
        );
    }

    #[test]
    fn shadow_keys_sit_in_the_captures_window_prefix() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 0).unwrap();
        let id = CaptureId::new(t);
        let eval = shadow_image_eval(id, t, "ft-1").unwrap();
        assert_eq!(
            eval,
            format!("evals/dt=2026-11-26/hr=07/shadow/ft-1/{id}.json")
        );
        for g in [Granularity::Hour, Granularity::Day] {
            assert!(eval.starts_with(&image_evals_prefix(&Window::containing(g, t))));
        }
        let record = shadow_capture_record(id, t, "ft-1").unwrap();
        assert!(record.starts_with(&shadow_captures_of(id, t)));
        assert!(!record.starts_with(CAPTURE_PREDICTIONS));
        assert!(shadow_image_eval(id, t, "../x").is_err());
    }

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
        assert_eq!(parse_label(&label(id)).unwrap(), id);
        for other in [
            label_history(id, 17),
            label_notified(id, 17),
            format!("labels/{id}.txt"),
            "labels/not-an-id.json".into(),
            format!("samples/{id}.json"),
        ] {
            assert!(parse_label(&other).is_err(), "{other}");
        }
    }

    #[test]
    fn slot_keys_are_per_day_and_class() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(budget_slot(day, 7), "samples/slots/2026-11-26/all/7");
        let light = crate::classes::by_name("traffic light").unwrap();
        assert_eq!(
            class_slot(day, &light, 0),
            "samples/slots/2026-11-26/class/traffic-light/0"
        );
        assert!(class_slot(day, &light, 3).starts_with(&class_slots_prefix(day, &light)));
        assert!(budget_slot(day, 3).starts_with(&budget_slots_prefix(day)));
        for c in crate::classes::coco80() {
            let seg = class_slots_prefix(day, &c);
            let seg = seg.trim_end_matches('/').rsplit('/').next().unwrap();
            assert!(check_segment(seg).is_ok(), "{seg}");
        }
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
    fn touch_keys_round_trip_and_stay_in_their_window() {
        let hour = Window::containing(Granularity::Hour, t());
        let day = Window::containing(Granularity::Day, t());
        let key = window_touch(&hour, "1.2.0", "1764143000000-m-1").unwrap();
        assert_eq!(
            key,
            "windows/touched/hour/2026-11-26T07/1.2.0/1764143000000-m-1"
        );
        assert!(key.starts_with(&window_touched(&hour, "1.2.0").unwrap()));
        assert_eq!(
            parse_window_touch(&key).unwrap(),
            TouchKey {
                window: hour,
                model_version: "1.2.0".into()
            }
        );
        let key = window_touch(&day, "v3", "x").unwrap();
        assert_eq!(parse_window_touch(&key).unwrap().window, day);
        assert!(window_touch(&day, "v3", "a/b").is_err());
        // A signed year parses with chrono's %Y but is no key we write.
        for signed in [
            "windows/touched/hour/-026-11-26T07/v3/x",
            "windows/touched/day/+026-11-26/v3/x",
        ] {
            assert!(parse_window_touch(signed).is_err(), "{signed}");
        }
        for bad in [
            "windows/touched/hour/2026-11-26T07/v3",
            "windows/touched/week/2026-11-26/v3/x",
            "windows/touched/hour/2026-11-26T7/v3/x",
            "windows/touched/hour/2026-11-26T24/v3/x",
            "windows/touched/day/2026-11-26T07/v3/x",
            "windows/touched/day/2026-11-26/v 3/x",
            "windows/touched/day/2026-11-26/v3/x/y",
            "windows/hour/2026-11-26T07/v3.json",
        ] {
            assert!(parse_window_touch(bad).is_err(), "{bad}");
        }
        let date = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert!(
            window_metrics(&hour, "v3")
                .unwrap()
                .starts_with(&window_metrics_on(Granularity::Hour, date))
        );
        assert!(
            window_metrics(&day, "v3")
                .unwrap()
                .starts_with(&window_metrics_on(Granularity::Day, date))
        );
        assert!(
            !window_metrics(&day, "v3")
                .unwrap()
                .starts_with(&window_metrics_on(Granularity::Hour, date))
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
    fn event_keys_are_url_decoded() {
        assert_eq!(
            decode_event_key("incoming/Happy+Face%281%29.jpg").unwrap(),
            "incoming/Happy Face(1).jpg"
        );
        assert_eq!(decode_event_key("a%2Fb%2Bc").unwrap(), "a/b+c");
        assert!(decode_event_key("bad%FF").is_err());
        assert_eq!(
            rejected_upload("incoming/x/notes.txt"),
            (
                "incoming-rejected/x/notes.txt".to_string(),
                "incoming-rejected/x/notes.txt.reason.json".to_string()
            )
        );
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

    #[test]
    fn profile_keys_round_trip_and_refuse_what_is_not_theirs() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-26T22:41:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let id = CaptureId::parse("019ac1f2-0000-7000-8000-000000000001").unwrap();
        let delta = profile_delta(id, t, "2026-11-01").unwrap();
        assert_eq!(
            delta,
            "profiles/pending/2026-11-26T22/2026-11-01/019ac1f2-0000-7000-8000-000000000001.json"
        );
        let (w, v, back) = parse_profile_delta(&delta).unwrap();
        assert_eq!(
            (w, v.as_str(), back),
            (Window::containing(Granularity::Hour, t), "2026-11-01", id)
        );
        for g in [Granularity::Hour, Granularity::Day] {
            let w = Window::containing(g, t);
            let key = profile_window(&w, "v1").unwrap();
            assert!(key.starts_with(&profile_windows_of(g)));
            assert_eq!(parse_profile_window(&key).unwrap(), (w, "v1".to_string()));
        }
        for g in [Granularity::Hour, Granularity::Day] {
            assert!(
                profile_window(&Window::containing(g, t), "v1")
                    .unwrap()
                    .starts_with(&profile_windows_on(g, t.date_naive()))
            );
        }
        assert!(profile_delta(id, t, "../x").is_err());
        assert!(parse_profile_delta("profiles/pending/2026-11-26T22/v1/nope.json").is_err());
        assert!(parse_profile_window("profiles/week/2026-11-26/v1.json").is_err());
        assert_eq!(
            profile_reference("v1").unwrap(),
            "profiles/reference/v1.json"
        );
    }
}

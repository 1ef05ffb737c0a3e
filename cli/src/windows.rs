//! `modelobs metrics`: the windows of a time range, labelled or not, as a
//! table or a JSON array: the stored `WindowMetrics` (`windows/<hour|day>/...`)
//! flattened, with each window's label-free side (`drift`, `estimated_ap50`,
//! `calibration`, `profiled_captures`: `modelobs_pipeline::profiles::views`).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use clap::{Args, ValueEnum};
use modelobs_adapters::ObjectStore;

use modelobs_core::records::Granularity;

use modelobs_pipeline::profiles::{self, WindowView};
use modelobs_pipeline::threshold::DEFAULT_SCORE_THRESHOLD;

use crate::CliError;

#[derive(Clone, Copy, ValueEnum)]
pub enum GranularityArg {
    Hour,
    Day,
}

impl From<GranularityArg> for Granularity {
    fn from(g: GranularityArg) -> Self {
        match g {
            GranularityArg::Hour => Granularity::Hour,
            GranularityArg::Day => Granularity::Day,
        }
    }
}

#[derive(Args)]
pub struct MetricsArgs {
    /// First window start, UTC: a date (2026-11-26) or a time (2026-11-26T07:00, ...Z).
    #[arg(long)]
    from: String,
    /// End, UTC: a date includes that whole day; a time is exclusive.
    #[arg(long)]
    to: String,
    #[arg(long, value_enum, default_value = "hour")]
    granularity: GranularityArg,
    /// Only this model version.
    #[arg(long)]
    model_version: Option<String>,
    /// Print a JSON array of windows (WindowMetrics fields, `drift`,
    /// `estimated_ap50`) instead of the table.
    #[arg(long)]
    json: bool,
    /// The data bucket (default: $DATA_BUCKET; AWS_ENDPOINT_URL for LocalStack).
    #[arg(long)]
    bucket: Option<String>,
}

fn bad_arg(name: &str, problem: impl ToString) -> CliError {
    CliError::BadInput {
        path: name.to_string(),
        problem: problem.to_string(),
    }
}

/// A date is its midnight (or, for an end, the next midnight); a time is itself.
pub fn parse_instant(name: &str, s: &str, end: bool) -> Result<DateTime<Utc>, CliError> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let midnight = d.and_time(chrono::NaiveTime::MIN).and_utc();
        return Ok(if end {
            midnight + Duration::days(1)
        } else {
            midnight
        });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bare = s.trim_end_matches('Z');
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H"] {
        let padded = if format.ends_with("%H") {
            format!("{bare}:00")
        } else {
            bare.to_string()
        };
        let format = if format.ends_with("%H") {
            "%Y-%m-%dT%H:%M"
        } else {
            format
        };
        if let Ok(t) = NaiveDateTime::parse_from_str(&padded, format) {
            return Ok(t.and_utc());
        }
    }
    Err(bad_arg(
        name,
        format!("{s:?} is not a date (2026-11-26) or a UTC time (2026-11-26T07:00)"),
    ))
}

/// Every window of `granularity` starting in `[from, to)`, labelled or not,
/// with its label-free side: what `modelobs metrics` and `modelobs report
/// --bucket` show.
pub async fn load<S: ObjectStore>(
    store: &S,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    model_version: Option<&str>,
) -> anyhow::Result<Vec<WindowView>> {
    let labelled = profiles::stored_metrics(store, granularity, from, to, model_version).await?;
    let threshold = labelled.first().map_or(DEFAULT_SCORE_THRESHOLD, |m| {
        m.at_serving_threshold.score_threshold
    });
    Ok(profiles::views(
        store,
        granularity,
        from,
        to,
        model_version,
        labelled,
        threshold,
    )
    .await?)
}

fn num(v: f64) -> String {
    if v < 0.0 {
        "-".into()
    } else {
        format!("{v:.3}")
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// One row per window; `-` where a figure is undefined.
pub fn table(views: &[WindowView]) -> String {
    let mut out = format!(
        "{:<17} {:<20} {:>6} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>6} {:>17}\n",
        "window",
        "model version",
        "images",
        "captures",
        "coverage",
        "AP",
        "AP50",
        "AP75",
        "AR100",
        "P",
        "R",
        "F1",
        "lag s",
        "drift",
        "est. AP50 [band]"
    );
    for v in views {
        let m = &v.metrics;
        let start = match m.window.granularity {
            Granularity::Hour => m.window.start.format("%Y-%m-%d %H:00"),
            Granularity::Day => m.window.start.format("%Y-%m-%d"),
        };
        let op = &m.at_serving_threshold;
        let drift = v.drift.as_ref().map_or_else(
            || "-".to_string(),
            |d| format!("{:.1}{}", d.score, if d.alert { "!" } else { "" }),
        );
        let estimate = v.estimated_ap50.map_or_else(
            || "-".to_string(),
            |e| format!("{:.2} [{:.2},{:.2}]", e.value, e.low, e.high),
        );
        out.push_str(&format!(
            "{:<17} {:<20} {:>6} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>6} {:>17}\n",
            start.to_string(),
            m.model.version,
            m.images_labelled,
            m.captures_in_window,
            opt(m.label_coverage, 3),
            num(m.coco.ap),
            num(m.coco.ap50),
            num(m.coco.ap75),
            num(m.coco.ar100),
            opt(op.precision, 3),
            opt(op.recall, 3),
            opt(op.f1, 3),
            opt(m.mean_label_lag_s, 0),
            drift,
            estimate,
        ));
    }
    let alerts: Vec<String> = views
        .iter()
        .filter_map(|v| {
            let d = v.drift.as_ref().filter(|d| d.alert)?;
            Some(format!(
                "  {} {}: {}",
                v.metrics.window.start.format("%Y-%m-%d %H:00"),
                v.metrics.model.version,
                d.features.join(", ")
            ))
        })
        .collect();
    if !alerts.is_empty() {
        out.push_str("drift alerts (! above; features that moved):\n");
        out.push_str(&(alerts.join("\n") + "\n"));
    }
    if views.is_empty() {
        out.push_str("(no windows in this range)\n");
    }
    out
}

pub fn json(views: &[WindowView]) -> String {
    serde_json::to_string_pretty(views).expect("windows serialize")
}

pub fn run(args: &MetricsArgs) -> Result<(), CliError> {
    let from = parse_instant("--from", &args.from, false)?;
    let to = parse_instant("--to", &args.to, true)?;
    if to <= from {
        return Err(bad_arg("--to", "must be after --from"));
    }
    let bucket = crate::rollup::bucket(args.bucket.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?;
    let windows = runtime.block_on(async {
        let store = crate::bucket_store(&bucket).await;
        let version = args.model_version.as_deref();
        load(&store, args.granularity.into(), from, to, version).await
    })?;
    print!(
        "{}",
        if args.json {
            json(&windows) + "\n"
        } else {
            table(&windows)
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chrono::TimeZone;
    use modelobs_adapters::PutCondition;
    use modelobs_adapters::memory::MemoryStore;
    use modelobs_core::records::{
        CaptureRecord, GroundTruth, ImageEval, ModelRef, Window, WindowMetrics,
    };
    use modelobs_core::{keys, records};

    const CAPTURE: &[u8] = include_bytes!("../../events/records/capture-record.json");
    const TRUTH: &[u8] = include_bytes!("../../events/records/ground-truth.json");

    /// The fixture image, evaluated, as the only image of `window` for `version`.
    fn window(granularity: Granularity, hour: u32, version: &str) -> WindowMetrics {
        let mut capture: CaptureRecord = records::from_json(CAPTURE).unwrap();
        let truth: GroundTruth = records::from_json(TRUTH).unwrap();
        capture.captured_at = Utc.with_ymd_and_hms(2026, 11, 26, hour, 42, 0).unwrap();
        capture.model.version = version.into();
        let eval = ImageEval::evaluate(&capture, &truth, capture.captured_at).unwrap();
        let w = Window::containing(granularity, capture.captured_at);
        WindowMetrics::compute(
            w,
            ModelRef {
                name: "nanodet-coco".into(),
                version: version.into(),
            },
            &[eval],
            4,
            0.35,
            capture.captured_at,
        )
        .unwrap()
    }

    async fn store_with(windows: &[WindowMetrics]) -> MemoryStore {
        let store = MemoryStore::new();
        for m in windows {
            store
                .put(
                    &keys::window_metrics(&m.window, &m.model.version).unwrap(),
                    Bytes::from(records::to_json(m)),
                    "application/json",
                    PutCondition::Always,
                )
                .await
                .unwrap();
        }
        store
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, h, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn stored_windows_are_picked_by_range_granularity_and_version_in_order() {
        let store = store_with(&[
            window(Granularity::Hour, 9, "v2"),
            window(Granularity::Hour, 7, "v2"),
            window(Granularity::Hour, 7, "v1"),
            window(Granularity::Hour, 12, "v1"),
            window(Granularity::Day, 7, "v1"),
        ])
        .await;

        let got = profiles::stored_metrics(&store, Granularity::Hour, t(7), t(12), None)
            .await
            .unwrap();
        let seen: Vec<_> = got
            .iter()
            .map(|m| (m.window.start, m.model.version.as_str()))
            .collect();
        assert_eq!(seen, [(t(7), "v1"), (t(7), "v2"), (t(9), "v2")]);

        let v1 = profiles::stored_metrics(
            &store,
            Granularity::Hour,
            t(0),
            t(0) + Duration::days(1),
            Some("v1"),
        )
        .await
        .unwrap();
        assert_eq!(v1.len(), 2);
        let days = profiles::stored_metrics(
            &store,
            Granularity::Day,
            t(0),
            t(0) + Duration::days(1),
            None,
        )
        .await
        .unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].window.granularity, Granularity::Day);
    }

    #[tokio::test]
    async fn table_and_json_show_the_stored_figures() {
        let store = store_with(&[
            window(Granularity::Hour, 7, "v1"),
            window(Granularity::Hour, 9, "v1"),
        ])
        .await;
        let windows = profiles::stored_metrics(&store, Granularity::Hour, t(0), t(23), None)
            .await
            .unwrap();
        // no profile windows stored: the labelled ones alone, no drift made up
        let views = profiles::views(
            &store,
            Granularity::Hour,
            t(0),
            t(23),
            None,
            windows.clone(),
            0.35,
        )
        .await
        .unwrap();
        assert_eq!(views.len(), 2);

        let text = table(&views);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("window") && lines[0].contains("AP50"));
        let m = &windows[0];
        let cells: Vec<_> = lines[1].split_whitespace().collect();
        assert_eq!(cells[..4], ["2026-11-26", "07:00", "v1", "1"]);
        assert_eq!(cells[4], "4");
        assert_eq!(cells[5], "0.250", "coverage 1 of 4");
        assert_eq!(cells[6], format!("{:.3}", m.coco.ap));
        assert_eq!(cells[7], format!("{:.3}", m.coco.ap50));
        assert_eq!(
            cells[12],
            format!("{:.3}", m.at_serving_threshold.f1.unwrap())
        );
        assert_eq!(cells[14..], ["-", "-"], "no reference, no calibration");
        assert!(lines[2].starts_with("2026-11-26 09:00"));

        // what `modelobs report` reads: the WindowMetrics, whatever rides along
        let printed = json(&views);
        let back: Vec<WindowMetrics> = serde_json::from_str(&printed).unwrap();
        assert_eq!(back, windows);
        let raw: serde_json::Value = serde_json::from_str(&printed).unwrap();
        assert!(raw[0]["drift"].is_null() && raw[0]["estimated_ap50"].is_null());
        assert!(table(&[]).contains("no windows"));
    }

    #[test]
    fn dates_and_times() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        assert_eq!(
            parse_instant("--from", "2026-11-26", false).unwrap(),
            midnight
        );
        assert_eq!(
            parse_instant("--to", "2026-11-26", true).unwrap(),
            midnight + Duration::days(1)
        );
        for s in [
            "2026-11-26T07:00:00Z",
            "2026-11-26T07:00",
            "2026-11-26T07",
            "2026-11-26T08:00:00+01:00",
        ] {
            assert_eq!(
                parse_instant("--from", s, false).unwrap(),
                midnight + Duration::hours(7),
                "{s}"
            );
        }
        assert!(parse_instant("--from", "yesterday", false).is_err());
    }
}

//! Label-free windows (docs/drift.md): every capture's profile folded into
//! its hour's `ProfileWindow` of its model version, days summed from their
//! hours, each window tested for drift against the version's reference and
//! given an estimated AP50 calibrated on the labelled windows.
//!
//! # Each capture record read once
//!
//! The sampler reads every capture record anyway; it writes the record's
//! profile as a small `ProfileDelta` under `profiles/pending/<hour>/<version>/`
//! (`ProfileDelta::of`; a shadow model's record, which triggers no sampling,
//! gets its delta from the inference function that made it, `capture::shadow`).
//! The rollup ([`fold`]) lists the pending deltas, adds
//! them to their hour's window (compare-and-swap on the ETag it read), then
//! deletes exactly the deltas it folded; a day is rewritten as the sum of its
//! stored hours. Each hour window keeps the ids it folded, so a delta
//! delivered again after its fold is not counted twice. A run is O(new
//! captures + touched hours); a query is O(windows), never O(captures).
//!
//! # Drift and the estimate, when asked
//!
//! [`views`] (`modelobs metrics`) and [`fold`] (EMF for the alarms) test a
//! window against `profiles/reference/<version>.json`; an hour too small to
//! test reaches back up to two hours (`drift::trailing`). The AP50 estimate
//! is fitted on the labelled windows of the same version and granularity
//! among those asked for (`calibration`), and is `None` until there are
//! enough of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use futures_util::{StreamExt, stream};
use modelobs_adapters::{ObjectStore, PutCondition, PutOutcome, StoreError};
use modelobs_core::calibration::{self, Calibration, Point};
use modelobs_core::drift::{self, DEFAULT_ALPHA, ProfileSummary, WindowDriftReport};
use modelobs_core::records::{
    self, Granularity, ModelRef, ProfileDelta, ProfileReference, ProfileWindow, Window,
    WindowDrift, WindowMetrics,
};
use modelobs_core::{CoreError, keys};
use serde::Serialize;
use thiserror::Error;

use crate::sink::MetricsSink;

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key}: {source}")]
    Malformed { key: String, source: CoreError },
    /// A model directory's reference.json unreadable, or not its model's.
    #[error("{path}: {problem}")]
    BadReferenceFile { path: String, problem: String },
}

fn malformed(key: &str) -> impl FnOnce(CoreError) -> ProfileError + '_ {
    move |source| ProfileError::Malformed {
        key: key.to_string(),
        source,
    }
}

/// What one [`fold`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FoldReport {
    /// Hour windows written, with the deltas folded into each.
    pub hours: Vec<(String, usize)>,
    /// Day windows rewritten.
    pub days: Vec<String>,
    /// Hours another run wrote while this one read: left for the next run.
    pub contended: Vec<String>,
    /// Keys under `profiles/pending/` that are not deltas: left alone.
    pub foreign_keys: Vec<String>,
    /// Deltas that do not parse: left in place, the others folded.
    pub malformed: Vec<String>,
    /// Windows whose drift / estimate went to the sink.
    pub emitted: usize,
}

/// Folds every pending delta into its hour, rewrites the touched days, and
/// sends each touched window's drift to `sink`.
pub async fn fold<S: ObjectStore, M: MetricsSink>(
    store: &S,
    sink: &M,
    now: DateTime<Utc>,
    concurrency: usize,
) -> Result<FoldReport, ProfileError> {
    let mut report = FoldReport::default();
    let mut pending: BTreeMap<(DateTime<Utc>, String), Vec<String>> = BTreeMap::new();
    for o in store.list(keys::PROFILES_PENDING).await? {
        match keys::parse_profile_delta(&o.key) {
            Ok((hour, version, _)) => pending
                .entry((hour.start, version))
                .or_default()
                .push(o.key),
            Err(e) => {
                tracing::warn!(key = o.key, error = %e, "not a profile delta; left alone");
                report.foreign_keys.push(o.key);
            }
        }
    }
    let mut days: BTreeSet<(NaiveDate, String)> = BTreeSet::new();
    let mut hours_written: Vec<ProfileWindow> = Vec::new();
    for ((start, version), delta_keys) in pending {
        let hour = Window {
            granularity: Granularity::Hour,
            start,
        };
        let key = keys::profile_window(&hour, &version).map_err(malformed(&delta_keys[0]))?;
        let stored = store.get(&key).await?;
        let (etag, mut window) = match &stored {
            Some(o) => (
                Some(o.etag.clone()),
                Some(records::from_json::<ProfileWindow>(&o.body).map_err(malformed(&key))?),
            ),
            None => (None, None),
        };
        let deltas: Vec<(&String, Result<Option<ProfileDelta>, ProfileError>)> =
            stream::iter(&delta_keys)
                .map(|k| async move {
                    let read = match store.get(k).await {
                        Ok(Some(o)) => records::from_json::<ProfileDelta>(&o.body)
                            .map(Some)
                            .map_err(malformed(k)),
                        Ok(None) => Ok(None),
                        Err(e) => Err(e.into()),
                    };
                    (k, read)
                })
                .buffered(concurrency.max(1))
                .collect()
                .await;
        let mut folded = 0;
        // What this run may delete: the deltas it folded (or found folded
        // already). A malformed one stays where it is, reported, and does
        // not hold up the rest.
        let mut consumed = Vec::with_capacity(deltas.len());
        for (k, delta) in deltas {
            let d = match delta {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(ProfileError::Malformed { key, source }) => {
                    tracing::error!(key, error = %source, "malformed profile delta; left in place");
                    report.malformed.push(key);
                    continue;
                }
                Err(e) => return Err(e),
            };
            consumed.push(k);
            let w = window.get_or_insert_with(|| ProfileWindow {
                window: hour,
                model: d.model.clone(),
                computed_at: now,
                summary: ProfileSummary::default(),
                folded: Vec::new(),
            });
            if let Err(at) = w.folded.binary_search(&d.capture_id) {
                w.folded.insert(at, d.capture_id);
                w.summary.add(d.profile.as_ref());
                folded += 1;
            }
        }
        let Some(mut window) = window else {
            // Every delta vanished since the listing (another run folded them).
            continue;
        };
        window.computed_at = now;
        let condition = etag.map_or(PutCondition::IfAbsent, PutCondition::IfMatch);
        let body = Bytes::from(records::to_json(&window));
        match store.put(&key, body, "application/json", condition).await? {
            PutOutcome::Written { .. } => {
                for k in consumed {
                    store.delete(k).await?;
                }
                days.insert((start.date_naive(), version.clone()));
                report.hours.push((key, folded));
                hours_written.push(window);
            }
            PutOutcome::ConditionFailed => {
                tracing::warn!(
                    window = key,
                    "another run wrote this hour; its deltas stay for the next run"
                );
                report.contended.push(key);
            }
        }
    }
    let mut day_windows = Vec::new();
    for (date, version) in days {
        let window = write_day(store, date, &version, now).await?;
        report
            .days
            .push(keys::profile_window(&window.window, &version).map_err(malformed(&version))?);
        day_windows.push(window);
    }
    // What the alarms watch: each window this run changed, tested now, with
    // the estimate where the version has enough labelled windows of late.
    let mut references = References::default();
    let mut calibrations: HashMap<(String, Granularity), Option<Calibration>> = HashMap::new();
    let mut drifts = Vec::with_capacity(hours_written.len() + day_windows.len());
    for window in hours_written.iter().chain(&day_windows) {
        let version = &window.model.version;
        let k = (version.clone(), window.window.granularity);
        if !calibrations.contains_key(&k) {
            let c = recent_calibration(store, version, k.1, now + Duration::days(1)).await?;
            calibrations.insert(k.clone(), c);
        }
        let reference = references.get(store, version).await?;
        // The hours before are read only when there is a reference to test against.
        let mut recent = vec![Some(window.clone())];
        if reference.is_some() && window.window.granularity == Granularity::Hour {
            recent.extend(hours_before(store, &window.window, version).await?);
        }
        drifts.push(window_drift(
            window,
            &recent,
            reference,
            calibrations[&k].as_ref(),
        ));
    }
    for d in &drifts {
        if let Err(e) = sink.emit_drift(d).await {
            tracing::warn!(window = %d.window.start, error = %e, "drift not sent; the windows are stored");
        } else {
            report.emitted += 1;
        }
        if let Some(r) = d.drift.as_ref().filter(|r| r.alert) {
            tracing::warn!(
                model_version = d.model.version,
                granularity = d.window.granularity.as_str(),
                window = %d.window.start,
                score = r.score,
                features = r.features.join(","),
                "drift alert"
            );
        }
    }
    Ok(report)
}

/// Rewrites the day window of `version` on `date` as the sum of its stored hours.
async fn write_day<S: ObjectStore>(
    store: &S,
    date: NaiveDate,
    version: &str,
    now: DateTime<Utc>,
) -> Result<ProfileWindow, ProfileError> {
    let mut summary = ProfileSummary::default();
    let mut model = None;
    for o in store
        .list(&keys::profile_windows_on(Granularity::Hour, date))
        .await?
    {
        if !keys::parse_profile_window(&o.key).is_ok_and(|(_, v)| v == version) {
            continue;
        }
        if let Some(stored) = store.get(&o.key).await? {
            let hour: ProfileWindow =
                records::from_json(&stored.body).map_err(malformed(&o.key))?;
            summary.merge(&hour.summary);
            model.get_or_insert(hour.model);
        }
    }
    let day = ProfileWindow {
        window: Window {
            granularity: Granularity::Day,
            start: date.and_time(NaiveTime::MIN).and_utc(),
        },
        model: model.unwrap_or_else(|| ModelRef {
            name: String::new(),
            version: version.to_string(),
        }),
        computed_at: now,
        summary,
        folded: Vec::new(),
    };
    let key = keys::profile_window(&day.window, version).map_err(malformed(version))?;
    // A function of the stored hours: whoever writes last wrote a sum of them.
    store
        .put(
            &key,
            Bytes::from(records::to_json(&day)),
            "application/json",
            PutCondition::Always,
        )
        .await?;
    Ok(day)
}

/// The hours before `hour` an hour's test may reach back to, newest first
/// (`None`: not stored).
async fn hours_before<S: ObjectStore>(
    store: &S,
    hour: &Window,
    version: &str,
) -> Result<Vec<Option<ProfileWindow>>, ProfileError> {
    let mut out = Vec::with_capacity(drift::MAX_TRAILING_HOURS - 1);
    for back in 1..drift::MAX_TRAILING_HOURS {
        let w = Window {
            granularity: Granularity::Hour,
            start: hour.start - Duration::hours(back as i64),
        };
        let key = keys::profile_window(&w, version).map_err(malformed(version))?;
        out.push(match store.get(&key).await? {
            Some(o) => Some(records::from_json(&o.body).map_err(malformed(&key))?),
            None => None,
        });
    }
    Ok(out)
}

/// References read once per version and run.
#[derive(Default)]
struct References(HashMap<String, Option<ProfileReference>>);

impl References {
    async fn get<S: ObjectStore>(
        &mut self,
        store: &S,
        version: &str,
    ) -> Result<Option<&ProfileReference>, ProfileError> {
        if !self.0.contains_key(version) {
            let found = read_reference(store, version).await?;
            self.0.insert(version.to_string(), found);
        }
        Ok(self.0[version].as_ref())
    }
}

/// The stored reference of `version`, if any.
pub async fn read_reference<S: ObjectStore>(
    store: &S,
    version: &str,
) -> Result<Option<ProfileReference>, ProfileError> {
    let key = keys::profile_reference(version).map_err(malformed(version))?;
    match store.get(&key).await? {
        Some(o) => Ok(Some(records::from_json(&o.body).map_err(malformed(&key))?)),
        None => Ok(None),
    }
}

/// Stores `reference` as its version's reference (replacing any).
pub async fn write_reference<S: ObjectStore>(
    store: &S,
    reference: &ProfileReference,
) -> Result<String, ProfileError> {
    put_reference(store, reference, PutCondition::Always)
        .await
        .map(|(key, _)| key)
}

/// Stores `reference` unless its version has one (a reference someone
/// pinned wins over the one a model directory brings); `true` if written.
pub async fn offer_reference<S: ObjectStore>(
    store: &S,
    reference: &ProfileReference,
) -> Result<(String, bool), ProfileError> {
    put_reference(store, reference, PutCondition::IfAbsent).await
}

async fn put_reference<S: ObjectStore>(
    store: &S,
    reference: &ProfileReference,
    condition: PutCondition,
) -> Result<(String, bool), ProfileError> {
    let key = keys::profile_reference(&reference.model.version)
        .map_err(malformed(&reference.model.version))?;
    let outcome = store
        .put(
            &key,
            Bytes::from(records::to_json(reference)),
            "application/json",
            condition,
        )
        .await?;
    Ok((key, matches!(outcome, PutOutcome::Written { .. })))
}

/// The file in a model directory holding the drift reference of its version
/// (`modelobs drift reference --training-set --out`; `make train` writes it).
pub const REFERENCE_FILE: &str = "reference.json";

/// What [`push_reference`] did with a model directory's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferencePushed {
    /// The directory has none.
    None,
    /// Stored at this key: the version's windows are tested against it.
    Stored(String),
    /// The version has a reference already (pinned by someone): kept.
    Kept(String),
}

/// Stores `dir`'s [`REFERENCE_FILE`], if it has one, as the drift reference
/// of `model` (the directory's model.json), unless that version has a
/// reference already (`modelobs model push`). A reference of another model
/// is refused.
pub async fn push_reference<S: ObjectStore>(
    store: &S,
    dir: &Path,
    model: &ModelRef,
) -> Result<ReferencePushed, ProfileError> {
    let path = dir.join(REFERENCE_FILE);
    let bad = |problem: String| ProfileError::BadReferenceFile {
        path: path.display().to_string(),
        problem,
    };
    let body = match tokio::fs::read(&path).await {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ReferencePushed::None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let profile: ProfileReference =
        records::from_json(&body).map_err(|e| bad(format!("not a drift reference: {e}")))?;
    if profile.model != *model {
        let name = |m: &ModelRef| format!("{}/{}", m.name, m.version);
        return Err(bad(format!(
            "the reference is for {}, the directory's model.json is {}: make it again \
             (modelobs drift reference --model {} --training-set --out {})",
            name(&profile.model),
            name(model),
            dir.display(),
            path.display()
        )));
    }
    Ok(match offer_reference(store, &profile).await? {
        (key, true) => ReferencePushed::Stored(key),
        (key, false) => ReferencePushed::Kept(key),
    })
}

/// `window`'s label-free side. `recent` is the window and (hours) the hours
/// before it, newest first; `calibration` the version's, if fitted.
fn window_drift(
    window: &ProfileWindow,
    recent: &[Option<ProfileWindow>],
    reference: Option<&ProfileReference>,
    calibration: Option<&Calibration>,
) -> WindowDrift {
    let drift = reference.map(|r| {
        let (tested, hours) =
            drift::trailing(recent.iter().map(|w| w.as_ref().map(|w| &w.summary)));
        WindowDriftReport::new(&tested, hours, &r.summary, &r.source, DEFAULT_ALPHA)
    });
    WindowDrift {
        window: window.window,
        model: window.model.clone(),
        captures: window.summary.captures,
        profiled: window.summary.profiled,
        drift,
        estimated_ap50: calibration.and_then(|c| c.estimate(&window.summary)),
    }
}

/// The stored `WindowMetrics` (labelled windows) of `granularity` starting
/// in `[from, to)`, by start then version.
pub async fn stored_metrics<S: ObjectStore>(
    store: &S,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    model_version: Option<&str>,
) -> Result<Vec<WindowMetrics>, ProfileError> {
    let mut windows = read_by_date(
        store,
        from,
        to,
        |date| keys::window_metrics_on(granularity, date),
        |_| true,
        |m: &WindowMetrics| {
            m.window.granularity == granularity
                && from <= m.window.start
                && m.window.start < to
                && model_version.is_none_or(|v| v == m.model.version)
        },
    )
    .await?;
    windows.sort_by(|a, b| {
        (a.window.start, &a.model.version).cmp(&(b.window.start, &b.model.version))
    });
    Ok(windows)
}

/// The records listed under `prefix(date)` for every date from `from`'s
/// until `to`, read unless `listed` turns the key down, and kept where `keep`
/// holds. An object deleted since the listing is skipped.
async fn read_by_date<S: ObjectStore, T: records::Record>(
    store: &S,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    prefix: impl Fn(NaiveDate) -> String,
    listed: impl Fn(&str) -> bool,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>, ProfileError> {
    let mut out = Vec::new();
    let mut date = from.date_naive();
    while date.and_time(NaiveTime::MIN).and_utc() < to {
        for object in store.list(&prefix(date)).await? {
            if !listed(&object.key) {
                continue;
            }
            let Some(stored) = store.get(&object.key).await? else {
                continue;
            };
            let record: T = records::from_json(&stored.body).map_err(malformed(&object.key))?;
            if keep(&record) {
                out.push(record);
            }
        }
        let Some(next) = date.succ_opt() else { break };
        date = next;
    }
    Ok(out)
}

/// A labelled window with its profile: one point to calibrate on.
fn point(m: &WindowMetrics, p: &ProfileWindow) -> Option<Point> {
    (m.images_labelled > 0 && m.coco.ap50 >= 0.0).then_some(())?;
    Some(Point {
        x: calibration::features(&p.summary)?,
        ap50: m.coco.ap50,
        weight: f64::from(m.images_labelled),
    })
}

/// How far back the rollup looks for labelled windows to calibrate on.
fn calibration_span(granularity: Granularity) -> Duration {
    match granularity {
        Granularity::Hour => Duration::days(7),
        Granularity::Day => Duration::days(60),
    }
}

/// The rollup's calibration of `version` at `granularity`: fitted on the
/// labelled windows of the last [`calibration_span`] before `until`.
async fn recent_calibration<S: ObjectStore>(
    store: &S,
    version: &str,
    granularity: Granularity,
    until: DateTime<Utc>,
) -> Result<Option<Calibration>, ProfileError> {
    let from = until - calibration_span(granularity);
    let labelled = stored_metrics(store, granularity, from, until, Some(version)).await?;
    if labelled.len() < calibration::MIN_WINDOWS {
        return Ok(None);
    }
    let windows = query(store, granularity, from, until, Some(version)).await?;
    let by_start: HashMap<DateTime<Utc>, &ProfileWindow> =
        windows.iter().map(|w| (w.window.start, w)).collect();
    let points: Vec<Point> = labelled
        .iter()
        .filter_map(|m| point(m, by_start.get(&m.window.start)?))
        .collect();
    Ok(Calibration::fit(&points))
}

/// The profile windows of `granularity` starting in `[from, to)`.
pub async fn query<S: ObjectStore>(
    store: &S,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    model_version: Option<&str>,
) -> Result<Vec<ProfileWindow>, ProfileError> {
    let mut out = read_by_date(
        store,
        from,
        to,
        |date| keys::profile_windows_on(granularity, date),
        |key| {
            keys::parse_profile_window(key).is_ok_and(|(window, version)| {
                from <= window.start
                    && window.start < to
                    && model_version.is_none_or(|v| v == version)
            })
        },
        |_: &ProfileWindow| true,
    )
    .await?;
    out.sort_by(|a: &ProfileWindow, b| {
        (a.window.start, &a.model.version).cmp(&(b.window.start, &b.model.version))
    });
    Ok(out)
}

/// One window as `modelobs metrics --json` prints it: the measured figures
/// (zero labelled images where none are), and the label-free side.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct WindowView {
    #[serde(flatten)]
    pub metrics: WindowMetrics,
    pub drift: Option<drift::WindowDriftReport>,
    pub estimated_ap50: Option<calibration::Estimate>,
    /// The estimate's calibration: labelled windows fitted on and their
    /// leave-one-out error.
    pub calibration: Option<CalibrationInfo>,
    /// Absent from a bare WindowMetrics file (read as 0).
    #[serde(default)]
    pub profiled_captures: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CalibrationInfo {
    pub windows: usize,
    pub loo_mae: f64,
    pub loo_worst: f64,
    pub band: f64,
}

/// A window's measured figures and profile, either possibly absent.
type Row<'a> = (Option<WindowMetrics>, Option<&'a ProfileWindow>);

/// Every window of `granularity` in `[from, to)`, labelled (`labelled`, as
/// stored by the rollup) or not (a profile window alone), with its drift and
/// estimated AP50. Captures (and so label coverage) are counted per model
/// version wherever a profile window exists.
pub async fn views<S: ObjectStore>(
    store: &S,
    granularity: Granularity,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    model_version: Option<&str>,
    labelled: Vec<WindowMetrics>,
    score_threshold: f64,
) -> Result<Vec<WindowView>, ProfileError> {
    // Hours reach back: read the two hours before `from` too.
    let reach = match granularity {
        Granularity::Hour => Duration::hours(drift::MAX_TRAILING_HOURS as i64 - 1),
        Granularity::Day => Duration::zero(),
    };
    let profiles = query(store, granularity, from - reach, to, model_version).await?;
    let by_key: HashMap<(DateTime<Utc>, String), ProfileWindow> = profiles
        .into_iter()
        .map(|p| ((p.window.start, p.model.version.clone()), p))
        .collect();
    let mut rows: BTreeMap<(DateTime<Utc>, String), Row> = BTreeMap::new();
    for m in labelled {
        rows.insert((m.window.start, m.model.version.clone()), (Some(m), None));
    }
    for (k, p) in &by_key {
        if k.0 >= from {
            rows.entry(k.clone()).or_insert((None, None)).1 = Some(p);
        }
    }
    // Calibrations per version, on the labelled windows asked for.
    let mut points: HashMap<&str, Vec<Point>> = HashMap::new();
    for (m, p) in rows.values() {
        if let (Some(m), Some(p)) = (m, p)
            && let Some(pt) = point(m, p)
        {
            points.entry(p.model.version.as_str()).or_default().push(pt);
        }
    }
    let calibrations: HashMap<&str, Calibration> = points
        .iter()
        .filter_map(|(v, pts)| Calibration::fit(pts).map(|c| (*v, c)))
        .collect();
    let mut references = References::default();
    let mut out = Vec::with_capacity(rows.len());
    for ((start, version), (measured, profile)) in &rows {
        let reference = references.get(store, version).await?;
        let calibration = calibrations.get(version.as_str());
        let side = profile.map(|p| {
            let recent: Vec<Option<ProfileWindow>> = (0..drift::MAX_TRAILING_HOURS)
                .map(|back| match granularity {
                    Granularity::Hour => by_key
                        .get(&(*start - Duration::hours(back as i64), version.clone()))
                        .cloned(),
                    Granularity::Day => (back == 0).then(|| p.clone()),
                })
                .collect();
            window_drift(p, &recent, reference, calibration)
        });
        let mut metrics = match measured {
            Some(m) => m.clone(),
            None => {
                let p = profile.expect("a row has a window or a profile");
                WindowMetrics::compute(
                    p.window,
                    p.model.clone(),
                    &[],
                    0,
                    score_threshold,
                    p.computed_at,
                )
                .map_err(malformed(version))?
            }
        };
        if let Some(p) = profile {
            metrics.captures_in_window = p.summary.captures;
            metrics.label_coverage = (p.summary.captures > 0)
                .then(|| f64::from(metrics.images_labelled) / p.summary.captures as f64);
        }
        out.push(WindowView {
            metrics,
            drift: side.as_ref().and_then(|s| s.drift.clone()),
            estimated_ap50: side.as_ref().and_then(|s| s.estimated_ap50),
            calibration: calibration.map(|c| CalibrationInfo {
                windows: c.windows,
                loo_mae: c.loo_mae,
                loo_worst: c.loo_worst,
                band: c.band,
            }),
            profiled_captures: profile.map_or(0, |p| p.summary.profiled),
        });
    }
    Ok(out)
}

/// A reference from the stored hour windows of `version` in `[from, to)`:
/// a range of captures known to be good, pinned.
pub async fn reference_from_range<S: ObjectStore>(
    store: &S,
    version: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<ProfileReference>, ProfileError> {
    let hours = query(store, Granularity::Hour, from, to, Some(version)).await?;
    let Some(first) = hours.first() else {
        return Ok(None);
    };
    let mut summary = ProfileSummary::default();
    for h in &hours {
        summary.merge(&h.summary);
    }
    Ok(Some(ProfileReference {
        model: first.model.clone(),
        source: format!(
            "captures {}..{}",
            from.format("%Y-%m-%dT%H:%M"),
            to.format("%Y-%m-%dT%H:%M")
        ),
        created_at: now,
        summary,
    }))
}

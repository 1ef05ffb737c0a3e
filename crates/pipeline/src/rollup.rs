//! The rollup (EventBridge schedule, every 5 minutes): recompute every window
//! whose evaluations changed since the last run, from the stored `ImageEval`s
//! alone (no box is matched again), store it as `WindowMetrics`, emit it.
//!
//! # Touches, and why none is lost
//!
//! The metrics handler writes the `ImageEval` (or deletes it, for a deleted
//! label), *then* a touch marker for the capture's hour and day window,
//! under a key of its own for every message and time
//! (`windows/touched/<hour|day>/<start>/<model-version>/<touch>`,
//! `keys::window_touch`). A run lists the touches first, then reads each
//! touched window's evaluations, writes the window, and finally deletes
//! exactly the touch keys it listed.
//!
//! - Any touch the run listed was written after its evaluation, and S3 lists
//!   and reads what was written before (strong read-after-write), so the
//!   window the run computes includes it.
//! - A touch written while the run works is a new key the run never listed:
//!   the run can't delete it, and the next run recomputes the window.
//!
//! A single marker per window, overwritten on every touch, would need a
//! compare-and-delete (`If-Match` on DeleteObject): S3 has it only since
//! September 2025 and `ObjectStore` (and the emulators we test on) do not, and
//! a plain delete after reading could remove a touch written in between.
//! Touch keys are cheap: two per label message, gone at the next run.
//!
//! # Two rollups at once
//!
//! The deployed rollup runs one at a time (reserved concurrency 1, no async
//! retries: template.yaml), but an operator's `modelobs rollup` may overlap
//! it, and a slow run that read the bucket before another may finish after
//! it, when the other has consumed the touches they shared. So the window is
//! written by compare-and-swap on the ETag the run read *before* it read the
//! evaluations: if another run stored the window since, this run writes
//! nothing and keeps its touches, and the next run recomputes the window.
//! Removing an emptied window cannot be conditional on S3: the run checks
//! the ETag just before the delete, and after it lists the window's
//! evaluations again; if any are back it writes a fresh touch.
//!
//! Each window is independent: a failure is logged and reported, the other
//! windows still roll, and the invocation then fails so that Lambda's retry
//! and the errors alarm see it. The window's touches stay for the next run.
//! Recomputing a window is idempotent: it is a function of the stored
//! evaluations (and the capture count) only.
//!
//! # Captures in a window
//!
//! `captures_in_window` counts every capture record in the window, whatever
//! its model version: capture keys carry no version, and reading each record
//! (a GET per capture, every run) would cost far more than the figure is
//! worth. With one model version serving at a time it is exact; while two
//! serve side by side (a canary), each version's coverage is a lower bound.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use futures_util::{StreamExt, stream};
use modelobs_adapters::{
    ListedObject, ObjectStore, PutCondition, PutOutcome, StoreError, StoredObject,
};
use modelobs_core::records::{self, Granularity, ImageEval, ModelRef, Window, WindowMetrics};
use modelobs_core::{CoreError, keys};
use serde::Serialize;
use thiserror::Error;

use crate::sink::MetricsSink;

pub struct RollupDeps<S, M> {
    pub store: S,
    pub sink: M,
    /// The serving score threshold the windows' precision/recall/F1 are at.
    pub score_threshold: f64,
    pub now: fn() -> DateTime<Utc>,
    /// Evaluations read at once.
    pub concurrency: usize,
}

#[derive(Debug, Error)]
pub enum RollupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key}: {source}")]
    Malformed { key: String, source: CoreError },
    #[error("{window}: model version {version} has evaluations of several models: {names:?}")]
    MixedModels {
        window: String,
        version: String,
        names: Vec<String>,
    },
    #[error("{} of {} windows failed; first: {} ({})", failed.len(), total, failed[0].window, failed[0].error)]
    WindowsFailed {
        failed: Vec<FailedWindow>,
        total: usize,
    },
}

/// What a run did to one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolledWindow {
    /// `windows/<hour|day>/<start>/<model-version>.json`
    pub key: String,
    pub images_labelled: u32,
    /// COCO AP over the window; `None` when it has no labelled image left
    /// (every label deleted): the stored window is deleted then.
    pub ap: Option<f64>,
    /// Touch markers consumed (0 when not written).
    pub touches: usize,
    /// `false`: another run stored the window while this one read it; this
    /// run's result may be older, so it wrote nothing and left its touches
    /// for the next run.
    pub written: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedWindow {
    pub window: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RollupReport {
    pub rolled: Vec<RolledWindow>,
    pub failed: Vec<FailedWindow>,
    /// Keys under `windows/touched/` that are not touches: left alone.
    pub foreign_keys: Vec<String>,
    /// The label-free side: captures' profiles folded into their windows.
    pub profiles: crate::profiles::FoldReport,
    /// Where the run's time went.
    pub seconds: StageSeconds,
}

/// Wall-clock seconds of a run's stages, in the order they run (logged
/// with "rollup done"; `modelobs bench-rollup` prints them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageSeconds {
    /// Listing touches, evaluations and captures; getting the windows' ETags
    /// and the evaluations not read yet.
    pub read: f64,
    /// Parsing those evaluations (in parallel).
    pub parse: f64,
    /// Folding the captures' profiles.
    pub profiles: f64,
    /// Accumulating the windows (in parallel).
    pub compute: f64,
    /// Writing and emitting the windows, consuming the touches.
    pub store: f64,
}

/// The schedule's event carries nothing the rollup needs (the work is in the
/// bucket), so any JSON is accepted: EventBridge's `Scheduled Event`, or `{}`
/// from an operator invoking it by hand after an outage.
pub async fn handle<S: ObjectStore, M: MetricsSink>(
    event: serde_json::Value,
    deps: &RollupDeps<S, M>,
) -> Result<RollupReport, RollupError> {
    tracing::info!(
        event_id = event.get("id").and_then(|v| v.as_str()),
        scheduled_at = event.get("time").and_then(|v| v.as_str()),
        "rollup started"
    );
    deps.sink.begin_invocation();
    let report = run(deps).await?;
    tracing::info!(
        rolled = report.rolled.len(),
        failed = report.failed.len(),
        seconds = ?report.seconds,
        "rollup done"
    );
    if report.failed.is_empty() {
        Ok(report)
    } else {
        Err(RollupError::WindowsFailed {
            total: report.rolled.len() + report.failed.len(),
            failed: report.failed,
        })
    }
}

/// One run over every touched window; per-window failures are in the report.
pub async fn run<S: ObjectStore, M: MetricsSink>(
    deps: &RollupDeps<S, M>,
) -> Result<RollupReport, RollupError> {
    let started = Instant::now();
    let touches = deps.store.list(keys::WINDOWS_TOUCHED).await?;
    let mut report = RollupReport::default();
    // Hours before days: a day then reads its touched hours' evaluations from the cache.
    let mut pending: BTreeMap<(u8, DateTime<Utc>, String), Vec<String>> = BTreeMap::new();
    for t in touches {
        match keys::parse_window_touch(&t.key) {
            Ok(k) => {
                let order = match k.window.granularity {
                    Granularity::Hour => 0,
                    Granularity::Day => 1,
                };
                pending
                    .entry((order, k.window.start, k.model_version))
                    .or_default()
                    .push(t.key);
            }
            Err(e) => {
                tracing::warn!(key = t.key, error = %e, "not a touch marker; left alone");
                report.foreign_keys.push(t.key);
            }
        }
    }
    // Read (I/O, one window after the other, sharing what was read), compute
    // (CPU, windows in parallel), then store, emit and consume the touches.
    let mut cache = Cache::default();
    let mut prepared = Vec::new();
    for ((order, start, version), touch_keys) in pending {
        let granularity = if order == 0 {
            Granularity::Hour
        } else {
            Granularity::Day
        };
        let window = Window { granularity, start };
        let name = keys::window_metrics(&window, &version)
            .unwrap_or_else(|_| format!("{} {start} {version}", granularity.as_str()));
        match prepare(deps, &mut cache, window, version, touch_keys).await {
            Ok(p) => prepared.push(p),
            Err(e) => report.failed.push(failed(name, &e)),
        }
    }
    report.seconds.parse = cache.parse_s;
    report.seconds.read = started.elapsed().as_secs_f64() - cache.parse_s;
    drop(cache);
    let stage = Instant::now();
    match crate::profiles::fold(&deps.store, &deps.sink, (deps.now)(), deps.concurrency).await {
        Ok(folded) => report.profiles = folded,
        Err(e) => report.failed.push(FailedWindow {
            window: modelobs_core::keys::PROFILES_PENDING.to_string(),
            error: e.to_string(),
        }),
    }
    report.seconds.profiles = stage.elapsed().as_secs_f64();
    let stage = Instant::now();
    let (threshold, now) = (deps.score_threshold, (deps.now)());
    let computed = tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        prepared
            .into_par_iter()
            .map(|p| {
                let metrics = p.compute(threshold, now);
                (p, metrics)
            })
            .collect::<Vec<_>>()
    })
    .await
    .expect("window computation does not panic");
    report.seconds.compute = stage.elapsed().as_secs_f64();
    let stage = Instant::now();
    for (p, metrics) in computed {
        let name = p.key.clone();
        match store_window(deps, p, metrics).await {
            Ok(rolled) => {
                tracing::info!(window = name, images = rolled.images_labelled, ap = ?rolled.ap, "window rolled");
                report.rolled.push(rolled);
            }
            Err(e) => report.failed.push(failed(name, &e)),
        }
    }
    report.seconds.store = stage.elapsed().as_secs_f64();
    Ok(report)
}

fn failed(window: String, e: &RollupError) -> FailedWindow {
    tracing::error!(window, error = %e, "window failed; its touches stay for the next run");
    FailedWindow {
        window,
        error: e.to_string(),
    }
}

/// What one run has read already: evaluations by key and ETag (a day reuses
/// its hours'), and capture counts per hour of a day (one listing per day).
#[derive(Default)]
struct Cache {
    evals: HashMap<String, (String, Arc<ImageEval>)>,
    captures: HashMap<NaiveDate, [u64; 24]>,
    /// Seconds spent parsing evaluations so far.
    parse_s: f64,
}

/// A window's inputs, read from the bucket.
struct Prepared {
    window: Window,
    key: String,
    /// `None`: no evaluation of this version is left in the window.
    model: Option<ModelRef>,
    evals: Vec<Arc<ImageEval>>,
    captures: u64,
    touch_keys: Vec<String>,
    version: String,
    /// The stored window's ETag before the evaluations were read (`None`:
    /// no window then): the write's condition.
    read_etag: Option<String>,
}

impl Prepared {
    fn compute(
        &self,
        score_threshold: f64,
        now: DateTime<Utc>,
    ) -> Result<Option<WindowMetrics>, RollupError> {
        let Some(model) = &self.model else {
            return Ok(None);
        };
        WindowMetrics::compute_from(
            self.window,
            model.clone(),
            &self.evals,
            self.captures,
            score_threshold,
            now,
        )
        .map(Some)
        .map_err(|source| RollupError::Malformed {
            key: self.key.clone(),
            source,
        })
    }
}

async fn prepare<S: ObjectStore, M>(
    deps: &RollupDeps<S, M>,
    cache: &mut Cache,
    window: Window,
    version: String,
    touch_keys: Vec<String>,
) -> Result<Prepared, RollupError> {
    let key = keys::window_metrics(&window, &version).map_err(|source| RollupError::Malformed {
        key: touch_keys[0].clone(),
        source,
    })?;
    // Before the evaluations: a window stored after this read is newer than ours.
    let read_etag = deps.store.get(&key).await?.map(|o| o.etag);
    let evals: Vec<Arc<ImageEval>> = load_evals(deps, cache, &window)
        .await?
        .into_iter()
        .filter(|e| e.model.version == version)
        .collect();
    let mut names: Vec<String> = evals.iter().map(|e| e.model.name.clone()).collect();
    names.sort_unstable();
    names.dedup();
    let model = match names.as_slice() {
        [] => None,
        [name] => Some(ModelRef {
            name: name.clone(),
            version: version.clone(),
        }),
        _ => {
            return Err(RollupError::MixedModels {
                window: key,
                version,
                names,
            });
        }
    };
    let captures = if model.is_some() {
        captures_in(deps, cache, &window).await?
    } else {
        0
    };
    Ok(Prepared {
        window,
        key,
        model,
        evals,
        captures,
        touch_keys,
        version,
        read_etag,
    })
}

async fn store_window<S: ObjectStore, M: MetricsSink>(
    deps: &RollupDeps<S, M>,
    p: Prepared,
    computed: Result<Option<WindowMetrics>, RollupError>,
) -> Result<RolledWindow, RollupError> {
    let metrics = computed?;
    let written = match &metrics {
        // Every label of the window was deleted: so is the window.
        None => {
            let unchanged = deps.store.get(&p.key).await?.map(|o| o.etag) == p.read_etag;
            if unchanged && p.read_etag.is_some() {
                deps.store.delete(&p.key).await?;
                retouch_if_refilled(deps, &p).await?;
            }
            unchanged
        }
        Some(metrics) => {
            let condition = match &p.read_etag {
                Some(etag) => PutCondition::IfMatch(etag.clone()),
                None => PutCondition::IfAbsent,
            };
            let body = bytes::Bytes::from(records::to_json(metrics));
            let outcome = deps
                .store
                .put(&p.key, body, "application/json", condition)
                .await?;
            let written = matches!(outcome, PutOutcome::Written { .. });
            if written && let Err(e) = deps.sink.emit_window(metrics).await {
                tracing::warn!(window = p.key, error = %e, "metrics sink failed; the window is stored");
            }
            written
        }
    };
    if !written {
        tracing::warn!(
            window = p.key,
            "another run stored this window while we read it; not written, touches kept for the next run"
        );
    } else {
        // Only the touches listed before the evaluations were read.
        for touch in &p.touch_keys {
            deps.store.delete(touch).await?;
        }
    }
    Ok(RolledWindow {
        key: p.key,
        images_labelled: metrics.as_ref().map_or(0, |m| m.images_labelled),
        ap: metrics.as_ref().map(|m| m.coco.ap),
        touches: if written { p.touch_keys.len() } else { 0 },
        written,
    })
}

/// After an emptied window's delete: if evaluations of its version are back
/// (written since this run read them), a fresh touch makes the next run
/// recompute the window the delete may have removed.
async fn retouch_if_refilled<S: ObjectStore, M>(
    deps: &RollupDeps<S, M>,
    p: &Prepared,
) -> Result<(), RollupError> {
    let mut refilled = false;
    for o in deps
        .store
        .list(&keys::image_evals_prefix(&p.window))
        .await?
    {
        if let Some(object) = deps.store.get(&o.key).await?
            && parse_eval(&object.body).is_ok_and(|e| e.model.version == p.version)
        {
            refilled = true;
            break;
        }
    }
    if refilled {
        let touch = format!(
            "{:013}-rollup-refilled",
            (deps.now)().timestamp_millis().max(0)
        );
        let key = keys::window_touch(&p.window, &p.version, &touch).map_err(|source| {
            RollupError::Malformed {
                key: p.key.clone(),
                source,
            }
        })?;
        tracing::warn!(
            window = p.key,
            touch = key,
            "evaluations came back after the window was emptied; touched again"
        );
        deps.store
            .put(
                &key,
                bytes::Bytes::from_static(b"{}"),
                "application/json",
                PutCondition::Always,
            )
            .await?;
    }
    Ok(())
}

/// Every evaluation now stored under the window's prefix (all model versions).
async fn load_evals<S: ObjectStore, M>(
    deps: &RollupDeps<S, M>,
    cache: &mut Cache,
    window: &Window,
) -> Result<Vec<Arc<ImageEval>>, RollupError> {
    let prefix = keys::image_evals_prefix(window);
    let listed = deps.store.list(&prefix).await?;
    let stale: Vec<&ListedObject> = listed
        .iter()
        .filter(|o| {
            cache
                .evals
                .get(&o.key)
                .is_none_or(|(etag, _)| *etag != o.etag)
        })
        .collect();
    let fetched: Vec<Result<(String, Option<StoredObject>), StoreError>> = stream::iter(stale)
        .map(|o| async move {
            let object = deps.store.get(&o.key).await?;
            Ok((o.key.clone(), object))
        })
        .buffer_unordered(deps.concurrency.max(1))
        .collect()
        .await;
    let fetched = fetched.into_iter().collect::<Result<Vec<_>, _>>()?;
    let parsing = Instant::now();
    let parsed = tokio::task::spawn_blocking(move || {
        use rayon::prelude::*;
        fetched
            .into_par_iter()
            .map(|(key, object)| match object {
                // Deleted (its label was) since the listing.
                None => Ok((key, None)),
                Some(o) => match parse_eval(&o.body) {
                    Ok(eval) => Ok((key, Some((o.etag, eval)))),
                    Err(source) => Err(RollupError::Malformed { key, source }),
                },
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .expect("parsing does not panic");
    cache.parse_s += parsing.elapsed().as_secs_f64();
    for (key, found) in parsed? {
        match found {
            Some((etag, eval)) => {
                cache.evals.insert(key, (etag, Arc::new(eval)));
            }
            None => {
                cache.evals.remove(&key);
            }
        }
    }
    Ok(listed
        .iter()
        .filter_map(|o| cache.evals.get(&o.key).map(|(_, e)| e.clone()))
        .collect())
}

/// `records::from_json` in one pass for what this build writes, or wrote
/// (the record starts with a `schema_version` it reads): the rollup reads
/// thousands of these. Anything else goes the general way, which names the
/// problem.
fn parse_eval(body: &[u8]) -> Result<ImageEval, CoreError> {
    use records::Record;
    const PREFIX: &[u8] = br#"{"schema_version":"#;
    let readable = ImageEval::OLDEST_READABLE..=ImageEval::SCHEMA_VERSION;
    let written = body
        .strip_prefix(PREFIX)
        .and_then(|rest| {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            (rest.get(digits) == Some(&b',')).then(|| std::str::from_utf8(&rest[..digits]))
        })
        .and_then(|v| v.ok()?.parse::<u32>().ok())
        .is_some_and(|v| readable.contains(&v));
    if written && let Ok(eval) = serde_json::from_slice::<ImageEval>(body) {
        return Ok(eval);
    }
    records::from_json(body)
}

/// Capture records in the window, all model versions (see the module docs).
async fn captures_in<S: ObjectStore, M>(
    deps: &RollupDeps<S, M>,
    cache: &mut Cache,
    window: &Window,
) -> Result<u64, RollupError> {
    let date = window.start.date_naive();
    let per_hour = match cache.captures.entry(date) {
        Entry::Occupied(counted) => *counted.get(),
        Entry::Vacant(slot) => {
            let day = Window::containing(Granularity::Day, window.start);
            let prefix = keys::capture_records_prefix(&day);
            let listed = deps.store.list(&prefix).await?;
            let mut per_hour = [0u64; 24];
            for o in listed {
                if let Ok(k) = keys::parse_capture_record(&o.key) {
                    per_hour[k.hour as usize] += 1;
                }
            }
            *slot.insert(per_hour)
        }
    };
    Ok(match window.granularity {
        Granularity::Hour => per_hour[window.start.hour() as usize],
        Granularity::Day => per_hour.iter().sum(),
    })
}

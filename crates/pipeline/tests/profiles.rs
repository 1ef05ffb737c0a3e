//! Label-free windows with an in-memory bucket, fed by the real sampler and
//! folded by the real rollup: hour windows equal the sum of their captures'
//! profiles whatever is redelivered, days are sums of hours, deltas are
//! consumed, drift goes to the sink and into `views` for windows without a
//! single label, and captures are counted per model version.

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::event::s3::S3Event;
use chrono::{DateTime, Duration, TimeZone, Utc};
use modelobs_adapters::memory::MemoryStore;
use modelobs_adapters::{ObjectStore, RetryPolicy, Retrying};
use modelobs_core::drift::ProfileSummary;
use modelobs_core::keys;
use modelobs_core::profile::{CaptureProfile, ImageSignals, NmsSignals};
use modelobs_core::records::{
    self, CaptureId, CaptureRecord, Granularity, ModelRef, ProfileReference, ProfileWindow, Window,
    WindowMetrics,
};
use modelobs_core::sampling::SamplingPolicy;
use modelobs_pipeline::labeling::LocalQueue;
use modelobs_pipeline::profiles;
use modelobs_pipeline::rollup::{self, RollupDeps};
use modelobs_pipeline::sample::{self, Deps};
use modelobs_pipeline::sink::MemorySink;
use support::put;

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");
const VERSION: &str = "human-models-3.0.4";

type Store = Retrying<Arc<MemoryStore>>;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn at(h: i64, minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap()
        + Duration::hours(h)
        + Duration::minutes(minute)
}

fn deps() -> Deps<LocalQueue<Store>, Store> {
    let store = Arc::new(MemoryStore::new());
    Deps {
        policy: SamplingPolicy::from_json(
            r#"{"name": "none", "uniform_rate": 0.0,
            "uncertainty": {"band": null, "top_score_below": null}, "empty_rate": 0.0}"#,
        )
        .unwrap(),
        backend: LocalQueue {
            store: Retrying::new(store.clone(), RetryPolicy::immediate(2)),
            now,
        },
        store: Retrying::new(store, RetryPolicy::immediate(2)),
        now,
    }
}

fn rollup_deps(store: Store) -> RollupDeps<Store, MemorySink> {
    RollupDeps {
        store,
        sink: MemorySink::default(),
        score_threshold: 0.35,
        now,
        concurrency: 4,
    }
}

/// A capture of `version` at `t` whose picture has this mean luma.
fn capture(n: u32, t: DateTime<Utc>, luminance: f64, version: &str) -> CaptureRecord {
    let mut c: CaptureRecord = records::from_json(CAPTURE).unwrap();
    c.id = CaptureId(uuid::Uuid::from_u128(
        0x0100_0000_0000_7000_8000_0000_0000_0000 + u128::from(n),
    ));
    c.captured_at = t;
    c.model.version = version.into();
    c.profile = Some(CaptureProfile::new(
        &c.detections,
        c.image.width,
        c.image.height,
        &c.image.content_type,
        ImageSignals {
            luminance,
            contrast: luminance / 4.0,
            sharpness: 1e-3 * (1.0 + f64::from(n % 7)),
            measured_width: 416,
            measured_height: 276,
        },
        NmsSignals::default(),
    ));
    c
}

fn event_for(key: &str) -> S3Event {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/sampler/capture-created.json");
    let mut e: S3Event = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    e.records[0].s3.object.key = Some(key.replace('=', "%3D"));
    e
}

/// Stores the capture record and delivers its S3 event to the sampler.
async fn arrive(d: &Deps<LocalQueue<Store>, Store>, c: &CaptureRecord) {
    let key = keys::capture_record(c.id, c.captured_at);
    put(&d.store, &key, records::to_json(c)).await;
    sample::handle(event_for(&key), d).await.unwrap();
}

async fn window(store: &Store, w: Window, version: &str) -> Option<ProfileWindow> {
    let key = keys::profile_window(&w, version).unwrap();
    store
        .get(&key)
        .await
        .unwrap()
        .map(|o| records::from_json(&o.body).unwrap())
}

fn summed(captures: &[CaptureRecord]) -> ProfileSummary {
    let mut s = ProfileSummary::default();
    for c in captures {
        s.add(c.profile.as_ref());
    }
    s
}

fn hour(h: i64) -> Window {
    Window::containing(Granularity::Hour, at(h, 0))
}

#[tokio::test]
async fn hours_are_the_sum_of_their_captures_whatever_is_delivered_twice() {
    let d = deps();
    // GIVEN captures over three hours, some events delivered twice, one
    // redelivered only after its hour was folded
    let caps: Vec<CaptureRecord> = (0..9)
        .map(|n| {
            capture(
                n,
                at(i64::from(n % 3), i64::from(n) * 5),
                0.3 + 0.05 * f64::from(n),
                VERSION,
            )
        })
        .collect();
    for c in &caps[..6] {
        arrive(&d, c).await;
    }
    arrive(&d, &caps[1]).await;
    let r = rollup_deps(d.store.clone());
    let first = rollup::run(&r).await.unwrap();
    assert_eq!(first.profiles.hours.len(), 3, "{:?}", first.profiles);
    for c in &caps[6..] {
        arrive(&d, c).await;
    }
    arrive(&d, &caps[0]).await; // after its fold: its delta is written again
    let second = rollup::run(&r).await.unwrap();
    assert!(second.failed.is_empty(), "{second:?}");

    // THEN each hour holds exactly its captures, once
    for h in 0..3 {
        let mine: Vec<CaptureRecord> = caps
            .iter()
            .filter(|c| hour(h).contains(c.captured_at))
            .cloned()
            .collect();
        let w = window(&d.store, hour(h), VERSION)
            .await
            .expect("hour stored");
        let mut want = summed(&mine);
        // float sums in another order
        assert!((w.summary.top_score_sum - want.top_score_sum).abs() < 1e-9);
        want.top_score_sum = w.summary.top_score_sum;
        assert_eq!(w.summary, want, "hour {h}");
        let mut ids: Vec<CaptureId> = mine.iter().map(|c| c.id).collect();
        ids.sort();
        assert_eq!(w.folded, ids);
    }
    // AND the day is the sum of its hours, and nothing is left pending
    let day = window(
        &d.store,
        Window::containing(Granularity::Day, at(0, 0)),
        VERSION,
    )
    .await
    .expect("day stored");
    assert_eq!(day.summary.captures, 9);
    assert_eq!(day.summary.profiled, 9);
    assert!(
        d.store
            .list(keys::PROFILES_PENDING)
            .await
            .unwrap()
            .is_empty()
    );
    // AND a delta that does not parse stays, reported, without holding up the others
    let bad = keys::profile_delta(caps[0].id, at(0, 1), VERSION)
        .unwrap()
        .replace(
            &caps[0].id.to_string(),
            "019ac1f2-0000-7000-8000-0000000000ff",
        );
    put(&d.store, &bad, b"{not json".to_vec()).await;
    let late = capture(50, at(1, 30), 0.4, VERSION);
    arrive(&d, &late).await;
    let with_bad = rollup::run(&r).await.unwrap();
    assert_eq!(with_bad.profiles.malformed, std::slice::from_ref(&bad));
    assert_eq!(
        window(&d.store, hour(1), VERSION)
            .await
            .unwrap()
            .summary
            .captures,
        4
    );
    assert_eq!(d.store.list(keys::PROFILES_PENDING).await.unwrap().len(), 1);
    d.store.delete(&bad).await.unwrap();

    // AND a third run with nothing new writes nothing
    let third = rollup::run(&r).await.unwrap();
    assert!(third.profiles.hours.is_empty() && third.profiles.days.is_empty());
}

#[tokio::test]
async fn a_dark_stretch_alerts_without_labels_and_clean_hours_do_not() {
    let d = deps();
    // GIVEN a reference of 300 daylight captures
    let mut reference = ProfileSummary::default();
    for n in 0..300 {
        reference.add(
            capture(n, at(0, 0), 0.35 + 0.3 * f64::from(n % 97) / 97.0, VERSION)
                .profile
                .as_ref(),
        );
    }
    let model = ModelRef {
        name: "nanodet-coco".into(),
        version: VERSION.into(),
    };
    let stored = ProfileReference {
        model: model.clone(),
        source: "test daylight".into(),
        created_at: now(),
        summary: reference,
    };
    profiles::write_reference(&d.store, &stored).await.unwrap();
    // AND two captures an hour: six clean hours, then dark ones, and another
    // version serving beside it
    let mut n = 1000;
    for h in 0..9 {
        for m in [10, 40] {
            let l = if h < 6 {
                0.35 + 0.3 * f64::from(n % 89) / 89.0
            } else {
                0.04
            };
            arrive(&d, &capture(n, at(h, m), l, VERSION)).await;
            n += 1;
        }
    }
    arrive(&d, &capture(n, at(2, 5), 0.5, "candidate-1")).await;
    let r = rollup_deps(d.store.clone());
    rollup::run(&r).await.unwrap();

    // THEN the rollup sent drift for every window it folded, alerts included
    let lines = r.sink.lines.lock().unwrap().clone();
    let drift_lines: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("DriftScore").is_some())
        .collect();
    assert_eq!(
        drift_lines.len(),
        9 + 1,
        "nine hours and the day of {VERSION}: {lines:?}"
    );
    assert!(
        drift_lines.iter().any(|v| v["DriftAlert"] == 1.0
            && v["DriftedFeatures"].as_str().unwrap().contains("luminance"))
    );

    // AND `views` shows every hour, labelled or not, alerting from the dark
    // stretch's second hour (its first holds two dark captures beside two clean)
    let views = profiles::views(
        &d.store,
        Granularity::Hour,
        at(0, 0),
        at(9, 0),
        Some(VERSION),
        Vec::new(),
        0.35,
    )
    .await
    .unwrap();
    assert_eq!(views.len(), 9);
    let alerts: Vec<bool> = views
        .iter()
        .map(|v| v.drift.as_ref().unwrap().alert)
        .collect();
    assert_eq!(
        alerts,
        [false, false, false, false, false, false, false, true, true],
        "{views:#?}"
    );
    for v in &views {
        assert_eq!(v.metrics.images_labelled, 0);
        assert_eq!(
            v.metrics.captures_in_window, 2,
            "this version's captures only"
        );
        assert_eq!(v.estimated_ap50, None, "no labelled window to calibrate on");
    }
    assert_eq!(views[7].drift.as_ref().unwrap().hours, 2);
    // AND without a reference, no drift is made up
    let other = profiles::views(
        &d.store,
        Granularity::Hour,
        at(0, 0),
        at(9, 0),
        Some("candidate-1"),
        Vec::new(),
        0.35,
    )
    .await
    .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].drift, None);
    assert_eq!(other[0].metrics.captures_in_window, 1);
}

#[tokio::test]
async fn the_rollup_estimates_ap50_once_enough_days_are_labelled() {
    let d = deps();
    // GIVEN six labelled days before, whose AP50 follows their mean top score
    let ap50_of = |top: f64| 1.2 * top - 0.2;
    for back in 1..=6 {
        let start = at(0, 0) - Duration::days(back);
        let window = Window::containing(Granularity::Day, start);
        let top = 0.4 + 0.07 * back as f64;
        let mut summary = ProfileSummary::default();
        let mut model = None;
        for n in 0..10 {
            let mut c = capture(n, start, 0.5, VERSION);
            c.profile.as_mut().unwrap().top_score = top + 0.01 * f64::from(n % 3);
            summary.add(c.profile.as_ref());
            model = Some(c.model);
        }
        let model = model.unwrap();
        let profile = ProfileWindow {
            window,
            model: model.clone(),
            computed_at: now(),
            summary,
            folded: Vec::new(),
        };
        put(
            &d.store,
            &keys::profile_window(&window, VERSION).unwrap(),
            records::to_json(&profile),
        )
        .await;
        let mut m = WindowMetrics::compute(window, model, &[], 10, 0.35, now()).unwrap();
        m.images_labelled = 10;
        m.coco.ap50 = ap50_of(top + 0.01);
        put(
            &d.store,
            &keys::window_metrics(&window, VERSION).unwrap(),
            records::to_json(&m),
        )
        .await;
    }
    // WHEN today's captures arrive, none labelled, and the rollup folds them
    for n in 0..4 {
        let mut c = capture(100 + n, at(3, i64::from(n) * 10), 0.5, VERSION);
        c.profile.as_mut().unwrap().top_score = 0.6;
        arrive(&d, &c).await;
    }
    let r = rollup_deps(d.store.clone());
    rollup::run(&r).await.unwrap();

    // THEN the day's EMF line carries the estimate and its band; the hour's
    // none (no labelled hour to calibrate on)
    let lines: Vec<serde_json::Value> = r
        .sink
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("ProfiledCaptures").is_some())
        .collect();
    let day = lines
        .iter()
        .find(|v| v["Granularity"] == "day")
        .expect("a day line");
    let estimate = day["EstimatedAP50"].as_f64().expect("an estimate");
    assert!((estimate - ap50_of(0.6)).abs() < 0.05, "{day}");
    assert!(day["EstimatedAP50Low"].as_f64().unwrap() <= estimate);
    assert!(day["EstimatedAP50High"].as_f64().unwrap() >= estimate);
    let hour = lines
        .iter()
        .find(|v| v["Granularity"] == "hour")
        .expect("an hour line");
    assert!(hour.get("EstimatedAP50").is_none(), "{hour}");
}

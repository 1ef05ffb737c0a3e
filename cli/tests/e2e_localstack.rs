//! The whole local stack, end to end: real LocalStack (S3, SQS, redrive),
//! the four functions under `cargo lambda watch`, and `modelobs dev`'s event
//! router between them. Traffic comes from `modelobs simulate`, labels from
//! `modelobs label --oracle` through the signed webhook; the windows the
//! rollup function writes must equal `modelobs eval` on the same images.
//!
//! `#[ignore]`d with the reason: `make test` runs it inside
//! `localstack/with-stack` (which exports the bucket and queue variables)
//! with `--include-ignored`; without them it fails, naming what is missing.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use modelobs_adapters::ObjectStore;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::records::{
    self, CaptureRecord, Granularity, ImageEval, ProfileWindow, Window, WindowMetrics,
};
use modelobs_core::{classes, keys};
use serde_json::{Value, json};
use support::dev::Dev;

const BIN: &str = env!("CARGO_BIN_EXE_modelobs");

type Store = Retrying<S3Store>;

struct Stack {
    bucket: String,
    metrics_queue: String,
    metrics_dlq: String,
}

fn stack() -> Stack {
    modelobs_testkit::require_localstack();
    modelobs_testkit::require_ort();
    let vars = [
        "DATA_BUCKET",
        "METRICS_QUEUE_URL",
        "METRICS_DLQ_URL",
        "SAMPLER_EVENTS_QUEUE_URL",
    ];
    let missing: Vec<&str> = vars
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "the end-to-end test needs {} (localstack/with-stack exports them)",
        missing.join(", ")
    );
    Stack {
        bucket: std::env::var("DATA_BUCKET").unwrap(),
        metrics_queue: std::env::var("METRICS_QUEUE_URL").unwrap(),
        metrics_dlq: std::env::var("METRICS_DLQ_URL").unwrap(),
    }
}

/// `modelobs dev` on `port`, every capture sampled (the test follows each
/// one to its window), no schedules (the test runs the rollup itself).
fn start_dev(port: u16, envs: &[(&str, &str)]) -> Dev {
    let port = port.to_string();
    let mut all = vec![
        (
            "SAMPLING_POLICY",
            r#"{"name": "e2e", "uniform_rate": 1.0, "empty_rate": 1.0, "daily_budget": 1000}"#,
        ),
        ("WEBHOOK_SECRET", "e2e-webhook-secret"),
    ];
    all.extend_from_slice(envs);
    let args = [
        "--port",
        &port,
        "--rollup-every-s",
        "0",
        "--sweep-every-s",
        "0",
    ];
    Dev::start(&args, &all)
}

fn modelobs(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(support::repo_root())
        .output()
        .expect("running modelobs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "modelobs {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn keys_under(store: &Store, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// Polls `count(prefix)` until it reaches `want` (or fails after `limit`).
async fn wait_for(store: &Store, prefixes: &[String], want: usize, what: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut n = 0;
        for p in prefixes {
            n += keys_under(store, p).await.len();
        }
        if n >= want {
            assert_eq!(n, want, "{what}: more than expected");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {n} of {want} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn get_json<T: records::Record>(store: &Store, key: &str) -> T {
    let object = store
        .get(key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} is missing"));
    records::from_json(&object.body).unwrap()
}

/// The COCO ground truth and results of these captures, as `modelobs eval` reads them.
fn coco_files(
    dir: &Path,
    truth: &[Value],
    captures: &BTreeMap<String, CaptureRecord>,
) -> (PathBuf, PathBuf) {
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    let mut results = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        let image_id = i as u64 + 1;
        let id = t["id"].as_str().unwrap();
        images.push(json!({"id": image_id, "width": t["width"], "height": t["height"]}));
        for o in t["objects"].as_array().unwrap() {
            let b = &o["box"];
            let (x1, y1, x2, y2) = (
                b["x1"].as_f64().unwrap(),
                b["y1"].as_f64().unwrap(),
                b["x2"].as_f64().unwrap(),
                b["y2"].as_f64().unwrap(),
            );
            let class = classes::by_name(o["class"].as_str().unwrap()).unwrap();
            annotations.push(json!({
                "id": annotations.len() + 1,
                "image_id": image_id,
                "category_id": class.category_id,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }));
        }
        for d in &captures[id].detections {
            let class = classes::by_index(d.class_id).unwrap();
            results.push(json!({
                "image_id": image_id,
                "category_id": class.category_id,
                "bbox": d.bbox.to_xywh(),
                "score": d.score,
            }));
        }
    }
    let categories: Vec<Value> = classes::coco80()
        .map(|c| json!({"id": c.category_id, "name": c.name}))
        .collect();
    let gt = dir.join(format!("gt-{}.json", truth.len()));
    let dt = dir.join(format!("dt-{}.json", truth.len()));
    std::fs::write(
        &gt,
        serde_json::to_vec(
            &json!({"images": images, "annotations": annotations, "categories": categories}),
        )
        .unwrap(),
    )
    .unwrap();
    std::fs::write(&dt, serde_json::to_vec(&results).unwrap()).unwrap();
    (gt, dt)
}

fn assert_close(window: &Value, eval: &Value, what: &str) {
    let close = |a: f64, b: f64, k: &str| {
        assert!((a - b).abs() <= 1e-9, "{what} {k}: eval {a} vs window {b}")
    };
    for (k, v) in eval.as_object().unwrap() {
        if let (Some(a), Some(b)) = (v.as_f64(), window[k].as_f64()) {
            close(a, b, k);
        }
    }
    // `modelobs eval` lists every category of the GT file (-1 without objects);
    // the window lists the classes its images have: those must agree exactly.
    let (window_classes, eval_classes) = (
        window["per_class"].as_object().unwrap(),
        eval["per_class"].as_object().unwrap(),
    );
    for (class, e) in eval_classes {
        let has_gt = e["AP"].as_f64().is_some_and(|ap| ap >= 0.0);
        assert!(
            !has_gt || window_classes.contains_key(class),
            "{what}: no {class} in the window"
        );
    }
    for (class, w) in window_classes {
        let e = &eval_classes[class];
        for (k, v) in w.as_object().unwrap() {
            if let (Some(b), Some(a)) = (v.as_f64(), e[k].as_f64()) {
                close(a, b, &format!("{class}.{k}"));
            }
        }
    }
}

/// Each day's window of `version` equals `modelobs eval` on that day's images,
/// their labels and `captures`' detections (one record per capture id); its AP50s.
async fn assert_day_windows(
    store: &Store,
    dir: &Path,
    truth: &[Value],
    captures: &BTreeMap<String, CaptureRecord>,
    days: &[NaiveDate],
    version: &str,
    per_day: usize,
) -> Vec<f64> {
    let mut day_ap50 = Vec::new();
    for day in days {
        let day_truth: Vec<Value> = truth
            .iter()
            .filter(|t| {
                t["captured_at"]
                    .as_str()
                    .unwrap()
                    .parse::<DateTime<Utc>>()
                    .unwrap()
                    .date_naive()
                    == *day
            })
            .cloned()
            .collect();
        assert_eq!(day_truth.len(), per_day);
        let (gt, dt) = coco_files(dir, &day_truth, captures);
        let eval: Value = serde_json::from_str(&modelobs(
            &[
                "eval",
                "--gt",
                gt.to_str().unwrap(),
                "--dt",
                dt.to_str().unwrap(),
                "--json",
            ],
            &[],
        ))
        .unwrap();
        let window = modelobs_core::records::Window {
            granularity: modelobs_core::records::Granularity::Day,
            start: day.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        };
        let key = keys::window_metrics(&window, version).unwrap();
        let w: WindowMetrics = get_json(store, &key).await;
        assert_eq!(w.images_labelled as usize, per_day, "{key}");
        // Every capture of the day, whichever versions answered it.
        assert_eq!(w.captures_in_window as usize, per_day, "{key}");
        assert_close(&serde_json::to_value(&w.coco).unwrap(), &eval, &key);
        day_ap50.push(w.coco.ap50);
    }
    day_ap50
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs LocalStack, ONNX Runtime and cargo-lambda: make test runs it"]
async fn the_whole_loop_from_predict_to_window() {
    let env = stack();
    let port: u16 = 9100 + (std::process::id() % 400) as u16;
    let base = format!("http://127.0.0.1:{port}");
    // The SDK retries nothing itself: the store retries like the functions do.
    let store = Retrying::new(
        S3Store::new(S3Store::client_from_env().await, &env.bucket),
        RetryPolicy::default(),
    );
    let sqs = modelobs_adapters::queue::SqsQueue::client_from_env().await;
    let work = std::env::temp_dir().join(format!("modelobs-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();

    // Two simulated days of their own: a day this stack has not seen yet.
    let day0 = NaiveDate::from_ymd_opt(2001, 1, 1).unwrap()
        + chrono::Duration::days((Utc::now().timestamp() / 60 % 5000) * 2);
    let days = [day0, day0 + chrono::Duration::days(1)];
    let per_day = 4usize;
    let capture_prefixes: Vec<String> = days
        .iter()
        .map(|d| format!("captures/predictions/dt={d}/"))
        .collect();

    // A candidate in the registry, run as shadow from the start: the serving
    // model with another version and score threshold (other detections).
    let candidate_version = format!("e2e-candidate-{}", std::process::id());
    let candidate_dir = candidate_model(&work.join("candidate"), &candidate_version);
    let pushed = modelobs(&["model", "push", candidate_dir.to_str().unwrap()], &[]);
    assert!(pushed.contains("pushed"), "{pushed}");
    let candidate_name = candidate_version_name(&candidate_dir);
    let candidate_ref = format!("{candidate_name}/{candidate_version}");

    let mut dev = start_dev(port, &[("SHADOW_MODEL_REF", &candidate_ref)]);

    // GIVEN traffic on two days: clean, then darker, blurrier and smaller
    let truth_path = work.join("truth.jsonl");
    let out = modelobs(
        &[
            "simulate",
            "--days",
            "2",
            "--rate",
            &per_day.to_string(),
            "--drift",
            "clean:1,dark+blur+small:1",
            "--start",
            &day0.to_string(),
            "--truth-out",
            truth_path.to_str().unwrap(),
            "--target",
            &format!("{base}/lambda-url/inference/predict"),
        ],
        &[],
    );
    println!("{out}");
    let n = 2 * per_day;
    let truth: Vec<Value> = std::fs::read_to_string(&truth_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(truth.len(), n);

    // THEN every capture is in S3, the sampler decided on each and queued it for labelling
    wait_for(
        &store,
        &capture_prefixes,
        n,
        "capture records",
        Duration::from_secs(60),
    )
    .await;
    let mut captures = BTreeMap::new();
    for p in &capture_prefixes {
        for key in keys_under(&store, p).await {
            let c: CaptureRecord = get_json(&store, &key).await;
            assert!(
                store.get(&c.image.key).await.unwrap().is_some(),
                "image of {key}"
            );
            captures.insert(c.id.to_string(), c);
        }
    }
    let ids: BTreeSet<String> = truth
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, captures.keys().cloned().collect());
    let sample_keys: Vec<String> = captures.values().map(|c| keys::sample(c.id)).collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for key in &sample_keys {
        while store.get(key).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "no sampling decision at {key}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let task_keys: Vec<String> = captures
        .values()
        .map(|c| keys::labeling_task(c.id))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for key in &task_keys {
        while store.get(key).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "no labeling task at {key}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // WHEN a label arrives signed with the wrong secret, THEN 401 and nothing is written
    let first = captures.values().next().unwrap().id;
    let forged = json!({"id": "forged", "dataRow": {"globalKey": first.to_string()},
        "updatedAt": "2026-11-26T09:15:00.000Z", "label": {"objects": []}});
    let body = serde_json::to_vec(&forged).unwrap();
    let (sha1, sha256) = modelobs_labelbox::webhook::signature::sign(b"not-the-secret", &body);
    let response = reqwest::Client::new()
        .post(format!("{base}/lambda-url/webhook/"))
        .header("x-labelbox-event", "LABEL_CREATED")
        .header("x-hub-signature", sha1)
        .header("x-hub-signature-256", sha256)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert!(
        store.get(&keys::label(first)).await.unwrap().is_none(),
        "a forged label was written"
    );

    // WHEN the oracle labeler answers the queue through the signed webhook
    let out = modelobs(
        &[
            "label",
            "--oracle",
            "--truth",
            truth_path.to_str().unwrap(),
            "--webhook",
            &format!("{base}/lambda-url/webhook/"),
            "--bucket",
            &env.bucket,
        ],
        &[("WEBHOOK_SECRET", "e2e-webhook-secret")],
    );
    assert!(out.contains(&format!("{n} task(s) answered")), "{out}");

    // THEN each label is stored and evaluated (webhook → SQS → router → metrics)
    let eval_keys: Vec<String> = captures
        .values()
        .map(|c| keys::image_eval(c.id, c.captured_at))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    for key in &eval_keys {
        while store.get(key).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "no evaluation at {key}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for c in captures.values() {
        let e: ImageEval = get_json(&store, &keys::image_eval(c.id, c.captured_at)).await;
        assert_eq!(e.id, c.id);
    }

    // WHEN the rollup runs (its schedule, invoked as EventBridge would)
    let scheduled = json!({"version": "0", "id": "e2e", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": Utc::now().to_rfc3339(),
        "region": "us-east-1", "resources": [], "detail": {}});
    let response = reqwest::Client::new()
        .post(format!("{base}/2015-03-31/functions/rollup/invocations"))
        .json(&scheduled)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "rollup: {}",
        response.text().await.unwrap()
    );

    // THEN each day's window equals `modelobs eval` on that day's images and labels
    let version = captures.values().next().unwrap().model.version.clone();
    let day_ap50 =
        assert_day_windows(&store, &work, &truth, &captures, &days, &version, per_day).await;
    println!("AP50 by day: {day_ap50:?}");

    // AND the label-free side: every capture's profile folded into its day's
    // window of the serving version (the sampler wrote each delta, the rollup
    // folded them), none left pending; a reference pinned on the first day;
    // `modelobs metrics --json` gives both days their drift against it
    for d in &days {
        let w = Window {
            granularity: Granularity::Day,
            start: d.and_time(chrono::NaiveTime::MIN).and_utc(),
        };
        let p: ProfileWindow = get_json(&store, &keys::profile_window(&w, &version).unwrap()).await;
        assert_eq!(
            (p.summary.captures, p.summary.profiled),
            (per_day as u64, per_day as u64),
            "{d}"
        );
    }
    let pending = keys_under(&store, keys::PROFILES_PENDING).await;
    assert!(
        !pending
            .iter()
            .any(|k| days.iter().any(|d| k.contains(&d.to_string()))),
        "{pending:?}"
    );
    let (from, to) = (days[0].to_string(), days[1].to_string());
    let pinned = modelobs(
        &[
            "drift",
            "reference",
            "--from",
            &from,
            "--to",
            &from,
            "--model-version",
            &version,
            "--bucket",
            &env.bucket,
        ],
        &[],
    );
    assert!(pinned.contains(&format!("{per_day} captures")), "{pinned}");
    let printed = modelobs(
        &[
            "metrics",
            "--from",
            &from,
            "--to",
            &to,
            "--granularity",
            "day",
            "--model-version",
            &version,
            "--json",
            "--bucket",
            &env.bucket,
        ],
        &[],
    );
    let views: Vec<Value> = serde_json::from_str(&printed).unwrap();
    assert_eq!(views.len(), 2, "{printed}");
    for v in &views {
        assert_eq!(v["drift"]["captures"], per_day, "{v}");
        assert!(
            v["drift"]["reference"]
                .as_str()
                .unwrap()
                .starts_with("captures "),
            "{v}"
        );
        assert_eq!(
            v["captures_in_window"], per_day,
            "this version's captures: {v}"
        );
    }
    assert_eq!(
        views[0]["drift"]["alert"], false,
        "the reference day against itself"
    );

    // AND the shadow answered every capture, under its own version, on the same images:
    // its windows equal `modelobs eval` on its own detections against the same labels
    let mut shadows = BTreeMap::new();
    for c in captures.values() {
        let key = keys::shadow_capture_record(c.id, c.captured_at, &candidate_version).unwrap();
        let s: CaptureRecord = get_json(&store, &key).await;
        assert_eq!(
            (s.id, &s.image, &s.model.version),
            (c.id, &c.image, &candidate_version)
        );
        let e: ImageEval = get_json(
            &store,
            &keys::shadow_image_eval(c.id, c.captured_at, &candidate_version).unwrap(),
        )
        .await;
        assert_eq!(e.model.version, candidate_version);
        shadows.insert(c.id.to_string(), s);
    }
    // ... and its label-free windows: every shadow answer's profile folded
    // into the candidate's own day windows (the inference function wrote the
    // deltas: no sampler reads a shadow record)
    for d in &days {
        let w = Window {
            granularity: Granularity::Day,
            start: d.and_time(chrono::NaiveTime::MIN).and_utc(),
        };
        let key = keys::profile_window(&w, &candidate_version).unwrap();
        let p: ProfileWindow = get_json(&store, &key).await;
        assert_eq!(
            (p.summary.captures, p.summary.profiled),
            (per_day as u64, per_day as u64),
            "{key}"
        );
    }
    std::fs::create_dir_all(work.join("shadow")).unwrap();
    assert_day_windows(
        &store,
        &work.join("shadow"),
        &truth,
        &shadows,
        &days,
        &candidate_version,
        per_day,
    )
    .await;

    // WHEN a poison message reaches the metrics queue, THEN it ends in the DLQ, alone
    sqs.send_message()
        .queue_url(&env.metrics_queue)
        .message_body(r#"{"id": "not-a-capture-id", "label_version": 1}"#)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&env.metrics_dlq)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        if let Some(m) = got
            .messages
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.body().is_some_and(|b| b.contains("not-a-capture-id")))
        {
            sqs.delete_message()
                .queue_url(&env.metrics_dlq)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the poison message never reached the DLQ"
        );
    }

    // AND stopping modelobs dev leaves no process behind
    assert!(dev.stop(), "processes left: {:?}", dev.leftovers());

    // WHEN the candidate is promoted and the functions restart serving it from the registry
    let promoted = modelobs(
        &["model", "promote", &candidate_ref, "--reason", "e2e"],
        &[],
    );
    assert!(
        promoted.contains(&format!("promoted {candidate_ref}")),
        "{promoted}"
    );
    let listed: Value = serde_json::from_str(&modelobs(&["model", "list", "--json"], &[])).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["version"] == candidate_version.as_str() && m["promoted"] == true),
        "{listed}"
    );
    let mut dev = start_dev(port, &[("MODEL_REF", &candidate_ref)]);
    // THEN it answers, and its captures carry its version
    let health: Value = reqwest::get(format!("{base}/lambda-url/inference/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["model"]["version"],
        candidate_version.as_str(),
        "{health}"
    );
    let day2 = day0 + chrono::Duration::days(2);
    modelobs(
        &[
            "simulate",
            "--days",
            "1",
            "--rate",
            "2",
            "--drift",
            "clean:1",
            "--start",
            &day2.to_string(),
            "--truth-out",
            work.join("truth-promoted.jsonl").to_str().unwrap(),
            "--target",
            &format!("{base}/lambda-url/inference/predict"),
        ],
        &[],
    );
    let prefix = format!("captures/predictions/dt={day2}/");
    wait_for(
        &store,
        std::slice::from_ref(&prefix),
        2,
        "captures after the promotion",
        Duration::from_secs(60),
    )
    .await;
    for key in keys_under(&store, &prefix).await {
        let c: CaptureRecord = get_json(&store, &key).await;
        assert_eq!(c.model.version, candidate_version, "{key}");
    }
    assert!(dev.stop(), "processes left: {:?}", dev.leftovers());
    std::fs::remove_dir_all(&work).unwrap();
}

/// The serving model under another version and score threshold, as a model directory.
fn candidate_model(dir: &Path, version: &str) -> PathBuf {
    support::model_variant(dir, version, |meta| {
        meta["postprocess"]["score_threshold"] = 0.3.into();
    })
}

fn candidate_version_name(dir: &Path) -> String {
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    meta["name"].as_str().unwrap().to_string()
}

//! The fault soak through the local stack: real LocalStack, the functions
//! under `cargo lambda watch`, `modelobs dev`'s router, and between them and
//! LocalStack a proxy that fails S3 and SQS calls (before and after doing
//! them) and takes LocalStack away for a while as its restart does. The
//! sampler hands captures to a fake Labelbox that answers 429/5xx storms and
//! black holes; the metrics and rollup functions ship to a fake Observe that
//! does the same. Labels come as Labelbox sends them: through the signed
//! webhook, every event one to three times, all reordered, updates and
//! deletions racing their own messages, failed deliveries sent again. The
//! router is killed mid-batch and started again; poison messages go to the
//! metrics queue. Then the bucket is compared with the truth
//! (`modelobs_testkit::soak`): labels lost, evaluations stale, windows
//! double-counted or different from evaluating each capture's final label,
//! good messages in the DLQ, poison ones not in it.
//!
//! What it can't do: restart LocalStack itself (its state would be gone:
//! persistence is a LocalStack Pro feature), so the restart is the proxy
//! refusing connections and cutting what is in flight. The metrics queue is
//! the run's own (the template's redrive, 5 receives, and a 30 s visibility
//! timeout instead of 360 s, so that messages a killed router held come back
//! within the run).
//!
//! `make test` runs it on 40 captures; `make soak` on 1 000
//! (`MODELOBS_STACK_SOAK_CAPTURES`). `#[ignore]`d with the reason like the
//! end-to-end test: it needs LocalStack, ONNX Runtime and cargo-lambda.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use modelobs_adapters::s3::S3Store;
use modelobs_adapters::{ObjectStore, PutCondition};
use modelobs_adapters::{RetryPolicy, Retrying};
use modelobs_core::{classes, keys, records};
use modelobs_labelbox::LabelboxClient;
use modelobs_labelbox::setup::SetupSpec;
use modelobs_labelbox::webhook::signature;
use modelobs_testkit::fake_labelbox::FakeLabelbox;
use modelobs_testkit::fake_observe::FakeObserve;
use modelobs_testkit::fault_proxy::FaultProxy;
use modelobs_testkit::soak;
use modelobs_testkit::storm::Storm;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::dev::Dev;

type Store = Retrying<S3Store>;

const SECRET: &str = "soak-webhook-secret";
const API_KEY: &str = "soak-labelbox-key";
const THRESHOLD: f64 = 0.35;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("the stack soak needs {name} (localstack/with-stack exports it)")
    })
}

/// The run's own metrics queue and its DLQ, deleted at the end.
struct Queues {
    metrics: String,
    dlq: String,
}

async fn own_queues(sqs: &aws_sdk_sqs::Client, tag: &str) -> Queues {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{tag}-metrics-dlq"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let metrics = sqs
        .create_queue()
        .queue_name(format!("{tag}-metrics"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "30",
        )
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": "5"}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    Queues { metrics, dlq }
}

/// Messages in `url`, visible or in flight.
async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let Ok(out) = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
    else {
        return usize::MAX;
    };
    out.attributes
        .unwrap_or_default()
        .values()
        .map(|v| v.parse::<usize>().unwrap_or(0))
        .sum()
}

/// Every message now in `url`, deleted.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = got.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.unwrap_or_default());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// One webhook delivery: which capture, the body, and how it went.
struct Delivery {
    item: usize,
    body: Vec<u8>,
}

struct Deliveries {
    waiting: Vec<Delivery>,
    /// Where a failed delivery goes back in.
    rng: ChaCha8Rng,
    in_flight: usize,
    accepted: usize,
    retried: usize,
    /// A valid delivery the webhook refused with a 4xx: its label is lost.
    refused: Vec<String>,
}

/// What went in and what came out.
#[derive(Default)]
struct Figures {
    captures: usize,
    webhook_deliveries: usize,
    duplicates: usize,
    webhook_retries: usize,
    forged_refused: usize,
    valid_refused: usize,
    router_crashes: usize,
    in_flight_at_crash: usize,
    store_faults: u64,
    store_black_holes: u64,
    outages: u64,
    cut_by_outage: u64,
    labelbox_faults: u64,
    labelbox_black_holes: u64,
    observe_faults: u64,
    observe_black_holes: u64,
    sampler_failures: usize,
    outcome: soak::Outcome,
    poison_sent: usize,
    poison_in_dlq: usize,
    good_in_dlq: usize,
    seconds: u64,
}

impl Figures {
    fn table(&self) -> String {
        let mut rows = vec![
            ("captures, labelled", self.captures.to_string()),
            ("webhook deliveries", self.webhook_deliveries.to_string()),
            ("  of which duplicates", self.duplicates.to_string()),
            (
                "  sent again after a failure",
                self.webhook_retries.to_string(),
            ),
            ("forged deliveries refused", self.forged_refused.to_string()),
            ("valid deliveries refused", self.valid_refused.to_string()),
            ("router killed mid-batch", self.router_crashes.to_string()),
            (
                "  metrics messages it held",
                self.in_flight_at_crash.to_string(),
            ),
            ("S3/SQS calls failed", self.store_faults.to_string()),
            (
                "S3/SQS calls black-holed",
                self.store_black_holes.to_string(),
            ),
            ("LocalStack unreachable", self.outages.to_string()),
            ("  calls cut by it", self.cut_by_outage.to_string()),
            ("Labelbox 429/5xx", self.labelbox_faults.to_string()),
            (
                "Labelbox black holes",
                self.labelbox_black_holes.to_string(),
            ),
            ("Observe 429/5xx", self.observe_faults.to_string()),
            ("Observe black holes", self.observe_black_holes.to_string()),
            (
                "sampler events to its failure queue",
                self.sampler_failures.to_string(),
            ),
        ];
        rows.extend(self.outcome.rows());
        rows.extend([
            (
                "poison messages in the DLQ",
                format!("{}/{}", self.poison_in_dlq, self.poison_sent),
            ),
            ("good messages in the DLQ", self.good_in_dlq.to_string()),
            ("seconds", self.seconds.to_string()),
        ]);
        soak::table(&rows)
    }
}

/// `modelobs dev` on `port` with `envs`, off the async runtime (it blocks
/// until the functions are built and served).
async fn start_dev(args: Vec<String>, envs: Vec<(String, String)>) -> Dev {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Dev::start(&args, &envs)
    })
    .await
    .unwrap()
}

/// Delivers `body` as Labelbox does; the HTTP status, or `None` when the
/// connection failed.
async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    secret: &[u8],
    id: &str,
) -> Option<u16> {
    let (sha1, sha256) = signature::sign(secret, body);
    http.post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature", sha1)
        .header("x-hub-signature-256", sha256)
        .header("x-labelbox-id", id)
        .body(body.to_vec())
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs LocalStack, ONNX Runtime and cargo-lambda: make test runs it"]
async fn the_local_stack_loses_nothing_under_faults() {
    let localstack = modelobs_testkit::require_localstack();
    modelobs_testkit::require_ort();
    let sampler_failures = required("SAMPLER_FAILURE_QUEUE_URL");
    let sampler_events = required("SAMPLER_EVENTS_QUEUE_URL");
    let n = env_or("MODELOBS_STACK_SOAK_CAPTURES", 40usize);
    let seed = env_or("MODELOBS_STACK_SOAK_SEED", 1u64);
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tag = format!(
        "modelobs-soak-{}-{}",
        std::process::id(),
        Utc::now().timestamp()
    );
    let version = tag.clone();

    // The bucket as the test sees it: LocalStack itself, no faults.
    let store: Store = Retrying::new(
        S3Store::new(S3Store::client_from_env().await, &localstack.bucket),
        RetryPolicy::default(),
    );
    let sqs = modelobs_adapters::queue::SqsQueue::client_from_env().await;
    let queues = own_queues(&sqs, &tag).await;
    // Earlier runs' failures are not this run's.
    drain(&sqs, &sampler_failures).await;

    // Labelbox with a project for the sampler; Observe; the proxy before LocalStack.
    let labelbox = Arc::new(FakeLabelbox::start(API_KEY).await);
    let setup = LabelboxClient::new(API_KEY)
        .unwrap()
        .with_endpoint(labelbox.endpoint())
        .setup(&SetupSpec {
            project_name: "soak".into(),
            dataset_name: "soak captures".into(),
            ontology_name: "soak ontology".into(),
            tool_names: classes::ANIMALS.iter().map(|c| c.to_string()).collect(),
            webhook: None,
            // The soak's sampler presigns (LABELBOX_IMAGE_ACCESS unset).
            image_access: modelobs_labelbox::setup::ImageAccess::Presigned,
        })
        .await
        .unwrap();
    let labelbox_storm = Arc::new(Storm::new(seed ^ 0x1ab, 0.0));
    labelbox.storm(labelbox_storm.clone());
    let observe = FakeObserve::start().await;
    let observe_storm = Arc::new(Storm::new(seed ^ 0x0b5, 0.0));
    observe.storm(observe_storm.clone());
    let proxy = FaultProxy::start(&localstack.endpoint, seed ^ 0x5e3, 0.0).await;

    let port: u16 = 9500 + (std::process::id() % 400) as u16;
    let base = format!("http://127.0.0.1:{port}");
    let dev_args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--rollup-every-s",
        "5",
        "--sweep-every-s",
        "10",
        "--retry-delay-s",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dev_env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", proxy.endpoint()),
        ("METRICS_QUEUE_URL", queues.metrics.clone()),
        (
            // Its own name: the quota (at most 1 000 a day) is the run's.
            "SAMPLING_POLICY",
            serde_json::json!({"name": tag, "uniform_rate": 1.0, "empty_rate": 1.0,
                "daily_budget": 1000})
            .to_string(),
        ),
        ("WEBHOOK_SECRET", SECRET.into()),
        ("LABELING_BACKEND", "labelbox".into()),
        ("LABEL_SOURCE", "labelbox".into()),
        ("LABELBOX_API_KEY", API_KEY.into()),
        ("LABELBOX_ENDPOINT", labelbox.endpoint()),
        ("LABELBOX_PROJECT_ID", setup.project_id.clone()),
        ("LABELBOX_DATASET_ID", setup.dataset_id.clone()),
        ("OBSERVE_URL", observe.base_url()),
        ("OBSERVE_TOKEN", "soak-observe-token".into()),
        ("SCORE_THRESHOLD", THRESHOLD.to_string()),
        ("SWEEP_OLDER_THAN_S", "20".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut dev = start_dev(dev_args.clone(), dev_env.clone()).await;

    // GIVEN captures of the last hours (the sweep only looks back so far),
    // written as the inference function writes them, while Labelbox storms.
    let items = soak::items(
        n,
        &mut rng,
        Utc::now() - chrono::Duration::hours(3),
        chrono::Duration::hours(1),
        Some(&version),
        &tag,
    );
    let mut figures = Figures {
        captures: n,
        ..Figures::default()
    };
    let storm_from = Instant::now();
    labelbox_storm.set_rate(0.4);
    observe_storm.set_rate(0.5);
    proxy.set_rate(0.03);
    for item in &items {
        let key = keys::capture_record(item.capture.id, item.capture.captured_at);
        store
            .put(
                &key,
                records::to_json(&item.capture).into(),
                "application/json",
                PutCondition::Always,
            )
            .await
            .unwrap();
    }

    // Poison: bodies no handler can use, straight onto the metrics queue.
    let poison = [
        "not json".to_string(),
        format!(r#"{{"id": "{tag}", "label_version": 1}}"#),
        r#"{"id": "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90"}"#.to_string(),
    ];
    for p in &poison {
        sqs.send_message()
            .queue_url(&queues.metrics)
            .message_body(p)
            .send()
            .await
            .unwrap();
    }
    figures.poison_sent = poison.len();

    // Every event one to three times, all shuffled.
    let mut waiting = Vec::new();
    for (i, item) in items.iter().enumerate() {
        for body in &item.events {
            let copies = rng.random_range(1..=3);
            figures.duplicates += copies - 1;
            for _ in 0..copies {
                waiting.push(Delivery {
                    item: i,
                    body: body.clone(),
                });
            }
        }
    }
    waiting.shuffle(&mut rng);
    figures.webhook_deliveries = waiting.len();
    let total = waiting.len();
    let deliveries = Arc::new(Mutex::new(Deliveries {
        waiting,
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0xde1),
        in_flight: 0,
        accepted: 0,
        retried: 0,
        refused: Vec::new(),
    }));
    let ids: Arc<Vec<String>> = Arc::new(items.iter().map(|i| i.capture.id.to_string()).collect());
    let webhook = format!("{base}/lambda-url/webhook/");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Forged deliveries (a wrong secret): each must be a 401.
    for item in items.iter().take(3) {
        let status = post(
            &http,
            &webhook,
            &item.events[0],
            b"not-the-secret",
            "forged",
        )
        .await;
        if status == Some(401) {
            figures.forged_refused += 1;
        }
    }

    // WHEN four senders deliver (a capture's events once Labelbox has its data row) ...
    let sent_id = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let deliveries = deliveries.clone();
        let ids = ids.clone();
        let http = http.clone();
        let webhook = webhook.clone();
        let labelbox = labelbox.clone();
        let sent_id = sent_id.clone();
        senders.push(tokio::spawn(async move {
            loop {
                let submitted: BTreeSet<String> = labelbox
                    .data_rows()
                    .into_iter()
                    .map(|r| r.global_key)
                    .collect();
                let next = {
                    let mut d = deliveries.lock().unwrap();
                    if d.waiting.is_empty() && d.in_flight == 0 {
                        return;
                    }
                    let at = d
                        .waiting
                        .iter()
                        .rposition(|x| submitted.contains(&ids[x.item]));
                    let next = at.map(|at| d.waiting.remove(at));
                    d.in_flight += usize::from(next.is_some());
                    next
                };
                let Some(delivery) = next else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let id = format!("delivery-{}", sent_id.fetch_add(1, Ordering::Relaxed));
                let status = post(&http, &webhook, &delivery.body, SECRET.as_bytes(), &id).await;
                let mut d = deliveries.lock().unwrap();
                d.in_flight -= 1;
                match status {
                    Some(s) if (200..300).contains(&s) => d.accepted += 1,
                    Some(s) if (400..500).contains(&s) && s != 429 => {
                        d.refused
                            .push(format!("{s}: {}", String::from_utf8_lossy(&delivery.body)));
                        d.accepted += 1;
                    }
                    _ => {
                        // Labelbox sends it again later.
                        d.retried += 1;
                        let len = d.waiting.len();
                        let at = d.rng.random_range(0..=len);
                        d.waiting.insert(at, delivery);
                    }
                }
            }
        }));
    }

    // ... while the faults come on a schedule of progress: the router killed
    // at 30 % of the deliveries, LocalStack away at 60 %, Labelbox calm once
    // half the captures are with it, everything calm at the end.
    let progress = || deliveries.lock().unwrap().accepted as f64 / total as f64;
    let deadline =
        Instant::now() + Duration::from_secs(env_or("MODELOBS_STACK_SOAK_LIMIT_S", 1500));
    let (mut crashed, mut outage) = (false, false);
    loop {
        let p = progress();
        if labelbox_storm_on(&labelbox, n, storm_from) {
            labelbox_storm.set_rate(0.4);
        } else {
            labelbox_storm.set_rate(0.0);
        }
        if !crashed && p >= 0.3 {
            crashed = true;
            figures.in_flight_at_crash = depth(&sqs, &queues.metrics).await;
            let watch = dev.crash();
            figures.router_crashes += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut args = dev_args.clone();
            args.push("--no-watch".into());
            dev = start_dev(args, dev_env.clone()).await;
            dev.adopt_watch(watch);
        }
        if !outage && p >= 0.6 {
            outage = true;
            proxy.outage(Duration::from_secs(10)).await;
        }
        if p >= 1.0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    labelbox_storm.set_rate(0.0);
    observe_storm.set_rate(0.0);
    proxy.set_rate(0.0);
    for s in senders {
        if Instant::now() > deadline {
            s.abort();
        } else {
            let _ = s.await;
        }
    }

    // THEN, once the queues are empty and every window of this run is rolled up ...
    let touched_of_run = || async {
        store
            .list(keys::WINDOWS_TOUCHED)
            .await
            .map(|l| {
                l.iter()
                    .filter(|o| o.key.contains(&format!("/{version}/")))
                    .count()
            })
            .unwrap_or(usize::MAX)
    };
    let mut quiet_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let busy = depth(&sqs, &queues.metrics).await
            + depth(&sqs, &sampler_events).await
            + touched_of_run().await;
        if busy == 0 {
            // Two rollup periods with nothing to do: the last rollup has run.
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(12) {
                break;
            }
        } else {
            quiet_since = None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let (unsent, refused) = {
        let d = deliveries.lock().unwrap();
        figures.webhook_retries = d.retried;
        figures.valid_refused = d.refused.len();
        (d.waiting.len() + d.in_flight, d.refused.clone())
    };
    let proxy_counts = proxy.counts();
    figures.store_faults = proxy_counts.failed_before + proxy_counts.failed_after;
    figures.store_black_holes = proxy_counts.black_holes;
    figures.outages = proxy_counts.outages;
    figures.cut_by_outage = proxy_counts.cut;
    let lb = labelbox_storm.counts();
    (figures.labelbox_faults, figures.labelbox_black_holes) = (lb.statuses, lb.black_holes);
    let ob = observe_storm.counts();
    (figures.observe_faults, figures.observe_black_holes) = (ob.statuses, ob.black_holes);
    figures.sampler_failures = drain(&sqs, &sampler_failures)
        .await
        .iter()
        .filter(|b| ids.iter().any(|id| b.contains(id.as_str())))
        .count();
    figures.outcome = soak::compare(&items, THRESHOLD, |key| {
        let store = &store;
        async move { store.get(&key).await.unwrap().map(|o| o.body.to_vec()) }
    })
    .await;
    let in_dlq = drain(&sqs, &queues.dlq).await;
    figures.poison_in_dlq = poison.iter().filter(|p| in_dlq.contains(p)).count();
    figures.good_in_dlq = in_dlq.iter().filter(|b| !poison.contains(b)).count();
    figures.seconds = started.elapsed().as_secs();
    println!("stack fault soak, seed {seed}:\n{}", figures.table());

    let stopped = dev.stop();
    for q in [&queues.metrics, &queues.dlq] {
        let _ = sqs.delete_queue().queue_url(q).send().await;
    }
    let table = figures.table();
    assert_eq!(unsent, 0, "deliveries never accepted in time:\n{table}");
    assert!(
        refused.is_empty(),
        "valid deliveries refused: {refused:?}\n{table}"
    );
    assert!(
        figures.outcome.clean(),
        "the bucket differs from the truth:\n{table}"
    );
    assert_eq!(figures.poison_in_dlq, poison.len(), "{table}");
    assert_eq!(figures.good_in_dlq, 0, "{table}");
    assert_eq!(figures.forged_refused, 3, "{table}");
    // The faults were there: a soak that injected nothing proves nothing.
    assert!(
        figures.router_crashes == 1
            && figures.outages == 1
            && figures.store_faults > 0
            && figures.labelbox_faults > 0
            && figures.observe_faults > 0
            && figures.duplicates > 0,
        "faults were injected:\n{table}"
    );
    assert!(stopped, "processes left: {:?}", dev.leftovers());
}

/// Labelbox storms until half the captures are data rows there, for at most
/// two minutes of the run (the storm must end for the soak to).
fn labelbox_storm_on(labelbox: &FakeLabelbox, n: usize, since: Instant) -> bool {
    labelbox.data_rows().len() * 2 < n && since.elapsed() < Duration::from_secs(120)
}

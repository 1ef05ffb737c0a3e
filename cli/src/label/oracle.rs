//! The oracle labeler: answers each queued task with the boxes the simulator
//! knows are there, as a Labelbox `LABEL_CREATED` event.

use modelobs_adapters::RetryPolicy;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use modelobs_core::BBox;
use modelobs_core::records::{CaptureId, LabelingTask};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde_json::{Value, json};

use super::{LabelArgs, TaskQueue, WebhookClient};
use crate::truth::{self, TruthLine};

/// The Labelbox-shaped event for a task answered with `objects`.
pub fn label_event(id: CaptureId, objects: &[(String, BBox)], at: DateTime<Utc>) -> Value {
    let objects: Vec<Value> = objects
        .iter()
        .enumerate()
        .map(|(i, (class, b))| {
            let lb = b.to_labelbox();
            json!({
                "featureId": format!("oracle-{i}"),
                "title": class,
                "value": class,
                "bbox": {"top": lb.top, "left": lb.left, "height": lb.height, "width": lb.width},
            })
        })
        .collect();
    let time = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "id": format!("oracle-{id}"),
        "dataRow": {"id": format!("local-{id}"), "globalKey": id.to_string()},
        "project": {"id": "local"},
        "createdAt": time,
        "updatedAt": time,
        "label": {"objects": objects},
    })
}

/// The truth's boxes, each edge moved by N(0, σ) px (σ = 0: exact), kept inside the image.
pub fn annotate(truth: &TruthLine, noise_px: f64, seed: u64) -> Vec<(String, BBox)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ truth.id.0.as_u128() as u64);
    let normal = Normal::new(0.0, noise_px.max(0.0)).expect("σ ≥ 0");
    truth
        .objects
        .iter()
        .filter_map(|o| {
            let mut jitter = || {
                if noise_px > 0.0 {
                    normal.sample(&mut rng)
                } else {
                    0.0
                }
            };
            let b = o.bbox;
            let moved = BBox::new(
                b.x1 + jitter(),
                b.y1 + jitter(),
                b.x2 + jitter(),
                b.y2 + jitter(),
            )
            .ok()?
            .clamp(truth.width, truth.height);
            (moved.area() > 0.0).then(|| (o.class.clone(), moved))
        })
        .collect()
}

pub async fn run(args: &LabelArgs) -> Result<()> {
    let truth_path = args.truth.as_ref().expect("clap requires --truth");
    let truth: HashMap<CaptureId, TruthLine> = truth::load(truth_path)?;
    let bucket = args
        .bucket
        .as_deref()
        .context("--bucket (or DATA_BUCKET) is required")?;
    let queue = TaskQueue::from_env(bucket).await;
    let client = WebhookClient::new(&args.webhook, &args.secret)?;
    let delay = chrono::Duration::seconds(args.delay_s as i64);
    let mut answered = 0usize;
    let mut unknown: HashSet<CaptureId> = HashSet::new();
    let mut last_work = Instant::now();
    loop {
        let now = Utc::now();
        let tasks = queue.pending().await?;
        let mut waiting = 0usize;
        for (key, task) in &tasks {
            if task.created_at + delay > now {
                waiting += 1;
                continue;
            }
            let Some(t) = truth.get(&task.id) else {
                if unknown.insert(task.id) {
                    eprintln!("label: no truth for {} ({key}); left in the queue", task.id);
                }
                continue;
            };
            answer(&client, &queue, key, task, t, args).await?;
            answered += 1;
            last_work = Instant::now();
        }
        let idle = last_work.elapsed() >= Duration::from_secs(args.idle_s);
        if waiting == 0 && idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "label: {answered} task(s) answered by the oracle{}",
        if unknown.is_empty() {
            String::new()
        } else {
            format!(", {} without truth left queued", unknown.len())
        }
    );
    Ok(())
}

async fn answer<S: modelobs_adapters::ObjectStore>(
    client: &WebhookClient,
    queue: &TaskQueue<S>,
    key: &str,
    task: &LabelingTask,
    truth: &TruthLine,
    args: &LabelArgs,
) -> Result<()> {
    let objects = annotate(truth, args.noise_px, args.seed);
    let event = label_event(task.id, &objects, Utc::now());
    // The webhook answers 503 when S3 or SQS stumble: the sender retries,
    // with the project's one retry policy.
    let policy = RetryPolicy {
        attempts: 5,
        first_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let sent = policy
        .run_classified(
            "webhook delivery",
            |e: &WebhookAnswer| (e.status >= 500, None),
            || async {
                let (status, body) =
                    client
                        .send("LABEL_CREATED", &event)
                        .await
                        .map_err(|e| WebhookAnswer {
                            status: 0,
                            body: format!("{e:#}"),
                        })?;
                if (200..=299).contains(&status) {
                    Ok(())
                } else {
                    Err(WebhookAnswer { status, body })
                }
            },
        )
        .await;
    match sent {
        Ok(()) => queue.done(key).await,
        Err(WebhookAnswer { status: 0, body }) => {
            bail!("sending {} to the webhook: {body}", task.id)
        }
        Err(WebhookAnswer { status, body }) => {
            bail!("the webhook answered {status} for {}: {body}", task.id)
        }
    }
}

/// A delivery the webhook did not take: its status (0: no answer) and body.
struct WebhookAnswer {
    status: u16,
    body: String,
}

impl std::fmt::Display for WebhookAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::truth::TruthObject;

    fn truth() -> TruthLine {
        let t: DateTime<Utc> = "2026-11-20T10:00:00Z".parse().unwrap();
        TruthLine {
            id: CaptureId::new(t),
            captured_at: t,
            file: "horses.jpg".into(),
            transforms: String::new(),
            condition: None,
            width: 100,
            height: 80,
            objects: vec![
                TruthObject {
                    class: "horse".into(),
                    bbox: BBox::new(10.0, 20.0, 50.0, 70.0).unwrap(),
                },
                TruthObject {
                    class: "dog".into(),
                    bbox: BBox::new(60.0, 5.0, 99.0, 40.0).unwrap(),
                },
            ],
        }
    }

    #[test]
    fn the_event_is_what_the_webhook_parses_back_to_the_same_boxes() {
        let t = truth();
        let objects = annotate(&t, 0.0, 1);
        let event = label_event(t.id, &objects, Utc::now());
        let body = serde_json::to_vec(&event).unwrap();
        let (_, parsed) = modelobs_labelbox::webhook::payload::parse(&body, Some("LABEL_CREATED"))
            .unwrap()
            .unwrap();
        assert_eq!(parsed.capture_id, Some(t.id));
        let (mapped, unmapped) = modelobs_labelbox::webhook::payload::ClassMap::default()
            .map(parsed.objects.as_deref().unwrap());
        assert!(unmapped.is_empty());
        let got: Vec<(String, BBox)> = mapped.into_iter().map(|o| (o.label, o.bbox)).collect();
        let want: Vec<(String, BBox)> = t
            .objects
            .iter()
            .map(|o| (o.class.clone(), o.bbox))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn noise_moves_boxes_a_little_deterministically_and_stays_inside() {
        let t = truth();
        let a = annotate(&t, 2.0, 1);
        assert_eq!(a, annotate(&t, 2.0, 1));
        assert_ne!(a, annotate(&t, 2.0, 2));
        for ((_, noisy), o) in a.iter().zip(&t.objects) {
            assert_ne!(*noisy, o.bbox);
            assert!(noisy.iou(&o.bbox) > 0.6, "{noisy:?} vs {:?}", o.bbox);
            assert!(noisy.x1 >= 0.0 && noisy.x2 <= 100.0 && noisy.y2 <= 80.0);
        }
    }
}

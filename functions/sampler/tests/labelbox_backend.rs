//! The Labelbox backend against the fake Labelbox: a capture becomes a data
//! row (global key = capture id, row data = the presigned URL), a batch, and
//! pre-labels of the boxes that have a tool; errors map to retry or refuse.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use modelobs_adapters::RetryPolicy;
use modelobs_core::records::{self, CaptureRecord};
use modelobs_labelbox::{LabelboxClient, Polling, PresignError, Presigner};
use modelobs_pipeline::labeling::{BackendError, Labelbox, LabelingBackend};
use modelobs_testkit::fake_labelbox::{FakeLabelbox, Scripted};
use serde_json::{Value, json};

const CAPTURE: &[u8] = include_bytes!("../../../events/records/capture-record.json");
const CAPTURE_KEY: &str =
    "captures/predictions/dt=2026-11-26/hr=07/01a216ce-1102-7c4e-9a52-4d8e2f6a1b90.json";
const KEY: &str = "lb-key";

/// Signs nothing: a URL naming the key and expiry, and a record of the calls.
#[derive(Default)]
struct FakePresigner {
    calls: Mutex<Vec<(String, Duration)>>,
    down: bool,
}

impl Presigner for FakePresigner {
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, PresignError> {
        if self.down {
            return Err(PresignError {
                key: key.into(),
                reason: "no credentials".into(),
            });
        }
        self.calls
            .lock()
            .unwrap()
            .push((key.to_string(), expires_in));
        Ok(format!(
            "https://data.s3.eu-west-1.amazonaws.com/{key}?X-Amz-Expires={}&X-Amz-Signature=f00",
            expires_in.as_secs()
        ))
    }
}

fn capture() -> CaptureRecord {
    records::from_json(CAPTURE).unwrap()
}

fn backend(fake: &FakeLabelbox, project_id: &str, dataset_id: &str) -> Labelbox<FakePresigner> {
    Labelbox {
        client: LabelboxClient::new(KEY)
            .unwrap()
            .with_endpoint(fake.endpoint())
            .with_retry(RetryPolicy::immediate(3))
            .with_max_retry_after(Duration::ZERO)
            .with_polling(Polling {
                interval: Duration::from_millis(5),
                timeout: Duration::from_secs(5),
            }),
        presigner: FakePresigner::default(),
        project_id: project_id.into(),
        dataset_id: dataset_id.into(),
        // The fixture has two horses and a cow: only horses have a tool.
        tools: BTreeSet::from(["horse".to_string(), "cat".to_string()]),
        url_expiry: Duration::from_secs(7 * 24 * 3600),
        batch_priority: 5,
    }
}

/// A fake with a project and a dataset made through the client.
async fn labelbox() -> (FakeLabelbox, String, String) {
    let fake = FakeLabelbox::start(KEY).await;
    let client = LabelboxClient::new(KEY)
        .unwrap()
        .with_endpoint(fake.endpoint());
    let project = client.create_project("animals").await.unwrap();
    let dataset = client.create_dataset("captures").await.unwrap();
    fake.clear_requests();
    (fake, project.id, dataset.id)
}

#[tokio::test]
async fn a_capture_becomes_a_data_row_a_batch_and_prelabels() {
    // GIVEN a project, a dataset and a sampled capture
    let (fake, project, dataset) = labelbox().await;
    let backend = backend(&fake, &project, &dataset);
    let capture = capture();

    // WHEN it is submitted
    let submitted = backend.submit(&capture, CAPTURE_KEY).await.unwrap();

    // THEN the image was presigned for the configured time
    let presigned = backend.presigner.calls.lock().unwrap().clone();
    assert_eq!(
        presigned,
        [(capture.image.key.clone(), Duration::from_secs(604_800))]
    );
    // AND a data row holds the presigned URL under the capture id
    let rows = fake.data_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].global_key, capture.id.to_string());
    assert!(
        rows[0]
            .row_data
            .starts_with("https://data.s3.eu-west-1.amazonaws.com/captures/images/")
    );
    assert!(rows[0].row_data.contains("X-Amz-Expires=604800"));
    assert_eq!(
        rows[0].external_id.as_deref(),
        Some(capture.image.key.as_str())
    );
    assert_eq!(rows[0].dataset_id, dataset);
    assert_eq!(submitted.external_ref, rows[0].id);
    // AND the project has a batch of it
    let batches = fake.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].project_id, project);
    assert_eq!(batches[0].global_keys, [capture.id.to_string()]);
    // AND the horses, not the cow, are pre-labels, in Labelbox's box format
    let imports = fake.imports();
    assert_eq!(imports.len(), 1);
    let lines: Vec<Value> = imports[0]
        .ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(
            line["dataRow"],
            json!({ "globalKey": capture.id.to_string() })
        );
        assert_eq!(line["name"], "horse");
    }
    // x1 2.5, y1 181, x2 161, y2 424.5
    assert_eq!(
        lines[0]["bbox"],
        json!({ "top": 181.0, "left": 2.5, "height": 243.5, "width": 158.5 })
    );
    assert_eq!(lines[0]["confidence"], 0.82);
    assert_eq!(
        lines[1]["bbox"],
        json!({ "top": 134.0, "left": 395.0, "height": 232.0, "width": 213.0 })
    );
    assert_ne!(lines[0]["uuid"], lines[1]["uuid"]);
    // AND every request was authenticated
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer lb-key"))
    );
}

#[tokio::test]
async fn a_second_submission_is_the_same_item() {
    // GIVEN a capture submitted once
    let (fake, project, dataset) = labelbox().await;
    let backend = backend(&fake, &project, &dataset);
    let capture = capture();
    let first = backend.submit(&capture, CAPTURE_KEY).await.unwrap();

    // WHEN it is submitted again (a redelivered event, a retried Lambda)
    let second = backend.submit(&capture, CAPTURE_KEY).await.unwrap();

    // THEN it is the same data row, and nothing was added
    assert_eq!(second, first);
    assert_eq!(fake.data_rows().len(), 1);
    assert_eq!(fake.batches().len(), 1);
    assert_eq!(fake.imports().len(), 1);
}

#[tokio::test]
async fn a_global_key_taken_before_is_reused() {
    // GIVEN a data row made for the capture by an earlier, interrupted attempt
    let (fake, project, dataset) = labelbox().await;
    let capture = capture();
    let existing = fake.insert_data_row(&capture.id.to_string(), &dataset);

    // WHEN the capture is submitted
    let submitted = backend(&fake, &project, &dataset)
        .submit(&capture, CAPTURE_KEY)
        .await
        .unwrap();

    // THEN that row is the item, batched and pre-labelled
    assert_eq!(submitted.external_ref, existing);
    assert_eq!(fake.data_rows().len(), 1);
    assert_eq!(fake.batches().len(), 1);
    assert_eq!(fake.imports().len(), 1);
}

#[tokio::test]
async fn a_capture_batched_before_under_another_name_counts_as_submitted() {
    // GIVEN the capture's data row already in the project, in a batch someone
    // made by hand
    let (fake, project, dataset) = labelbox().await;
    let capture = capture();
    let global_key = capture.id.to_string();
    let existing = fake.insert_data_row(&global_key, &dataset);
    LabelboxClient::new(KEY)
        .unwrap()
        .with_endpoint(fake.endpoint())
        .create_batch(
            &project,
            &modelobs_labelbox::BatchSpec {
                name: "by-hand".into(),
                global_keys: vec![global_key.clone()],
                priority: 5,
            },
        )
        .await
        .unwrap();

    // WHEN the capture is submitted (Labelbox: "No valid data rows to add to project")
    let submitted = backend(&fake, &project, &dataset)
        .submit(&capture, CAPTURE_KEY)
        .await
        .unwrap();

    // THEN it is the item: no second batch, and its pre-labels go on
    assert_eq!(submitted.external_ref, existing);
    assert_eq!(fake.batches().len(), 1);
    assert_eq!(fake.imports().len(), 1);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_within_a_submission() {
    let (fake, project, dataset) = labelbox().await;
    fake.script(
        "createBatchV2PyApi",
        Scripted::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    fake.script(
        "createMALPredictionImportByFilePyApi",
        Scripted::Status {
            status: 500,
            retry_after: None,
        },
    );

    let submitted = backend(&fake, &project, &dataset)
        .submit(&capture(), CAPTURE_KEY)
        .await;

    assert!(submitted.is_ok(), "{submitted:?}");
    assert_eq!(fake.batches().len(), 1);
    assert_eq!(fake.imports().len(), 1);
}

#[tokio::test]
async fn labelbox_down_is_unavailable() {
    // GIVEN Labelbox answers 503 to everything
    let (fake, project, dataset) = labelbox().await;
    for _ in 0..3 {
        fake.script(
            "*",
            Scripted::Status {
                status: 503,
                retry_after: None,
            },
        );
    }

    let err = backend(&fake, &project, &dataset)
        .submit(&capture(), CAPTURE_KEY)
        .await
        .unwrap_err();

    // THEN the sampler will retry the event later
    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_graphql_error_is_refused() {
    let (fake, project, dataset) = labelbox().await;
    fake.script(
        "createBatchV2PyApi",
        Scripted::GraphqlError {
            message: "Project is not in batch mode".into(),
            code: Some("INTERNAL_SERVER_ERROR".into()),
        },
    );

    let err = backend(&fake, &project, &dataset)
        .submit(&capture(), CAPTURE_KEY)
        .await
        .unwrap_err();

    assert!(
        matches!(err, BackendError::Refused(ref m) if m.contains("batch mode")),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_presigned_url_is_unavailable_and_sends_nothing() {
    let (fake, project, dataset) = labelbox().await;
    let mut backend = backend(&fake, &project, &dataset);
    backend.presigner.down = true;

    let err = backend.submit(&capture(), CAPTURE_KEY).await.unwrap_err();

    assert!(matches!(err, BackendError::Unavailable(_)), "{err:?}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_capture_without_boxes_of_a_tool_class_imports_nothing() {
    let (fake, project, dataset) = labelbox().await;
    let mut backend = backend(&fake, &project, &dataset);
    backend.tools = BTreeSet::from(["zebra".to_string()]);

    backend.submit(&capture(), CAPTURE_KEY).await.unwrap();

    assert_eq!(fake.batches().len(), 1);
    assert!(fake.imports().is_empty());
}

#[test]
fn prelabel_ids_are_stable_per_box() {
    let fake_less = Labelbox {
        client: LabelboxClient::new(KEY).unwrap(),
        presigner: FakePresigner::default(),
        project_id: "p".into(),
        dataset_id: "d".into(),
        tools: BTreeSet::from(["horse".to_string(), "cow".to_string()]),
        url_expiry: Duration::from_secs(60),
        batch_priority: 5,
    };
    let a = fake_less.prelabels(&capture());
    let b = fake_less.prelabels(&capture());
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    let ids: BTreeSet<_> = a.iter().map(|p| p.uuid).collect();
    assert_eq!(ids.len(), 3);
}

fn s3_presigner() -> modelobs_sampler::presign::S3Presigner {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
    // Long-lived keys (no session token, no expiry): URLs live as long as asked.
    let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(credentials.clone())
        .build();
    modelobs_sampler::presign::S3Presigner {
        client: aws_sdk_s3::Client::from_conf(config),
        bucket: "modelobs-data".into(),
        credentials: Some(SharedCredentialsProvider::new(credentials)),
    }
}

#[tokio::test]
async fn s3_presigns_a_get_of_the_image_for_the_configured_time() {
    let url = s3_presigner()
        .presign_get(
            "captures/images/dt=2026-11-26/hr=07/a.jpg",
            Duration::from_secs(7 * 24 * 3600),
        )
        .await
        .unwrap();

    assert!(
        url.starts_with(
            "https://modelobs-data.s3.eu-west-1.amazonaws.com/captures/images/dt%3D2026-11-26/hr%3D07/a.jpg?"
        ),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=604800"), "{url}");
    assert!(url.contains("X-Amz-Signature="), "{url}");
}

#[tokio::test]
async fn s3_refuses_urls_longer_than_a_week() {
    let err = s3_presigner()
        .presign_get("captures/images/a.jpg", Duration::from_secs(8 * 24 * 3600))
        .await
        .unwrap_err();

    assert_eq!(err.key, "captures/images/a.jpg");
}

#[tokio::test]
async fn with_delegated_access_the_row_is_the_images_plain_url() {
    // GIVEN the sampler set up with LABELBOX_IMAGE_ACCESS=delegated
    let (fake, project, dataset) = labelbox().await;
    let b = backend(&fake, &project, &dataset);
    let backend = Labelbox {
        presigner: modelobs_sampler::presign::ImageUrls::Delegated(
            modelobs_sampler::presign::DelegatedUrls {
                bucket: "modelobs-data".into(),
                region: "eu-west-1".into(),
            },
        ),
        client: b.client,
        project_id: b.project_id,
        dataset_id: b.dataset_id,
        tools: b.tools,
        url_expiry: b.url_expiry,
        batch_priority: b.batch_priority,
    };

    // WHEN a capture is submitted
    backend.submit(&capture(), CAPTURE_KEY).await.unwrap();

    // THEN Labelbox gets the object's plain https URL: no signature to expire
    let c = capture();
    let rows = fake.data_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].row_data,
        format!(
            "https://modelobs-data.s3.eu-west-1.amazonaws.com/{}",
            c.image.key.replace('=', "%3D")
        )
    );
    assert!(!rows[0].row_data.contains("X-Amz-"), "{}", rows[0].row_data);
}

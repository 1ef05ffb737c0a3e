//! Reading a label back through a streamable export, against the fake Labelbox:
//! the SDK's operations and variables, paging by offset, chunks fetched without
//! the API key, and which label of which row of which project comes back.

use std::time::Duration;

use modelobs_core::boxes::LabelboxBox;
use modelobs_labelbox::{ExportedBox, LabelboxClient, LabelboxError, Polling};
use modelobs_retry::RetryPolicy;
use modelobs_testkit::fake_labelbox::{FakeLabelbox, Scripted};
use serde_json::{Value, json};

const KEY: &str = "test-api-key";
const PROJECT: &str = "clx9jy0aa000008l5fffff000";
const CAPTURE: &str = "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90";

fn client(fake: &FakeLabelbox) -> LabelboxClient {
    LabelboxClient::new(KEY)
        .unwrap()
        .with_endpoint(fake.endpoint())
        .with_retry(RetryPolicy::immediate(3))
        .with_polling(Polling {
            interval: Duration::from_millis(5),
            timeout: Duration::from_secs(5),
        })
}

/// A label as export v2 writes it: two boxes, a polygon, a classification.
fn exported_label(id: &str, updated_at: &str) -> Value {
    json!({
        "id": id,
        "label_kind": "Default",
        "version": "1.0.0",
        "label_details": {
            "created_at": "2026-11-26T09:15:00.000+00:00",
            "updated_at": updated_at,
            "created_by": "labeler@example.com",
        },
        "annotations": {
            "objects": [
                { "feature_id": "ft0", "name": "Horse", "value": "horse",
                  "annotation_kind": "ImageBoundingBox", "classifications": [],
                  "bounding_box": { "top": 185.0, "left": 0.0, "height": 235.0, "width": 158.0 } },
                { "feature_id": "ft1", "name": "Fence", "value": "fence",
                  "annotation_kind": "ImagePolygon", "classifications": [],
                  "polygon": [{ "x": 1.0, "y": 2.0 }, { "x": 3.0, "y": 4.0 }, { "x": 5.0, "y": 1.0 }] },
                { "feature_id": "ft2", "name": "Rider", "value": "rider",
                  "annotation_kind": "ImageBoundingBox", "classifications": [],
                  "bounding_box": { "top": 130.5, "left": 398.0, "height": 240.0, "width": 212.25 } },
            ],
            "classifications": [{ "name": "weather", "radio_answer": { "name": "sunny" } }],
            "relationships": [],
        },
    })
}

#[tokio::test]
async fn a_label_is_read_from_a_paged_export_of_its_data_row() {
    // GIVEN the label, and other labels on the same row, another row and another project;
    // an export task that runs for two polls and chunks of 200 bytes
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_label(
        PROJECT,
        CAPTURE,
        exported_label("lbl-old", "2026-11-26T08:00:00Z"),
    );
    fake.insert_label(
        PROJECT,
        CAPTURE,
        exported_label("lbl-1", "2026-11-26T09:40:00.000+00:00"),
    );
    fake.insert_label(PROJECT, "another-capture", exported_label("lbl-2", "x"));
    fake.insert_label("another-project", CAPTURE, exported_label("lbl-3", "x"));
    fake.set_task_polls(2);
    fake.set_export_chunk(200);

    // WHEN the label is fetched
    let label = client(&fake)
        .export_label(PROJECT, CAPTURE, "lbl-1")
        .await
        .unwrap()
        .expect("the label is there");

    // THEN its boxes (not the polygon) and its details' time came back
    assert_eq!(label.label_id, "lbl-1");
    assert_eq!(
        label.updated_at.as_deref(),
        Some("2026-11-26T09:40:00.000+00:00")
    );
    assert_eq!(
        label.objects,
        [
            ExportedBox {
                name: "Horse".into(),
                bbox: LabelboxBox {
                    top: 185.0,
                    left: 0.0,
                    height: 235.0,
                    width: 158.0
                },
            },
            ExportedBox {
                name: "Rider".into(),
                bbox: LabelboxBox {
                    top: 130.5,
                    left: 398.0,
                    height: 240.0,
                    width: 212.25
                },
            },
        ]
    );

    // AND the export was the SDK's: filtered to the row's global key, label details on
    let requests = fake.requests();
    let start = &requests[0];
    assert_eq!(start.operation, "exportDataRowsInProjectPyApi");
    let input = &start.variables["input"];
    assert_eq!(input["filters"]["projectId"], PROJECT);
    assert_eq!(
        input["filters"]["searchQuery"]["query"],
        json!([{ "ids": [CAPTURE], "operator": "is", "type": "global_key" }])
    );
    assert_eq!(input["params"]["includeLabelDetails"], true);
    assert_eq!(input["streamable"], true);
    // AND the task was polled among the user's tasks, then the result read chunk by
    // chunk, each chunk fetched from its signed URL without the API key
    let ops: Vec<String> = fake.operations();
    assert_eq!(
        &ops[..5],
        [
            "exportDataRowsInProjectPyApi",
            "GetUserPyApi",
            "GetUserCreatedTasksPyApi",
            "GetUserCreatedTasksPyApi",
            "GetExportMetadataHeaderPyApi"
        ]
    );
    let chunks = ops
        .iter()
        .filter(|o| *o == "GetExportFileFromOffsetPyApi")
        .count();
    let downloads: Vec<_> = requests.iter().filter(|r| r.operation == "GET").collect();
    assert!(
        chunks > 1,
        "one row of two labels is over 200 bytes: {ops:?}"
    );
    assert_eq!(downloads.len(), chunks);
    assert!(downloads.iter().all(|r| r.authorization.is_none()));
    let offsets: Vec<&Value> = requests
        .iter()
        .filter(|r| r.operation == "GetExportFileFromOffsetPyApi")
        .map(|r| &r.variables["offset"])
        .collect();
    assert_eq!(offsets[0], "0");
    assert_eq!(offsets[1], "200", "the next offset follows the chunk's end");
}

#[tokio::test]
async fn a_missing_label_or_row_is_none() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_label(PROJECT, CAPTURE, exported_label("lbl-1", "x"));
    let lb = client(&fake);

    // Another label on the row, a row with no labels, the label under another project.
    assert_eq!(
        lb.export_label(PROJECT, CAPTURE, "lbl-9").await.unwrap(),
        None
    );
    assert_eq!(
        lb.export_label(PROJECT, "no-row", "lbl-1").await.unwrap(),
        None
    );
    assert_eq!(
        lb.export_label("another-project", CAPTURE, "lbl-1")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_export_that_stays_down_is_transient() {
    let fake = FakeLabelbox::start(KEY).await;
    for _ in 0..3 {
        fake.script(
            "exportDataRowsInProjectPyApi",
            Scripted::Status {
                status: 503,
                retry_after: None,
            },
        );
    }

    let err = client(&fake)
        .export_label(PROJECT, CAPTURE, "lbl-1")
        .await
        .unwrap_err();

    assert!(matches!(err, LabelboxError::Server(503)), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_export_still_running_at_the_deadline_is_a_transient_timeout() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_label(PROJECT, CAPTURE, exported_label("lbl-1", "x"));
    fake.set_task_polls(1000);
    let lb = client(&fake).with_polling(Polling {
        interval: Duration::from_millis(5),
        timeout: Duration::from_millis(50),
    });

    let err = lb
        .export_label(PROJECT, CAPTURE, "lbl-1")
        .await
        .unwrap_err();

    assert!(
        matches!(
            err,
            LabelboxError::Task {
                timed_out: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_export_whose_offsets_are_off_still_reads_back_whole() {
    // GIVEN chunks of 200 bytes that report offsets 7 bytes off, as the SDK's
    // reader has it ("something wrong with the way the offsets are being calculated")
    let fake = FakeLabelbox::start(KEY).await;
    for (id, at) in [
        ("lbl-a", "2026-11-26T08:00:00Z"),
        ("lbl-b", "2026-11-26T09:00:00Z"),
        ("lbl-c", "2026-11-26T10:00:00Z"),
    ] {
        fake.insert_label(PROJECT, CAPTURE, exported_label(id, at));
    }
    fake.set_export_chunk(200);
    fake.set_export_offset_skew(7);

    // WHEN a label is fetched
    let lb = client(&fake);
    let label = lb.export_label(PROJECT, CAPTURE, "lbl-c").await.unwrap();

    // THEN the row came back whole: the last label and its boxes are there
    let label = label.expect("the row was read whole");
    assert_eq!(label.objects.len(), 2);
    // AND the chunks were appended whole, each next one asked for at its end + 1
    let requests = fake.requests();
    let offsets: Vec<&str> = requests
        .iter()
        .filter(|r| r.operation == "GetExportFileFromOffsetPyApi")
        .filter_map(|r| r.variables["offset"].as_str())
        .collect();
    assert!(offsets.len() > 2, "{offsets:?}");
    assert_eq!(&offsets[..3], ["0", "207", "407"]);
}

#[tokio::test]
async fn an_export_whose_chunks_do_not_move_forward_is_an_error_not_a_loop() {
    // GIVEN chunks that all report the first chunk's offsets
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_label(PROJECT, CAPTURE, exported_label("lbl-1", "x"));
    fake.insert_label(PROJECT, CAPTURE, exported_label("lbl-2", "x"));
    fake.set_export_chunk(200);
    fake.freeze_export_offsets();

    // WHEN a label is fetched
    let lb = client(&fake);
    let fetched = tokio::time::timeout(
        Duration::from_secs(10),
        lb.export_label(PROJECT, CAPTURE, "lbl-1"),
    )
    .await
    .expect("the reading ends");

    // THEN it is refused: the second chunk does not reach the offset asked for
    let err = fetched.unwrap_err();
    assert!(
        matches!(&err, LabelboxError::Protocol(m) if m.contains("200")),
        "{err:?}"
    );
    let chunks = fake
        .operations()
        .iter()
        .filter(|o| *o == "GetExportFileFromOffsetPyApi")
        .count();
    assert_eq!(chunks, 2);
}

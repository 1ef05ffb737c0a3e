//! The client against the fake Labelbox: what goes over the wire, retries,
//! error mapping, idempotent data rows.

use std::time::{Duration, Instant};

use modelobs_core::boxes::LabelboxBox;
use modelobs_labelbox::{
    BatchOutcome, BatchSpec, BoxPrelabel, ImportOutcome, LabelboxClient, LabelboxError, NewDataRow,
    Polling, prelabels_ndjson,
};
use modelobs_retry::RetryPolicy;
use modelobs_testkit::fake_labelbox::{FakeLabelbox, Scripted};
use serde_json::{Value, json};
use uuid::Uuid;

const KEY: &str = "test-api-key";

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

fn row(global_key: &str) -> NewDataRow {
    NewDataRow {
        row_data: format!(
            "https://bucket.s3.amazonaws.com/captures/images/{global_key}.jpg?X-Amz-Signature=abc"
        ),
        global_key: global_key.to_string(),
        external_id: Some(format!("captures/images/{global_key}.jpg")),
    }
}

#[tokio::test]
async fn every_request_carries_the_bearer_key() {
    // GIVEN a fake Labelbox
    let fake = FakeLabelbox::start(KEY).await;

    // WHEN a dataset is created
    let dataset = client(&fake).create_dataset("captures").await.unwrap();

    // THEN the request was authenticated, named and parameterised as the SDK does
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer test-api-key")
    );
    assert_eq!(requests[0].path, "/graphql");
    assert_eq!(requests[0].operation, "CreateDatasetPyApi");
    assert_eq!(requests[0].variables, json!({ "name": "captures" }));
    assert_eq!(fake.dataset_names(), ["captures"]);
    assert!(dataset.id.starts_with("ds-"));
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    let fake = FakeLabelbox::start(KEY).await;
    let wrong = LabelboxClient::new("wrong")
        .unwrap()
        .with_endpoint(fake.endpoint())
        .with_retry(RetryPolicy::immediate(3));

    let err = wrong.create_dataset("captures").await.unwrap_err();

    assert!(matches!(err, LabelboxError::Unauthorized), "{err:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_data_row_is_created_through_a_chunk_a_manifest_and_an_upsert_task() {
    // GIVEN a dataset, and an upsert task that runs for two polls
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("captures");
    fake.set_task_polls(2);
    let capture = "0190f0c2-7c9e-7000-8000-000000000001";

    // WHEN the data row is created
    let created = client(&fake)
        .create_data_row(&dataset, &row(capture))
        .await
        .unwrap();

    // THEN it exists with the presigned URL as row data and the capture id as global key
    let rows = fake.data_rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].global_key, capture);
    assert_eq!(rows[0].row_data, row(capture).row_data);
    assert_eq!(rows[0].dataset_id, dataset);
    assert_eq!(created.id, rows[0].id);
    assert!(created.created);

    // AND the operations were the SDK's: two uploads, the upsert, the user,
    // polls of the task among the user's tasks, results
    let ops = fake.operations();
    assert_eq!(
        ops,
        [
            "UploadFile",
            "UploadFile",
            "UpsertDataRowsPyApi",
            "GetUserPyApi",
            "GetUserCreatedTasksPyApi",
            "GetUserCreatedTasksPyApi",
            "FailedDataRowImportsPyApi",
            "SuccessesfulDataRowImportsPyApi",
        ]
    );
    let requests = fake.requests();
    let poll = &requests[4].variables;
    assert_eq!(poll["userId"], fake.user_id().as_str());
    assert_eq!(
        poll["taskId"], requests[6].variables["taskId"],
        "the task polled is the one whose imports are read"
    );
    // The chunk is a JSON array of {id: AUTO key, payload}, uploaded as a file.
    let chunk_upload = &requests[0];
    assert!(
        chunk_upload
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("multipart/form-data")
    );
    assert_eq!(chunk_upload.files.len(), 1);
    assert_eq!(chunk_upload.files[0].field, "1");
    assert_eq!(
        chunk_upload.files[0].file_name.as_deref(),
        Some("json_import.json")
    );
    let chunk: Value = serde_json::from_slice(&chunk_upload.files[0].content).unwrap();
    assert_eq!(
        chunk,
        json!([{
            "id": { "type": "AUTO", "value": "" },
            "payload": {
                "row_data": row(capture).row_data,
                "global_key": capture,
                "external_id": format!("captures/images/{capture}.jpg"),
                "dataset_id": dataset,
            },
        }])
    );
    let manifest: Value = serde_json::from_slice(&requests[1].files[0].content).unwrap();
    assert_eq!(manifest["item_count"], 1);
    assert_eq!(manifest["chunk_uris"].as_array().unwrap().len(), 1);
    assert_eq!(
        requests[2].variables["manifestUri"]
            .as_str()
            .map(|u| u.contains("/files/")),
        Some(true)
    );
}

#[tokio::test]
async fn a_taken_global_key_reuses_its_data_row() {
    // GIVEN a data row already holding the capture's global key
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("captures");
    let existing = fake.insert_data_row("capture-1", &dataset);

    // WHEN the capture is created again
    let found = client(&fake)
        .create_data_row(&dataset, &row("capture-1"))
        .await
        .unwrap();

    // THEN nothing new exists and the existing row is returned
    assert_eq!(fake.data_rows().len(), 1);
    assert_eq!(found.id, existing);
    assert!(!found.created);
    let ops = fake.operations();
    assert!(
        ops.contains(&"getDataRowsForGlobalKeysPyApi".to_string()),
        "{ops:?}"
    );
    let lookup = fake
        .requests()
        .into_iter()
        .find(|r| r.operation == "getDataRowsForGlobalKeysPyApi")
        .unwrap();
    assert_eq!(lookup.variables, json!({ "globalKeys": ["capture-1"] }));
}

#[tokio::test]
async fn the_user_is_asked_once_per_client_and_its_clones() {
    // GIVEN upsert tasks that each run for a poll
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("captures");
    fake.set_task_polls(1);
    let lb = client(&fake);

    // WHEN two rows are created, through the client and a clone of it
    lb.create_data_row(&dataset, &row("capture-1"))
        .await
        .unwrap();
    lb.clone()
        .create_data_row(&dataset, &row("capture-2"))
        .await
        .unwrap();

    // THEN the user was asked once, each task polled once
    let ops = fake.operations();
    let count = |op: &str| ops.iter().filter(|o| *o == op).count();
    assert_eq!(count("GetUserPyApi"), 1, "{ops:?}");
    assert_eq!(count("GetUserCreatedTasksPyApi"), 2, "{ops:?}");
    assert_eq!(fake.data_rows().len(), 2);
}

#[tokio::test]
async fn a_task_not_among_the_users_tasks_is_not_found() {
    // GIVEN an upsert task another user of the organisation created
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("captures");
    fake.set_task_polls(1);
    fake.create_tasks_as("someone-else");

    // WHEN it is polled
    let err = client(&fake)
        .create_data_row(&dataset, &row("capture-1"))
        .await
        .unwrap_err();

    // THEN it is not found, and that is not worth a retry
    assert!(
        matches!(&err, LabelboxError::Task { detail, timed_out: false, .. } if detail.contains("not found")),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after() {
    // GIVEN Labelbox throttles the first attempt for 1 s
    let fake = FakeLabelbox::start(KEY).await;
    fake.script(
        "CreateDatasetPyApi",
        Scripted::Status {
            status: 429,
            retry_after: Some(1),
        },
    );
    let started = Instant::now();

    // WHEN the client asks
    let created = client(&fake).create_dataset("captures").await;

    // THEN it waited as told, retried, and succeeded
    assert!(created.is_ok(), "{created:?}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        fake.operations(),
        ["CreateDatasetPyApi", "CreateDatasetPyApi"]
    );
}

#[tokio::test]
async fn a_long_retry_after_is_capped() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.script(
        "CreateDatasetPyApi",
        Scripted::Status {
            status: 429,
            retry_after: Some(3600),
        },
    );
    let started = Instant::now();

    let created = client(&fake)
        .with_max_retry_after(Duration::from_millis(20))
        .create_dataset("captures")
        .await;

    assert!(created.is_ok(), "{created:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_black_holed_labelbox_costs_the_request_timeout_per_attempt_not_180_s() {
    // GIVEN a Labelbox that never answers the first two attempts
    let fake = FakeLabelbox::start(KEY).await;
    fake.script("CreateDatasetPyApi", Scripted::BlackHole);
    fake.script("CreateDatasetPyApi", Scripted::BlackHole);
    // WHEN a client with a 200 ms request timeout and 2 attempts asks
    let client = client(&fake)
        .with_request_timeout(Duration::from_millis(200))
        .with_retry(RetryPolicy {
            attempts: 2,
            ..client(&fake).retry_policy()
        });
    let err = client.create_dataset("captures").await.unwrap_err();
    // THEN both attempts timed out and it says so, retryable
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(fake.operations().len(), 2);
    // AND the third attempt of a client allowing it succeeds
    let policy = client.retry_policy();
    let created = client
        .with_retry(RetryPolicy {
            attempts: 3,
            ..policy
        })
        .create_dataset("captures")
        .await;
    assert!(created.is_ok(), "{created:?}");
}

#[tokio::test]
async fn a_500_is_retried() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.script(
        "CreateDatasetPyApi",
        Scripted::Status {
            status: 500,
            retry_after: None,
        },
    );

    let created = client(&fake).create_dataset("captures").await;

    assert!(created.is_ok(), "{created:?}");
    assert_eq!(fake.operations().len(), 2);
}

#[tokio::test]
async fn throttling_that_outlasts_the_attempts_is_rate_limited() {
    let fake = FakeLabelbox::start(KEY).await;
    for _ in 0..3 {
        fake.script(
            "*",
            Scripted::Status {
                status: 429,
                retry_after: Some(0),
            },
        );
    }

    let err = client(&fake).create_dataset("captures").await.unwrap_err();

    assert!(matches!(err, LabelboxError::RateLimited { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn graphql_errors_are_typed_and_not_retried() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.script(
        "CreateDatasetPyApi",
        Scripted::GraphqlError {
            message: "Variable \"$name\" got invalid value".into(),
            code: Some("GRAPHQL_VALIDATION_FAILED".into()),
        },
    );

    let err = client(&fake).create_dataset("captures").await.unwrap_err();

    match &err {
        LabelboxError::Graphql { errors, codes } => {
            assert_eq!(errors, &["Variable \"$name\" got invalid value"]);
            assert_eq!(codes, &["GRAPHQL_VALIDATION_FAILED"]);
        }
        other => panic!("expected a GraphQL error, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_batch_goes_to_the_experimental_endpoint_by_global_key() {
    // GIVEN a project and a data row
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("captures");
    fake.insert_data_row("capture-1", &dataset);
    let lb = client(&fake);
    let project = lb.create_project("animals").await.unwrap();
    let spec = BatchSpec {
        name: "modelobs-capture-1".into(),
        global_keys: vec!["capture-1".into()],
        priority: 3,
    };

    // WHEN the batch is created, then created again
    let first = lb.create_batch(&project.id, &spec).await.unwrap();
    let second = lb.create_batch(&project.id, &spec).await.unwrap();

    // THEN one batch exists, the second call found it
    assert!(matches!(first, BatchOutcome::Created { .. }), "{first:?}");
    assert_eq!(second, BatchOutcome::AlreadyExists);
    let batches = fake.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].global_keys, ["capture-1"]);
    assert_eq!(batches[0].priority, 3);
    let request = fake
        .requests()
        .into_iter()
        .find(|r| r.operation == "createBatchV2PyApi")
        .unwrap();
    assert_eq!(request.path, "/_gql");
    assert_eq!(request.variables["projectId"], project.id.as_str());
    assert_eq!(
        request.variables["batchInput"]["globalKeys"],
        json!(["capture-1"])
    );
}

#[tokio::test]
async fn rows_already_in_the_project_are_a_repeated_batch() {
    // GIVEN a project with capture-1 in a batch, and capture-2 in none
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("captures");
    fake.insert_data_row("capture-1", &dataset);
    fake.insert_data_row("capture-2", &dataset);
    let lb = client(&fake);
    let project = lb.create_project("animals").await.unwrap();
    let batch = |name: &str, keys: &[&str]| BatchSpec {
        name: name.into(),
        global_keys: keys.iter().map(|k| k.to_string()).collect(),
        priority: 5,
    };
    lb.create_batch(&project.id, &batch("by-hand", &["capture-1"]))
        .await
        .unwrap();

    // WHEN capture-1 is batched again under another name
    let again = lb
        .create_batch(&project.id, &batch("modelobs-capture-1", &["capture-1"]))
        .await
        .unwrap();
    // AND capture-1 with capture-2
    let both = lb
        .create_batch(&project.id, &batch("both", &["capture-1", "capture-2"]))
        .await
        .unwrap();

    // THEN the first is a repeated submission (Labelbox: "No valid data rows
    // to add to project"), the second adds capture-2 only
    assert_eq!(again, BatchOutcome::AlreadyExists);
    assert!(
        matches!(&both, BatchOutcome::Created { failed_data_row_ids, .. } if failed_data_row_ids.is_empty()),
        "{both:?}"
    );
    let batches = fake.batches();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].name, "both");
    assert_eq!(batches[1].global_keys, ["capture-2"]);
}

#[tokio::test]
async fn rows_that_do_not_exist_are_still_refused() {
    let fake = FakeLabelbox::start(KEY).await;
    let lb = client(&fake);
    let project = lb.create_project("animals").await.unwrap();
    fake.script(
        "createBatchV2PyApi",
        Scripted::GraphqlError {
            message: "No valid data rows to be added from the list provided!".into(),
            code: Some("MALFORMED_REQUEST".into()),
        },
    );

    let err = lb
        .create_batch(
            &project.id,
            &BatchSpec {
                name: "b".into(),
                global_keys: vec!["nowhere".into()],
                priority: 5,
            },
        )
        .await
        .unwrap_err();

    assert!(matches!(err, LabelboxError::Graphql { .. }), "{err:?}");
}

#[tokio::test]
async fn prelabels_are_imported_as_an_ndjson_file() {
    // GIVEN a project
    let fake = FakeLabelbox::start(KEY).await;
    let lb = client(&fake);
    let project = lb.create_project("animals").await.unwrap();
    let boxes = [BoxPrelabel {
        uuid: Uuid::nil(),
        tool_name: "cat".into(),
        bbox: LabelboxBox {
            top: 12.5,
            left: 30.0,
            height: 100.0,
            width: 80.25,
        },
        confidence: 0.87,
    }];
    let ndjson = prelabels_ndjson("capture-1", &boxes);

    // WHEN the pre-labels are imported twice under one name
    let first = lb
        .import_prelabels(&project.id, "modelobs-capture-1", &ndjson)
        .await
        .unwrap();
    let second = lb
        .import_prelabels(&project.id, "modelobs-capture-1", &ndjson)
        .await
        .unwrap();

    // THEN one import exists, with the boxes as sent
    assert!(
        matches!(first, ImportOutcome::Started(ref i) if i.state == "RUNNING"),
        "{first:?}"
    );
    assert_eq!(second, ImportOutcome::AlreadyExists);
    let imports = fake.imports();
    assert_eq!(imports.len(), 1);
    let line: Value = serde_json::from_str(imports[0].ndjson.lines().next().unwrap()).unwrap();
    assert_eq!(line["dataRow"], json!({ "globalKey": "capture-1" }));
    assert_eq!(line["name"], "cat");
    assert_eq!(
        line["bbox"],
        json!({ "top": 12.5, "left": 30.0, "height": 100.0, "width": 80.25 })
    );
    assert_eq!(line["confidence"], 0.87);
    let request = fake
        .requests()
        .into_iter()
        .find(|r| r.operation == "createMALPredictionImportByFilePyApi")
        .unwrap();
    assert_eq!(request.variables["projectId"], project.id.as_str());
    assert_eq!(request.variables["contentLength"], ndjson.len());
    assert_eq!(
        request.files[0].field,
        format!("{}__modelobs-capture-1.ndjson", project.id)
    );

    // AND its state can be read back: running, then finished
    fake.set_task_polls(1);
    for want in ["RUNNING", "FINISHED"] {
        let state = lb
            .prelabel_import(&project.id, "modelobs-capture-1")
            .await
            .unwrap();
        assert_eq!(state.map(|i| i.state).as_deref(), Some(want));
    }
}

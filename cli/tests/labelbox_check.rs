//! `modelobs labelbox check` as a user runs it: against the fake Labelbox and
//! a webhook receiver that checks signatures with the webhook function's own
//! `verify_request` (202 for a signed delivery, 401 otherwise).

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use modelobs_labelbox::setup::bbox_ontology;
use modelobs_labelbox::webhook::signature;
use modelobs_testkit::fake_labelbox::{FakeLabelbox, Scripted};

const KEY: &str = "check-key";
const SECRET: &str = "hook-secret";
const IMAGE: &str = "https://modelobs-data.s3.eu-west-1.amazonaws.com/captures/images/x.jpg";

/// A Labelbox with the project, dataset and ontology `labelbox setup` makes.
async fn labelbox() -> (FakeLabelbox, String, String) {
    let fake = FakeLabelbox::start(KEY).await;
    let dataset = fake.insert_dataset("animal-captures");
    let project = fake.insert_project("animals");
    let ontology = fake.insert_ontology("animals ontology", bbox_ontology(&["dog".into()]));
    fake.connect_project_ontology(&project, &ontology);
    (fake, project, dataset)
}

/// The webhook's answer to each delivery, in order.
type Answers = Arc<Mutex<Vec<u16>>>;

/// A webhook that verifies as the function does, with `secret`.
async fn receiver(secret: &'static str) -> (String, Answers, tokio::task::JoinHandle<()>) {
    let answers: Answers = Arc::default();
    let seen = answers.clone();
    let app = axum::Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let status = match signature::verify_request(
                    secret.as_bytes(),
                    &body,
                    header("x-hub-signature"),
                    header("x-hub-signature-256"),
                ) {
                    Ok(()) => StatusCode::ACCEPTED,
                    Err(_) => StatusCode::UNAUTHORIZED,
                };
                seen.lock().unwrap().push(status.as_u16());
                status
            }
        }),
    );
    let (listener, addr) = modelobs_testkit::local_listener().await;
    let server = modelobs_testkit::serve_app(listener, app);
    (format!("http://{addr}/"), answers, server)
}

async fn check(fake: &FakeLabelbox, project: &str, dataset: &str, webhook: &str) -> Output {
    check_with(fake, project, dataset, webhook, &[]).await
}

async fn check_with(
    fake: &FakeLabelbox,
    project: &str,
    dataset: &str,
    webhook: &str,
    extra: &[&str],
) -> Output {
    let mut args: Vec<String> = [
        "labelbox",
        "check",
        "--project-id",
        project,
        "--dataset-id",
        dataset,
        "--image-url",
        IMAGE,
        "--webhook-url",
        webhook,
        "--import-timeout-s",
        "5",
        "--endpoint",
        &fake.endpoint(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_modelobs"))
            .args(&args)
            .env_remove("LABELBOX_PROJECT_ID")
            .env_remove("LABELBOX_DATASET_ID")
            .env("LABELBOX_API_KEY", KEY)
            .env("LABELBOX_WEBHOOK_SECRET", SECRET)
            .output()
            .expect("run modelobs")
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The steps printed `ok`, by name.
fn passed(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter_map(|l| l.strip_prefix("ok"))
        .map(|l| {
            let l = l.trim_start();
            // The name is padded to 17 columns, then the time.
            l.get(..17).unwrap_or(l).trim_end().to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_project_passes_every_step_and_the_check_says_what_it_left() {
    // GIVEN a set-up project and a webhook holding the same secret
    let (fake, project, dataset) = labelbox().await;
    let (url, answers, _server) = receiver(SECRET).await;

    // WHEN the check runs
    let out = check(&fake, &project, &dataset, &url).await;

    // THEN every step passed, in the order the system uses them
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", stdout(&out));
    assert_eq!(
        passed(&out),
        ["data row", "batch", "pre-label import", "export", "webhook"]
    );
    // AND Labelbox has one row of the image, batched, with one pre-label of the project's tool
    let rows = fake.data_rows();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].global_key.starts_with("modelobs-check-"),
        "{rows:?}"
    );
    assert_eq!(
        (rows[0].row_data.as_str(), rows[0].dataset_id.as_str()),
        (IMAGE, dataset.as_str())
    );
    let batches = fake.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        (batches[0].project_id.as_str(), &batches[0].global_keys),
        (project.as_str(), &vec![rows[0].global_key.clone()])
    );
    let imports = fake.imports();
    assert_eq!(imports.len(), 1);
    let line: serde_json::Value = serde_json::from_str(imports[0].ndjson.trim()).unwrap();
    assert_eq!(line["name"], "dog");
    assert_eq!(line["dataRow"]["globalKey"], rows[0].global_key.as_str());
    // AND the webhook took the signed delivery and refused the unsigned one
    assert_eq!(*answers.lock().unwrap(), [202, 401]);
    // AND the user is told what to delete
    assert!(stderr.contains(&rows[0].global_key), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failure_names_its_step_and_stops_the_check() {
    // A webhook with another secret: Labelbox works, the webhook refuses.
    let (fake, project, dataset) = labelbox().await;
    let (url, answers, _server) = receiver("another-secret").await;
    let out = check(&fake, &project, &dataset, &url).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(passed(&out).len(), 4);
    assert!(
        stdout(&out).contains("FAIL  webhook: a delivery signed with the secret got HTTP 401"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        *answers.lock().unwrap(),
        [401],
        "stopped at the signed delivery"
    );

    // A project that is not there: no ontology to take a tool from...
    let (fake, _, dataset) = labelbox().await;
    let (url, answers, _server) = receiver(SECRET).await;
    let out = check(&fake, "no-such-project", &dataset, &url).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(passed(&out).is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading project no-such-project's ontology"),
        "{stderr}"
    );
    // ... and with the tool named: the row is made, the batch refused.
    let out = check_with(&fake, "no-such-project", &dataset, &url, &["--tool", "dog"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(passed(&out), ["data row"]);
    assert!(stdout(&out).contains("FAIL  batch:"), "{}", stdout(&out));
    assert!(
        answers.lock().unwrap().is_empty(),
        "nothing after the failure"
    );

    // Labelbox refusing the export.
    let (fake, project, dataset) = labelbox().await;
    let (url, _answers, _server) = receiver(SECRET).await;
    fake.script(
        "exportDataRowsInProjectPyApi",
        Scripted::GraphqlError {
            message: "export not allowed".into(),
            code: None,
        },
    );
    let out = check(&fake, &project, &dataset, &url).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(passed(&out), ["data row", "batch", "pre-label import"]);
    assert!(
        stdout(&out).contains("FAIL  export: Labelbox refused the request: export not allowed"),
        "{}",
        stdout(&out)
    );

    // A pre-label import that Labelbox fails.
    let (fake, project, dataset) = labelbox().await;
    let (url, _answers, _server) = receiver(SECRET).await;
    fake.fail_imports();
    let out = check(&fake, &project, &dataset, &url).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(passed(&out), ["data row", "batch"]);
    assert!(
        stdout(&out).contains("FAIL  pre-label import: import modelobs-check-"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("FAILED"), "{}", stdout(&out));
}

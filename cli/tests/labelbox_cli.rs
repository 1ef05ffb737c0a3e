//! `modelobs labelbox setup` as a user runs it, against the fake Labelbox:
//! the printed stack parameters, idempotency, missing secrets.

use std::process::{Command, Output};

use modelobs_testkit::fake_labelbox::FakeLabelbox;

const KEY: &str = "cli-key";

async fn modelobs(args: Vec<String>, env: Vec<(&'static str, &'static str)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_modelobs"))
            .args(&args)
            .env_remove("LABELBOX_API_KEY")
            .env_remove("LABELBOX_WEBHOOK_SECRET")
            .envs(env)
            .output()
            .expect("run modelobs")
    })
    .await
    .unwrap()
}

fn setup_args(fake: &FakeLabelbox, webhook: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "labelbox",
        "setup",
        "--project-name",
        "animals",
        "--dataset-name",
        "animal-captures",
        "--endpoint",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(fake.endpoint());
    if webhook {
        args.push("--webhook-url".into());
        args.push("https://hook.example/labelbox".into());
    }
    args
}

fn parameters(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const ENV: [(&str, &str); 2] = [
    ("LABELBOX_API_KEY", KEY),
    ("LABELBOX_WEBHOOK_SECRET", "hook-secret"),
];

const ROLE: &str = "arn:aws:iam::123456789012:role/labelbox-delegated-access";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_prints_the_stack_parameters_and_a_rerun_creates_nothing() {
    // GIVEN an empty Labelbox whose organisation has a default IAM integration
    let fake = FakeLabelbox::start(KEY).await;
    let integration = fake.insert_iam_integration("modelobs-s3", ROLE, true, true);

    // WHEN setup runs twice
    let first = modelobs(setup_args(&fake, true), ENV.to_vec()).await;
    let second = modelobs(setup_args(&fake, true), ENV.to_vec()).await;

    // THEN both succeed and print the same three parameters
    for out in [&first, &second] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let params = parameters(&first);
    let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "LabelboxProjectId",
            "LabelboxDatasetId",
            "LabelboxOntologyId"
        ]
    );
    assert_eq!(params[0].1, fake.projects()[0].id);
    assert_eq!(parameters(&second), params);
    // AND the second run created nothing
    assert_eq!(fake.projects().len(), 1);
    assert_eq!(fake.dataset_names().len(), 1);
    let ours: Vec<_> = fake
        .ontologies()
        .into_iter()
        .filter(|o| o.name == "animals ontology")
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(fake.webhooks().len(), 1);
    assert!(stderr(&second).contains("already set up"));
    // AND the ontology has the ten animals, the webhook the secret from the environment
    let tools = ours[0].normalized["tools"].as_array().unwrap().len();
    assert_eq!(tools, 10);
    assert_eq!(fake.webhooks()[0].secret, "hook-secret");
    // AND the dataset's images are signed through the default integration, its role printed
    assert_eq!(
        fake.dataset_signer(&params[1].1).as_deref(),
        Some(integration.as_str())
    );
    for out in [&first, &second] {
        assert!(stderr(out).contains(ROLE), "{}", stderr(out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_integration_or_presigned_urls_can_be_chosen() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_iam_integration("modelobs-s3", ROLE, true, true);
    let other_role = "arn:aws:iam::123456789012:role/other";
    let other = fake.insert_iam_integration("other", other_role, true, false);

    let mut named = setup_args(&fake, false);
    named.extend(["--iam-integration".to_string(), "other".to_string()]);
    let out = modelobs(named, ENV.to_vec()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(other_role), "{}", stderr(&out));
    let dataset = parameters(&out)[1].1.clone();
    assert_eq!(
        fake.dataset_signer(&dataset).as_deref(),
        Some(other.as_str())
    );

    let mut presigned = setup_args(&fake, false);
    presigned.extend(["--image-access".to_string(), "presigned".to_string()]);
    let out = modelobs(presigned, ENV.to_vec()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("presigned URLs"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_integration_delegated_access_fails_saying_what_to_do() {
    let fake = FakeLabelbox::start(KEY).await;

    let out = modelobs(setup_args(&fake, false), ENV.to_vec()).await;

    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("Workspace settings → Integrations"), "{err}");
    assert!(err.contains("--image-access presigned"), "{err}");
    assert!(fake.dataset_names().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_with_presigned_urls_is_bad_input() {
    let fake = FakeLabelbox::start(KEY).await;
    let mut args = setup_args(&fake, false);
    args.extend(
        ["--image-access", "presigned", "--iam-integration", "x"]
            .iter()
            .map(|s| s.to_string()),
    );

    let out = modelobs(args, ENV.to_vec()).await;

    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--iam-integration"),
        "{}",
        stderr(&out)
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_api_key_it_fails_with_exit_2_and_sends_nothing() {
    let fake = FakeLabelbox::start(KEY).await;

    let out = modelobs(setup_args(&fake, false), Vec::new()).await;

    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LABELBOX_API_KEY"));
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_url_without_its_secret_fails_before_any_request() {
    let fake = FakeLabelbox::start(KEY).await;

    let out = modelobs(setup_args(&fake, true), vec![("LABELBOX_API_KEY", KEY)]).await;

    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("LABELBOX_WEBHOOK_SECRET"));
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_fails_with_exit_1() {
    let fake = FakeLabelbox::start(KEY).await;

    let out = modelobs(
        setup_args(&fake, false),
        vec![("LABELBOX_API_KEY", "wrong")],
    )
    .await;

    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API key"));
}

//! `setup` against the fake Labelbox: creates what is missing, connects it,
//! and on a second run finds everything and creates nothing.

use std::time::Duration;

use modelobs_labelbox::{LabelboxClient, SetupSpec, WebhookSpec};
use modelobs_retry::RetryPolicy;
use modelobs_testkit::fake_labelbox::FakeLabelbox;

const KEY: &str = "setup-key";

fn spec() -> SetupSpec {
    SetupSpec {
        project_name: "animals".into(),
        dataset_name: "animal-captures".into(),
        ontology_name: "animals ontology".into(),
        tool_names: vec!["cat".into(), "dog".into(), "bird".into()],
        webhook: Some(WebhookSpec {
            url: "https://abc.lambda-url.eu-west-1.on.aws/".into(),
            secret: "s3cr\"et".into(),
        }),
    }
}

fn client(fake: &FakeLabelbox) -> LabelboxClient {
    LabelboxClient::new(KEY)
        .unwrap()
        .with_endpoint(fake.endpoint())
        .with_retry(RetryPolicy::immediate(2))
        .with_max_retry_after(Duration::ZERO)
}

const CREATES: [&str; 7] = [
    "CreateDatasetPyApi",
    "CreateProjectPyApi",
    "upsertRootSchemaNodePyApi",
    "ConnectProjectAndLabelingFrontendPyApi",
    "CreateLabelingFrontendOptionsPyApi",
    "ConnectOntologyPyApi",
    "CreateWebhookPyApi",
];

#[tokio::test]
async fn setup_creates_and_connects_everything_once() {
    // GIVEN an empty Labelbox
    let fake = FakeLabelbox::start(KEY).await;
    let lb = client(&fake);

    // WHEN setup runs
    let report = lb.setup(&spec()).await.unwrap();

    // THEN a project, dataset and ontology exist and are connected
    let projects = fake.projects();
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].id, report.project_id);
    assert_eq!(
        projects[0].ontology_id.as_deref(),
        Some(report.ontology_id.as_str())
    );
    assert!(projects[0].labeling_frontend_id.is_some());
    assert!(projects[0].showing_predictions);
    assert_eq!(fake.dataset_names(), ["animal-captures"]);
    // One rectangle tool per class.
    let ontologies = fake.ontologies();
    assert_eq!(ontologies.len(), 1);
    let tools = ontologies[0].normalized["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cat", "dog", "bird"]);
    assert!(tools.iter().all(|t| t["tool"] == "rectangle"));
    // The webhook: label topics, URL and secret as given (escaped on the way).
    let webhooks = fake.webhooks();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0].url, "https://abc.lambda-url.eu-west-1.on.aws/");
    assert_eq!(webhooks[0].secret, "s3cr\"et");
    assert_eq!(webhooks[0].project_id, report.project_id);
    assert_eq!(
        webhooks[0].topics,
        ["LABEL_CREATED", "LABEL_UPDATED", "LABEL_DELETED"]
    );
    assert_eq!(report.webhook_id.as_deref(), Some(webhooks[0].id.as_str()));
    assert!(!report.changes.is_empty());
    // Every create went out exactly once.
    let ops = fake.operations();
    for op in CREATES {
        assert_eq!(
            ops.iter().filter(|o| *o == op).count(),
            1,
            "{op} in {ops:?}"
        );
    }
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer setup-key"))
    );
    let lines = report.parameter_overrides();
    assert!(lines.contains(&format!("LabelboxProjectId={}\n", report.project_id)));
    assert!(lines.contains(&format!("LabelboxDatasetId={}\n", report.dataset_id)));
    assert!(lines.contains(&format!("LabelboxOntologyId={}\n", report.ontology_id)));
}

#[tokio::test]
async fn a_second_setup_finds_everything_and_creates_nothing() {
    // GIVEN a Labelbox that setup already ran against
    let fake = FakeLabelbox::start(KEY).await;
    let lb = client(&fake);
    let first = lb.setup(&spec()).await.unwrap();
    fake.clear_requests();

    // WHEN setup runs again
    let second = lb.setup(&spec()).await.unwrap();

    // THEN it reports the same ids, changed nothing and sent no create
    assert_eq!(second.project_id, first.project_id);
    assert_eq!(second.dataset_id, first.dataset_id);
    assert_eq!(second.ontology_id, first.ontology_id);
    assert_eq!(second.webhook_id, first.webhook_id);
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    let ops = fake.operations();
    for op in CREATES {
        assert!(!ops.iter().any(|o| o == op), "{op} sent again: {ops:?}");
    }
    assert_eq!(fake.projects().len(), 1);
    assert_eq!(fake.dataset_names().len(), 1);
    assert_eq!(fake.ontologies().len(), 1);
    assert_eq!(fake.webhooks().len(), 1);
}

#[tokio::test]
async fn an_existing_ontology_missing_a_class_is_reported() {
    let fake = FakeLabelbox::start(KEY).await;
    let lb = client(&fake);
    lb.setup(&spec()).await.unwrap();
    let mut more = spec();
    more.tool_names.push("zebra".into());

    let report = lb.setup(&more).await.unwrap();

    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("zebra"));
}

#[tokio::test]
async fn the_project_tools_are_the_ontology_tools() {
    let fake = FakeLabelbox::start(KEY).await;
    let lb = client(&fake);
    let report = lb.setup(&spec()).await.unwrap();

    let tools = lb.project_tool_names(&report.project_id).await.unwrap();

    assert_eq!(tools, ["cat", "dog", "bird"]);
}

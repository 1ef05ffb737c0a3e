//! `setup` against the fake Labelbox: creates what is missing, connects it,
//! and on a second run finds everything and creates nothing.

use std::time::Duration;

use modelobs_labelbox::setup::{ImageAccess, bbox_ontology};
use modelobs_labelbox::{LabelboxClient, LabelboxError, SetupSpec, WebhookSpec};
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
        image_access: ImageAccess::DelegatedDefault,
    }
}

const ROLE: &str = "arn:aws:iam::123456789012:role/labelbox-delegated-access";

/// A fake Labelbox whose organisation has a valid default IAM integration.
async fn labelbox() -> (FakeLabelbox, String) {
    let fake = FakeLabelbox::start(KEY).await;
    let integration = fake.insert_iam_integration("modelobs-s3", ROLE, true, true);
    (fake, integration)
}

/// Our ontology (by name), not the empty one an editor comes with.
fn ours(fake: &FakeLabelbox) -> Vec<modelobs_testkit::fake_labelbox::FakeOntology> {
    fake.ontologies()
        .into_iter()
        .filter(|o| o.name == "animals ontology")
        .collect()
}

fn client(fake: &FakeLabelbox) -> LabelboxClient {
    LabelboxClient::new(KEY)
        .unwrap()
        .with_endpoint(fake.endpoint())
        .with_retry(RetryPolicy::immediate(2))
        .with_max_retry_after(Duration::ZERO)
}

const CREATES: [&str; 9] = [
    "CreateDatasetPyApi",
    "setSignerForDatasetPyApi",
    "updateProjectPyApi",
    "CreateProjectPyApi",
    "upsertRootSchemaNodePyApi",
    "ConnectProjectAndLabelingFrontendPyApi",
    "CreateLabelingFrontendOptionsPyApi",
    "ConnectOntologyPyApi",
    "CreateWebhookPyApi",
];

#[tokio::test]
async fn setup_creates_and_connects_everything_once() {
    // GIVEN an empty Labelbox, but for a default IAM integration
    let (fake, integration) = labelbox().await;
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
    // AND the project is marked set up, as the SDK's connect_ontology ends
    let setup_complete = projects[0]
        .setup_complete
        .as_deref()
        .expect("marked set up");
    assert!(
        chrono::NaiveDateTime::parse_from_str(setup_complete, "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "{setup_complete}"
    );
    // AND the dataset's images are signed through the default integration
    assert_eq!(
        fake.dataset_signer(&report.dataset_id).as_deref(),
        Some(integration.as_str())
    );
    let signer = report.signer.as_ref().expect("delegated access");
    assert_eq!(signer.id, integration);
    assert_eq!(signer.role_arn.as_deref(), Some(ROLE));
    // One rectangle tool per class.
    let ontologies = ours(&fake);
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
    let (fake, _) = labelbox().await;
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
    assert_eq!(second.signer, first.signer);
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    let ops = fake.operations();
    for op in CREATES {
        assert!(!ops.iter().any(|o| o == op), "{op} sent again: {ops:?}");
    }
    assert_eq!(fake.projects().len(), 1);
    assert_eq!(fake.dataset_names().len(), 1);
    assert_eq!(ours(&fake).len(), 1);
    assert_eq!(fake.webhooks().len(), 1);
    // AND delegated access was checked again, not attached again
    assert!(ops.iter().any(|o| o == "validateDatasetPyApi"), "{ops:?}");
}

#[tokio::test]
async fn an_existing_ontology_missing_a_class_is_reported() {
    let (fake, _) = labelbox().await;
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
    let (fake, _) = labelbox().await;
    let lb = client(&fake);
    let report = lb.setup(&spec()).await.unwrap();

    let tools = lb.project_tool_names(&report.project_id).await.unwrap();

    assert_eq!(tools, ["cat", "dog", "bird"]);
}

#[tokio::test]
async fn a_project_with_another_ontology_keeps_it_and_says_so() {
    // GIVEN the project, already connected by hand to an ontology with tools
    let (fake, _) = labelbox().await;
    let project = fake.insert_project("animals");
    let theirs = fake.insert_ontology(
        "hand-made",
        bbox_ontology(&["cat".into(), "dog".into(), "bird".into()]),
    );
    fake.connect_project_ontology(&project, &theirs);

    // WHEN setup runs, twice
    let lb = client(&fake);
    let report = lb.setup(&spec()).await.unwrap();
    let again = lb.setup(&spec()).await.unwrap();

    // THEN the project keeps its ontology: nothing was connected over it
    assert_eq!(
        fake.projects()[0].ontology_id.as_deref(),
        Some(theirs.as_str())
    );
    let ops = fake.operations();
    assert!(!ops.iter().any(|o| o == "ConnectOntologyPyApi"), "{ops:?}");
    assert!(
        !ops.iter().any(|o| o == "upsertRootSchemaNodePyApi"),
        "{ops:?}"
    );
    assert_eq!(report.ontology_id, theirs);
    // AND a warning names both ontologies, on every run
    for r in [&report, &again] {
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("hand-made"), "{:?}", r.warnings);
        assert!(
            r.warnings[0].contains("animals ontology"),
            "{:?}",
            r.warnings
        );
    }
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[tokio::test]
async fn a_project_connected_before_is_marked_set_up_once() {
    // GIVEN our ontology connected to the project, the project not marked set up
    let (fake, _) = labelbox().await;
    let project = fake.insert_project("animals");
    let ontology = fake.insert_ontology("animals ontology", bbox_ontology(&spec().tool_names));
    fake.connect_project_ontology(&project, &ontology);

    // WHEN setup runs twice
    let lb = client(&fake);
    lb.setup(&spec()).await.unwrap();
    let marked = fake.projects()[0].setup_complete.clone();
    let again = lb.setup(&spec()).await.unwrap();

    // THEN it was marked on the first run only, and not connected again
    assert!(marked.is_some());
    assert_eq!(fake.projects()[0].setup_complete, marked);
    let ops = fake.operations();
    assert_eq!(
        ops.iter().filter(|o| *o == "updateProjectPyApi").count(),
        1,
        "{ops:?}"
    );
    assert!(!ops.iter().any(|o| o == "ConnectOntologyPyApi"), "{ops:?}");
    assert!(again.changes.is_empty(), "{:?}", again.changes);
}

#[tokio::test]
async fn a_named_integration_is_found_by_name_or_id() {
    // GIVEN a default integration and another
    let (fake, default) = labelbox().await;
    let other_role = "arn:aws:iam::123456789012:role/other";
    let other = fake.insert_iam_integration("other-bucket", other_role, true, false);
    let lb = client(&fake);

    // WHEN setup names the other by name, then the default by id
    let by_name = lb
        .setup(&SetupSpec {
            image_access: ImageAccess::Delegated("other-bucket".into()),
            ..spec()
        })
        .await
        .unwrap();
    assert_eq!(
        by_name.signer.as_ref().map(|s| s.id.as_str()),
        Some(other.as_str())
    );
    assert_eq!(
        by_name.signer.unwrap().role_arn.as_deref(),
        Some(other_role)
    );
    assert_eq!(
        fake.dataset_signer(&by_name.dataset_id).as_deref(),
        Some(other.as_str())
    );
    let by_id = lb
        .setup(&SetupSpec {
            image_access: ImageAccess::Delegated(default.clone()),
            ..spec()
        })
        .await
        .unwrap();

    // THEN the dataset's signer followed
    assert_eq!(
        fake.dataset_signer(&by_id.dataset_id).as_deref(),
        Some(default.as_str())
    );
    assert_eq!(by_id.changes.len(), 1, "{:?}", by_id.changes);
    assert!(by_id.changes[0].contains(&other), "{:?}", by_id.changes);
}

#[tokio::test]
async fn without_a_default_integration_nothing_is_made() {
    let fake = FakeLabelbox::start(KEY).await;

    let err = client(&fake).setup(&spec()).await.unwrap_err();

    assert!(matches!(err, LabelboxError::Configuration(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no default IAM integration"), "{message}");
    assert!(
        message.contains("Workspace settings → Integrations"),
        "{message}"
    );
    assert!(fake.dataset_names().is_empty());
    assert!(fake.projects().is_empty());
}

#[tokio::test]
async fn an_integration_that_is_not_valid_is_refused() {
    let fake = FakeLabelbox::start(KEY).await;
    fake.insert_iam_integration("broken", ROLE, false, true);

    let err = client(&fake).setup(&spec()).await.unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("not valid") && message.contains(ROLE),
        "{message}"
    );
    assert!(
        !fake
            .operations()
            .iter()
            .any(|o| o == "setSignerForDatasetPyApi")
    );
}

#[tokio::test]
async fn a_failed_validation_is_refused() {
    // GIVEN a default integration Labelbox can no longer assume (still valid when last checked)
    let (fake, integration) = labelbox().await;
    fake.break_iam_integration(&integration);

    let err = client(&fake).setup(&spec()).await.unwrap_err();

    assert!(matches!(err, LabelboxError::Configuration(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("validation failed"), "{message}");
    assert!(
        message.contains("Workspace settings → Integrations"),
        "{message}"
    );
}

#[tokio::test]
async fn presigned_access_needs_no_integration() {
    let fake = FakeLabelbox::start(KEY).await;

    let report = client(&fake)
        .setup(&SetupSpec {
            image_access: ImageAccess::Presigned,
            ..spec()
        })
        .await
        .unwrap();

    assert_eq!(report.signer, None);
    assert_eq!(fake.dataset_signer(&report.dataset_id), None);
    let ops = fake.operations();
    for op in [
        "getAllIntegrationsPyApi",
        "setSignerForDatasetPyApi",
        "validateDatasetPyApi",
    ] {
        assert!(!ops.iter().any(|o| o == op), "{op} in {ops:?}");
    }
}

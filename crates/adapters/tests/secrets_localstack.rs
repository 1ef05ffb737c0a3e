//! `resolve_secret` against Secrets Manager in LocalStack (tier 2: `make test-localstack`).
//!
//! Every test is `#[ignore]`d with the reason: `make test` runs them inside
//! `localstack/with-stack` with `--include-ignored`; without a stack they fail.
//! Every test creates its own freshly named secret, so runs never see each other.

use aws_sdk_secretsmanager::Client;
use modelobs_adapters::secrets::{SecretError, SecretsManager, arn_variable, resolve_secret_from};

/// A client and a secret name no earlier run used (the test fails without a stack).
async fn stack(test: &str) -> (Client, String) {
    modelobs_testkit::require_localstack();
    let client = SecretsManager::client_from_env().await;
    let name = format!("test-secrets-localstack/{}/{test}", uuid::Uuid::now_v7());
    (client, name)
}

/// Only the ARN variable is set, as in the deployed stack.
fn only_arn(name: &'static str, arn: String) -> impl Fn(&str) -> Option<String> {
    let var = arn_variable(name);
    move |k| (k == var).then(|| arn.clone())
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn a_secret_named_by_its_arn_resolves_to_its_string() {
    let (client, name) = stack("by_arn").await;
    // GIVEN a secret created through the SDK
    let created = client
        .create_secret()
        .name(&name)
        .secret_string("s3cr3t value with spaces")
        .send()
        .await
        .unwrap();
    let arn = created
        .arn()
        .expect("CreateSecret returns the ARN")
        .to_string();

    // WHEN only WEBHOOK_SECRET_ARN names it
    let value = resolve_secret_from(
        "WEBHOOK_SECRET",
        only_arn("WEBHOOK_SECRET", arn),
        &SecretsManager::new(client.clone()),
    )
    .await;

    // THEN its SecretString comes back verbatim
    assert_eq!(value.as_deref(), Ok("s3cr3t value with spaces"));
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn the_current_version_wins_after_a_put() {
    let (client, name) = stack("rotated").await;
    // GIVEN a secret created with a placeholder, then given its real value (as the template's
    // generated secrets are)
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string("placeholder")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("the-real-key")
        .send()
        .await
        .unwrap();

    // WHEN resolved
    let value = resolve_secret_from(
        "LABELBOX_API_KEY",
        only_arn("LABELBOX_API_KEY", arn),
        &SecretsManager::new(client),
    )
    .await;

    // THEN the current value
    assert_eq!(value.as_deref(), Ok("the-real-key"));
}

#[tokio::test]
#[ignore = "needs LocalStack (localstack/with-stack): make test runs it"]
async fn a_missing_secret_is_an_error_naming_the_variable() {
    let (client, name) = stack("missing").await;
    let arn = format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-AbCdEf");

    let err = resolve_secret_from(
        "OBSERVE_TOKEN",
        only_arn("OBSERVE_TOKEN", arn.clone()),
        &SecretsManager::new(client),
    )
    .await
    .unwrap_err();

    match &err {
        SecretError::Fetch {
            arn_var,
            secret_id,
            message,
        } => {
            assert_eq!(arn_var, "OBSERVE_TOKEN_SECRET_ARN");
            assert_eq!(secret_id, &arn);
            assert!(message.contains("ResourceNotFound"), "{message}");
        }
        other => panic!("expected a fetch error, got {other:?}"),
    }
}

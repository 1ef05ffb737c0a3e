//! Secrets at start-up: `resolve_secret("LABELBOX_API_KEY")` is the value of
//! `LABELBOX_API_KEY` when that is set (local runs, tests), else the secret that
//! `LABELBOX_API_KEY_SECRET_ARN` names, read from AWS Secrets Manager (the
//! deployed stack: template.yaml passes ARNs, never values). A name that ends
//! in `_SECRET` takes `_ARN` alone: `WEBHOOK_SECRET` → `WEBHOOK_SECRET_ARN`.
//! Call it once per secret in `main`; the value lives as long as the execution
//! environment.
//!
//! The secret is its plain `SecretString`, used verbatim: a value that looks
//! like JSON (`{"value": ...}`) is *not* unwrapped. That is what
//! `aws secretsmanager put-secret-value --secret-string <key>` stores and what
//! the template's generated secrets hold. A binary-only or empty secret is an
//! error, as is an empty environment variable (an empty HMAC key or API key is
//! never what was meant).

use std::future::Future;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    #[error(
        "neither {name} nor {arn_var} is set: set {name} to the value (local runs) \
         or {arn_var} to a Secrets Manager secret ARN (AWS)"
    )]
    NotConfigured { name: String, arn_var: String },
    #[error("{arn_var}: cannot read secret {secret_id} from Secrets Manager: {message}")]
    Fetch {
        arn_var: String,
        secret_id: String,
        message: String,
    },
    #[error("{arn_var}: secret {secret_id} has no SecretString, or it is empty")]
    Empty { arn_var: String, secret_id: String },
}

/// Where a secret comes from, decided from the environment alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `NAME` itself.
    Value(String),
    /// `NAME_SECRET_ARN`: the variable's name and the ARN (or name) it holds.
    SecretsManager { arn_var: String, secret_id: String },
}

/// The variable holding the ARN of secret `name`: `NAME_SECRET_ARN`, or
/// `NAME_ARN` when `NAME` ends in `_SECRET` (the names template.yaml uses).
pub fn arn_variable(name: &str) -> String {
    if name.ends_with("_SECRET") {
        format!("{name}_ARN")
    } else {
        format!("{name}_SECRET_ARN")
    }
}

/// `NAME` if set and non-empty, else its ARN variable ([`arn_variable`]) if set
/// and non-empty.
pub fn secret_source(
    name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<SecretSource, SecretError> {
    let arn_var = arn_variable(name);
    let set = |var: &str| env(var).filter(|v| !v.trim().is_empty());
    if let Some(value) = set(name) {
        return Ok(SecretSource::Value(value));
    }
    match set(&arn_var) {
        Some(secret_id) => Ok(SecretSource::SecretsManager {
            arn_var,
            secret_id: secret_id.trim().to_string(),
        }),
        None => Err(SecretError::NotConfigured {
            name: name.to_string(),
            arn_var,
        }),
    }
}

/// Reads one secret's string value.
pub trait SecretStore: Send + Sync {
    /// `Ok(None)`: the secret exists but has no `SecretString`.
    fn secret_string(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<Option<String>, String>> + Send;
}

/// [`resolve_secret`] with the environment and the store given: for tests and
/// for callers that already hold a Secrets Manager client.
pub async fn resolve_secret_from<S: SecretStore>(
    name: &str,
    env: impl Fn(&str) -> Option<String>,
    store: &S,
) -> Result<String, SecretError> {
    match secret_source(name, env)? {
        SecretSource::Value(value) => Ok(value),
        SecretSource::SecretsManager { arn_var, secret_id } => {
            fetch(store, arn_var, secret_id).await
        }
    }
}

/// The secret `NAME`: the environment variable, else the Secrets Manager
/// secret its ARN variable ([`arn_variable`]) names (client from the environment, like
/// [`crate::s3::S3Store::client_from_env`]: `AWS_ENDPOINT_URL` for LocalStack).
/// The client is only built when the ARN is needed.
pub async fn resolve_secret(name: &str) -> Result<String, SecretError> {
    match secret_source(name, |var| std::env::var(var).ok())? {
        SecretSource::Value(value) => Ok(value),
        SecretSource::SecretsManager { arn_var, secret_id } => {
            let store = SecretsManager::new(SecretsManager::client_from_env().await);
            fetch(&store, arn_var, secret_id).await
        }
    }
}

async fn fetch<S: SecretStore>(
    store: &S,
    arn_var: String,
    secret_id: String,
) -> Result<String, SecretError> {
    match store.secret_string(&secret_id).await {
        Ok(Some(value)) if !value.is_empty() => {
            tracing::info!(arn_var, "secret read from Secrets Manager");
            Ok(value)
        }
        Ok(_) => Err(SecretError::Empty { arn_var, secret_id }),
        Err(message) => Err(SecretError::Fetch {
            arn_var,
            secret_id,
            message,
        }),
    }
}

/// [`SecretStore`] on AWS Secrets Manager (`GetSecretValue`, current version).
#[derive(Clone)]
pub struct SecretsManager {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManager {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// A client from the environment (region, credentials, `AWS_ENDPOINT_URL`).
    pub async fn client_from_env() -> aws_sdk_secretsmanager::Client {
        let shared = aws_config::load_from_env().await;
        aws_sdk_secretsmanager::Client::new(&shared)
    }
}

impl SecretStore for SecretsManager {
    async fn secret_string(&self, secret_id: &str) -> Result<Option<String>, String> {
        match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(out) => Ok(out.secret_string().map(str::to_string)),
            Err(SdkError::ServiceError(se)) => {
                let e = se.err();
                Err(format!(
                    "{}: {}",
                    e.code().unwrap_or("error"),
                    e.message().unwrap_or("(no message)")
                ))
            }
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

/// Secrets in memory, counting reads: tests and local tools.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    secrets: std::collections::HashMap<String, Option<String>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemorySecrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// A secret with a string value (`None`: binary only).
    pub fn with(mut self, secret_id: &str, value: Option<&str>) -> Self {
        self.secrets
            .insert(secret_id.to_string(), value.map(str::to_string));
        self
    }

    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SecretStore for MemorySecrets {
    async fn secret_string(&self, secret_id: &str) -> Result<Option<String>, String> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.secrets.get(secret_id).cloned().ok_or_else(|| {
            format!("ResourceNotFoundException: Secrets Manager can't find {secret_id}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:hook-AbCdEf";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[tokio::test]
    async fn the_variable_itself_wins_and_secrets_manager_is_not_asked() {
        // GIVEN both the value and an ARN
        let store = MemorySecrets::new().with(ARN, Some("from-aws"));
        let env = env(&[("WEBHOOK_SECRET", "local"), ("WEBHOOK_SECRET_ARN", ARN)]);

        // WHEN resolved
        let value = resolve_secret_from("WEBHOOK_SECRET", env, &store).await;

        // THEN the local value, without a read
        assert_eq!(value.as_deref(), Ok("local"));
        assert_eq!(store.reads(), 0);
    }

    #[tokio::test]
    async fn without_the_variable_the_arn_is_read_once_and_used_verbatim() {
        // A JSON-looking secret stays as it is: plain SecretString, no unwrapping.
        let store = MemorySecrets::new().with(ARN, Some(r#"{"value": "x"}"#));
        let env = env(&[("WEBHOOK_SECRET_ARN", ARN)]);

        let value = resolve_secret_from("WEBHOOK_SECRET", env, &store).await;

        assert_eq!(value.as_deref(), Ok(r#"{"value": "x"}"#));
        assert_eq!(store.reads(), 1);
    }

    #[tokio::test]
    async fn neither_variable_is_an_error_naming_both() {
        let store = MemorySecrets::new();
        // An empty value counts as unset.
        let err = resolve_secret_from("LABELBOX_API_KEY", env(&[("LABELBOX_API_KEY", "")]), &store)
            .await
            .unwrap_err();

        let message = err.to_string();
        assert!(message.contains("LABELBOX_API_KEY "), "{message}");
        assert!(message.contains("LABELBOX_API_KEY_SECRET_ARN"), "{message}");
        assert_eq!(store.reads(), 0);
    }

    #[tokio::test]
    async fn a_missing_binary_or_empty_secret_is_an_error_naming_the_variable() {
        let store = MemorySecrets::new()
            .with("binary", None)
            .with("empty", Some(""));
        let cases = [
            ("gone", "cannot read secret gone"),
            ("binary", "no SecretString"),
            ("empty", "no SecretString"),
        ];
        for (secret_id, words) in cases {
            let err = resolve_secret_from(
                "OBSERVE_TOKEN",
                env(&[("OBSERVE_TOKEN_SECRET_ARN", secret_id)]),
                &store,
            )
            .await
            .unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("OBSERVE_TOKEN_SECRET_ARN: "),
                "{message}"
            );
            assert!(message.contains(words), "{secret_id}: {message}");
        }
    }

    #[test]
    fn arn_variables_are_the_templates_names() {
        assert_eq!(arn_variable("WEBHOOK_SECRET"), "WEBHOOK_SECRET_ARN");
        assert_eq!(
            arn_variable("LABELBOX_API_KEY"),
            "LABELBOX_API_KEY_SECRET_ARN"
        );
        assert_eq!(arn_variable("OBSERVE_TOKEN"), "OBSERVE_TOKEN_SECRET_ARN");
    }

    #[test]
    fn the_source_is_decided_from_the_environment_alone() {
        assert_eq!(
            secret_source("X", env(&[("X_SECRET_ARN", " arn:x ")])),
            Ok(SecretSource::SecretsManager {
                arn_var: "X_SECRET_ARN".into(),
                secret_id: "arn:x".into()
            })
        );
        assert_eq!(
            secret_source("X", env(&[("X", "v")])),
            Ok(SecretSource::Value("v".into()))
        );
    }
}

//! The GraphQL transport: authentication, retries, error mapping.

use std::sync::Arc;
use std::time::Duration;

use modelobs_retry::{RetryPolicy, Retryable};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::multipart::{Form, Part};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::LabelboxError;

pub const DEFAULT_ENDPOINT: &str = "https://api.labelbox.com/graphql";

/// How long to wait for Labelbox's asynchronous jobs (data row upserts,
/// global key look-ups), and how often to ask.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        // The SDK polls every 2 s; a single-row upsert is done in seconds.
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Which of Labelbox's two GraphQL endpoints: `createBatchV2` lives on the
/// "experimental" one (`/_gql`), as the SDK's `experimental=True` sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Main,
    Experimental,
}

#[derive(Clone)]
pub struct LabelboxClient {
    endpoint: String,
    api_key: String,
    http: reqwest::Client,
    /// Retries of throttled, failed or lost requests; `max_retry_after` is
    /// the longest `Retry-After` honoured.
    retry: RetryPolicy,
    polling: Polling,
    /// Each request's own limit (connect, send, answer); the default is the
    /// SDK's 180 s, far over a Lambda's budget: functions set their own.
    request_timeout: Duration,
    /// The API key's user id (`GetUserPyApi`), asked once and shared by the
    /// clones: task polls name it.
    user_id: Arc<tokio::sync::OnceCell<String>>,
}

impl std::fmt::Debug for LabelboxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the API key.
        f.debug_struct("LabelboxClient")
            .field("endpoint", &self.endpoint)
            .field("retry", &self.retry)
            .field("polling", &self.polling)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// One GraphQL error as Labelbox writes it.
#[derive(Debug, Deserialize)]
struct GraphqlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Option<Value>,
}

impl LabelboxClient {
    /// A client for `https://api.labelbox.com/graphql` with the default retries.
    pub fn new(api_key: impl Into<String>) -> Result<Self, LabelboxError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            api_key: api_key.into(),
            http,
            retry: RetryPolicy {
                attempts: 5,
                first_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(8),
                max_retry_after: Duration::from_secs(30),
                jitter: true,
            },
            polling: Polling::default(),
            // The SDK allows 60 s per query and 180 s for batches.
            request_timeout: Duration::from_secs(180),
            user_id: Arc::default(),
        })
    }

    /// Each request (every attempt, every poll, every download) ends after
    /// `timeout`: a black-holed Labelbox costs that, not the SDK's 180 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Another GraphQL endpoint (tests: a local fake). The experimental
    /// endpoint is derived from it as the SDK does (`/graphql` → `/_gql`).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        // Another Labelbox: its user is not the one asked before.
        self.user_id = Arc::default();
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.retry.max_retry_after = max;
        self
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    pub fn with_polling(mut self, polling: Polling) -> Self {
        self.polling = polling;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn polling(&self) -> Polling {
        self.polling
    }

    /// The id of the user the API key belongs to, as `Client.get_user` reads
    /// it (`_get_single(Entity.User, None)` → `query GetUserPyApi{user{...}}`,
    /// client.py and orm/query.py `get_single`). Asked once per client: the
    /// SDK keeps it on each task (`task._user`) for its polls.
    pub async fn current_user_id(&self) -> Result<String, LabelboxError> {
        const QUERY: &str = "query GetUserPyApi {user {id}}";
        self.user_id
            .get_or_try_init(|| async {
                let data = self.execute_on(Api::Main, QUERY, json!({})).await?;
                data.pointer("/user/id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| LabelboxError::Protocol("GetUserPyApi: no user id".into()))
            })
            .await
            .cloned()
    }

    fn url(&self, api: Api) -> String {
        match api {
            Api::Main => self.endpoint.clone(),
            Api::Experimental => self.endpoint.replace("/graphql", "/_gql"),
        }
    }

    /// Runs a query or mutation and returns its `data`.
    pub async fn execute(&self, query: &str, variables: Value) -> Result<Value, LabelboxError> {
        self.execute_on(Api::Main, query, variables).await
    }

    pub(crate) async fn execute_on(
        &self,
        api: Api,
        query: &str,
        variables: Value,
    ) -> Result<Value, LabelboxError> {
        let url = self.url(api);
        let body = json!({ "query": query, "variables": variables });
        self.send_with_retries(operation_name(query), || self.http.post(&url).json(&body))
            .await
    }

    /// [`execute`](Self::execute), its `data` read as `T`.
    pub(crate) async fn execute_as<T: DeserializeOwned>(
        &self,
        api: Api,
        query: &str,
        variables: Value,
    ) -> Result<T, LabelboxError> {
        let data = self.execute_on(api, query, variables).await?;
        serde_json::from_value(data)
            .map_err(|e| LabelboxError::Protocol(format!("{}: {e}", operation_name(query))))
    }

    /// A GraphQL multipart request (the "GraphQL multipart request spec" the
    /// SDK speaks): `operations`, then `map`, then the file under `file_key`,
    /// bound to `variables.file`.
    pub(crate) async fn execute_with_file(
        &self,
        query: &str,
        mut variables: Value,
        file_key: &str,
        file_name: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<Value, LabelboxError> {
        variables["file"] = Value::Null;
        let operations = json!({ "query": query, "variables": variables }).to_string();
        let map = json!({ file_key: ["variables.file"] }).to_string();
        let url = self.url(Api::Main);
        self.send_with_retries(operation_name(query), || {
            // A form is consumed by sending: built anew for every attempt.
            let file = Part::bytes(content.to_vec())
                .file_name(file_name.to_string())
                .mime_str(content_type)
                .expect("content types here are static and valid");
            let form = Form::new()
                .text("operations", operations.clone())
                .text("map", map.clone())
                .part(file_key.to_string(), file);
            self.http.post(&url).multipart(form)
        })
        .await
    }

    /// Uploads bytes to Labelbox's storage and returns their URL
    /// (`uploadFile`, as `Client.upload_data` does).
    pub async fn upload_file(
        &self,
        file_name: &str,
        content_type: &str,
        content: &[u8],
    ) -> Result<String, LabelboxError> {
        const QUERY: &str = "mutation UploadFile($file: Upload!, $contentLength: Int!, $sign: Boolean) {\
            uploadFile(file: $file, contentLength: $contentLength, sign: $sign) {url filename} }";
        let data = self
            .execute_with_file(
                QUERY,
                json!({ "contentLength": content.len(), "sign": false }),
                "1",
                file_name,
                content_type,
                content,
            )
            .await?;
        data.pointer("/uploadFile/url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| LabelboxError::Protocol("uploadFile: no url".into()))
    }

    /// A file Labelbox points to (an export chunk): a signed storage URL,
    /// fetched without the API key, as the SDK does (`requests.get(url)`).
    pub(crate) async fn download(&self, url: &str) -> Result<Vec<u8>, LabelboxError> {
        let response = self
            .http
            .get(url)
            .timeout(self.request_timeout)
            .send()
            .await?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(LabelboxError::RateLimited {
                retry_after: retry_after(response.headers()),
            });
        }
        if status.is_server_error() {
            return Err(LabelboxError::Server(status.as_u16()));
        }
        if !status.is_success() {
            return Err(LabelboxError::Protocol(format!(
                "downloading an export file: HTTP {status}"
            )));
        }
        Ok(response.bytes().await?.to_vec())
    }

    async fn send_with_retries<F>(
        &self,
        operation: &str,
        request: F,
    ) -> Result<Value, LabelboxError>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        self.retry
            .run(operation, || async {
                let sent = request()
                    .timeout(self.request_timeout)
                    .bearer_auth(&self.api_key)
                    .header("Accept", "application/json")
                    .send()
                    .await;
                match sent {
                    Ok(response) => match read_response(response).await {
                        (Ok(data), _) => Ok(data),
                        (Err(error), retry_after) => Err(Attempt { error, retry_after }),
                    },
                    Err(e) => Err(Attempt {
                        error: LabelboxError::Http(e),
                        retry_after: None,
                    }),
                }
            })
            .await
            .map_err(|a| a.error)
    }
}

/// The operation name of a query (`mutation CreateDatasetPyApi(...)` →
/// `CreateDatasetPyApi`), for logs and errors.
pub(crate) fn operation_name(query: &str) -> &str {
    let rest = query.trim_start();
    let rest = rest
        .strip_prefix("mutation")
        .or_else(|| rest.strip_prefix("query"))
        .unwrap_or(rest)
        .trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// One failed try: the error, and the `Retry-After` its answer carried
/// (5xx answers may carry one too, not only 429s).
struct Attempt {
    error: LabelboxError,
    retry_after: Option<Duration>,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl Retryable for Attempt {
    fn is_transient(&self) -> bool {
        self.error.is_transient()
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    // Labelbox sends seconds; an HTTP date falls back to our own backoff.
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

async fn read_response(
    response: reqwest::Response,
) -> (Result<Value, LabelboxError>, Option<Duration>) {
    let status = response.status();
    let wait = retry_after(response.headers());
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (Err(LabelboxError::RateLimited { retry_after: wait }), wait);
    }
    if status.is_server_error() {
        return (Err(LabelboxError::Server(status.as_u16())), wait);
    }
    if status == StatusCode::UNAUTHORIZED {
        return (Err(LabelboxError::Unauthorized), None);
    }
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => return (Err(LabelboxError::Http(e)), None),
    };
    (read_body(status, &body), wait)
}

fn read_body(status: StatusCode, body: &[u8]) -> Result<Value, LabelboxError> {
    let json: Value = serde_json::from_slice(body).map_err(|_| {
        LabelboxError::Protocol(format!(
            "HTTP {status}, not JSON: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    // The SDK's `ApiLimitError`: a throttle that arrives as a message.
    if let Some(message) = json.get("message").and_then(Value::as_str)
        && message.starts_with("You have exceeded")
    {
        return Err(LabelboxError::RateLimited { retry_after: None });
    }
    let errors: Vec<GraphqlError> = match json.get("errors") {
        Some(errors) => serde_json::from_value(errors.clone())
            .map_err(|e| LabelboxError::Protocol(format!("errors: {e}")))?,
        None => Vec::new(),
    };
    if !errors.is_empty() {
        let codes: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                e.extensions
                    .as_ref()?
                    .get("code")?
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        if codes.iter().any(|c| c == "AUTHENTICATION_ERROR") {
            return Err(LabelboxError::Unauthorized);
        }
        return Err(LabelboxError::Graphql {
            errors: errors.into_iter().map(|e| e.message).collect(),
            codes,
        });
    }
    if !status.is_success() {
        return Err(LabelboxError::Protocol(format!("HTTP {status}: {json}")));
    }
    match json.get("data") {
        Some(data) if !data.is_null() => Ok(data.clone()),
        _ => Err(LabelboxError::Protocol("answer has no data".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_read_from_the_query() {
        assert_eq!(
            operation_name("mutation CreateDatasetPyApi($name: String!){x}"),
            "CreateDatasetPyApi"
        );
        assert_eq!(
            operation_name("\n  query getOntologiesPyApi{x}"),
            "getOntologiesPyApi"
        );
    }

    #[test]
    fn graphql_errors_become_typed_errors() {
        let body = br#"{"data":null,"errors":[{"message":"nope","extensions":{"code":"RESOURCE_CONFLICT"}}]}"#;
        let err = read_body(StatusCode::OK, body).unwrap_err();
        assert!(err.is_conflict(), "{err:?}");
        assert!(!err.is_transient());

        let body =
            br#"{"errors":[{"message":"bad key","extensions":{"code":"AUTHENTICATION_ERROR"}}]}"#;
        assert!(matches!(
            read_body(StatusCode::OK, body),
            Err(LabelboxError::Unauthorized)
        ));
    }

    #[test]
    fn an_api_limit_message_is_a_rate_limit() {
        let body = br#"{"message":"You have exceeded the API limit"}"#;
        let err = read_body(StatusCode::BAD_REQUEST, body).unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
}

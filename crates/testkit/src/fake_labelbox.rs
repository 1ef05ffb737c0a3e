//! A fake Labelbox: an HTTP/1.1 server on 127.0.0.1 that speaks the GraphQL
//! operations this crate sends, keeps what they create in memory, records
//! every request (path, `Authorization`, operation, variables, uploaded files),
//! and can be told to answer the next request with a 429, a 5xx or a GraphQL
//! error. A small axum app on a free port (test-only: `modelobs-testkit` is a
//! dev-dependency), no TLS.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State as Shared;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::storm::{Fault, Storm};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `/graphql` or `/_gql`.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The GraphQL operation name (`CreateDatasetPyApi`).
    pub operation: String,
    pub query: String,
    pub variables: Value,
    /// Multipart file parts.
    pub files: Vec<FilePart>,
}

#[derive(Debug, Clone)]
pub struct FilePart {
    pub field: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub content: Vec<u8>,
}

/// An answer to force on the next request for an operation.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// A bare HTTP status (429, 500, 503...), with `Retry-After` seconds.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// HTTP 200 with a GraphQL `errors` array.
    GraphqlError {
        message: String,
        code: Option<String>,
    },
    /// Never answers (a black-holed endpoint): the request hangs until the
    /// client gives up.
    BlackHole,
}

/// The status `answer` gives a black-holed request: `serve` never answers it.
const NO_ANSWER: u16 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDataRow {
    pub id: String,
    pub global_key: String,
    pub row_data: String,
    pub external_id: Option<String>,
    pub dataset_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeBatch {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub global_keys: Vec<String>,
    pub priority: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeImport {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub ndjson: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeWebhook {
    pub id: String,
    pub project_id: String,
    pub url: String,
    pub secret: String,
    pub topics: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeProject {
    pub id: String,
    pub name: String,
    pub ontology_id: Option<String>,
    pub labeling_frontend_id: Option<String>,
    pub showing_predictions: bool,
    /// `setupComplete`, as `updateProject` set it (`%Y-%m-%dT%H:%M:%SZ`).
    pub setup_complete: Option<String>,
}

/// An IAM integration of the organisation (delegated access): Labelbox
/// assumes the role to sign the URLs of datasets it signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIamIntegration {
    pub id: String,
    pub name: String,
    pub role_arn: String,
    pub valid: bool,
    pub is_org_default: bool,
    /// Labelbox can no longer assume the role (its trust policy changed),
    /// though `valid` still says what the last check found.
    pub broken: bool,
}

#[derive(Debug, Clone)]
pub struct FakeOntology {
    pub id: String,
    pub name: String,
    pub normalized: Value,
}

#[derive(Debug, Default)]
struct Task {
    /// `None`: the API key's user; else another user of the organisation,
    /// whose tasks are not among the key's user's `createdTasks`.
    created_by: Option<String>,
    polls_left: u32,
    created: Vec<String>,
    failed: Vec<(String, String)>,
    /// An export task's RESULT stream (NDJSON).
    export: Option<Vec<u8>>,
}

/// A label as an export row carries it under `projects.<id>.labels[]`.
#[derive(Debug, Clone)]
struct ExportLabel {
    project_id: String,
    global_key: String,
    label: Value,
}

#[derive(Debug, Default)]
struct State {
    api_key: String,
    addr: String,
    next_id: u64,
    requests: Vec<Recorded>,
    script: VecDeque<(String, Scripted)>,
    task_polls: u32,
    files: HashMap<String, Vec<u8>>,
    datasets: Vec<(String, String)>,
    projects: Vec<FakeProject>,
    ontologies: Vec<FakeOntology>,
    data_rows: Vec<FakeDataRow>,
    tasks: HashMap<String, Task>,
    jobs: HashMap<String, Vec<String>>,
    batches: Vec<FakeBatch>,
    imports: Vec<FakeImport>,
    webhooks: Vec<FakeWebhook>,
    labels: Vec<ExportLabel>,
    /// Bytes per export file chunk (`exportFileFromOffset`); `None`: one chunk.
    export_chunk: Option<usize>,
    /// How far every export chunk's reported offsets are off.
    export_offset_skew: usize,
    /// Every export chunk reports the first chunk's offsets.
    export_offsets_frozen: bool,
    /// The API key's user (`GetUserPyApi`).
    user_id: String,
    /// Who upsert tasks are created by from now on (`None`: the key's user).
    task_creator: Option<String>,
    iam_integrations: Vec<FakeIamIntegration>,
    /// Dataset id → the IAM integration signing its URLs (`setSignerForDataset`).
    signers: HashMap<String, String>,
    storm: Option<Arc<Storm>>,
    /// Polls each MAL import (by id) answers RUNNING before it ends.
    import_polls: HashMap<String, u32>,
    /// Imports end FAILED (with an error file) instead of FINISHED.
    fail_imports: bool,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }
}

pub struct FakeLabelbox {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeLabelbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeLabelbox {
    /// Listens on a free port; accepts only `Authorization: Bearer <api_key>`.
    pub async fn start(api_key: &str) -> Self {
        let (listener, addr) = crate::local_listener().await;
        let state = Arc::new(Mutex::new(State {
            api_key: api_key.to_string(),
            addr: addr.to_string(),
            user_id: "user-0".into(),
            ..State::default()
        }));
        let server = crate::serve_app(
            listener,
            axum::Router::new()
                .fallback(serve)
                .with_state(state.clone()),
        );
        Self {
            addr,
            state,
            server,
        }
    }

    /// The GraphQL endpoint to give the client.
    pub fn endpoint(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Answers the next request for `operation` (`"*"`: any) with `answer`.
    pub fn script(&self, operation: &str, answer: Scripted) {
        self.with(|s| s.script.push_back((operation.to_string(), answer)));
    }

    /// Draws every request from `storm` from now on (GraphQL after the
    /// `Authorization` check, before scripted answers; file downloads too).
    /// A status fault is answered `{"message":"storm"}`.
    pub fn storm(&self, storm: Arc<Storm>) {
        self.with(|s| s.storm = Some(storm));
    }

    /// How many polls a data row upsert task stays `IN_PROGRESS`.
    pub fn set_task_polls(&self, polls: u32) {
        self.with(|s| s.task_polls = polls);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    pub fn operations(&self) -> Vec<String> {
        self.with(|s| s.requests.iter().map(|r| r.operation.clone()).collect())
    }

    pub fn clear_requests(&self) {
        self.with(|s| s.requests.clear());
    }

    /// A data row made before the test (by someone else, an earlier run...).
    pub fn insert_data_row(&self, global_key: &str, dataset_id: &str) -> String {
        self.with(|s| {
            let id = s.id("dr");
            s.data_rows.push(FakeDataRow {
                id: id.clone(),
                global_key: global_key.to_string(),
                row_data: "https://elsewhere.example/image.jpg".into(),
                external_id: None,
                dataset_id: dataset_id.to_string(),
            });
            id
        })
    }

    pub fn insert_dataset(&self, name: &str) -> String {
        self.with(|s| {
            let id = s.id("ds");
            s.datasets.push((id.clone(), name.to_string()));
            id
        })
    }

    pub fn data_rows(&self) -> Vec<FakeDataRow> {
        self.with(|s| s.data_rows.clone())
    }

    pub fn batches(&self) -> Vec<FakeBatch> {
        self.with(|s| s.batches.clone())
    }

    pub fn imports(&self) -> Vec<FakeImport> {
        self.with(|s| s.imports.clone())
    }

    pub fn webhooks(&self) -> Vec<FakeWebhook> {
        self.with(|s| s.webhooks.clone())
    }

    pub fn projects(&self) -> Vec<FakeProject> {
        self.with(|s| s.projects.clone())
    }

    pub fn ontologies(&self) -> Vec<FakeOntology> {
        self.with(|s| s.ontologies.clone())
    }

    pub fn dataset_names(&self) -> Vec<String> {
        self.with(|s| s.datasets.iter().map(|(_, n)| n.clone()).collect())
    }

    /// A label on the data row `global_key` in `project_id`, as export v2 writes
    /// it (`{"id", "label_details": {...}, "annotations": {"objects": [...]}}`).
    /// Exports of that project filtered to that global key return it.
    pub fn insert_label(&self, project_id: &str, global_key: &str, label: Value) {
        self.with(|s| {
            s.labels.push(ExportLabel {
                project_id: project_id.to_string(),
                global_key: global_key.to_string(),
                label,
            })
        });
    }

    /// Hands out export results in chunks of `bytes` (paging by offset).
    pub fn set_export_chunk(&self, bytes: usize) {
        self.with(|s| s.export_chunk = Some(bytes.max(1)));
    }

    /// Export chunks report offsets `bytes` past where their content is, and
    /// offsets asked for are read the same way: the first chunk, asked for
    /// at 0, says it starts at `bytes`. The SDK's reader (schema/export_task.py
    /// `_BufferedGCSFileReader.read`: "there is something wrong with the way
    /// the offsets are being calculated ... do not rely on offsets for file
    /// location") still reads it whole: it appends each chunk, asks for
    /// `end + 1` next and checks `end - start + 1` bytes. Keep `bytes` under
    /// the last chunk's size, or that reader stops before the last chunk.
    pub fn set_export_offset_skew(&self, bytes: usize) {
        self.with(|s| s.export_offset_skew = bytes);
    }

    /// Every export chunk reports the first chunk's offsets, whatever was
    /// asked: a reader that asks for `end + 1` asks for the same place forever.
    pub fn freeze_export_offsets(&self) {
        self.with(|s| s.export_offsets_frozen = true);
    }

    /// Upsert tasks from now on are created by another user of the
    /// organisation: not among the API key's user's `createdTasks`.
    pub fn create_tasks_as(&self, user_id: &str) {
        self.with(|s| s.task_creator = Some(user_id.to_string()));
    }

    /// The API key's user id (`GetUserPyApi`).
    pub fn user_id(&self) -> String {
        self.with(|s| s.user_id.clone())
    }

    /// An IAM integration of the organisation (AWS: `role_arn`); `valid`:
    /// Labelbox could assume the role. Returns its id.
    pub fn insert_iam_integration(
        &self,
        name: &str,
        role_arn: &str,
        valid: bool,
        is_default: bool,
    ) -> String {
        self.with(|s| {
            let id = s.id("iam");
            s.iam_integrations.push(FakeIamIntegration {
                id: id.clone(),
                name: name.to_string(),
                role_arn: role_arn.to_string(),
                valid,
                is_org_default: is_default,
                broken: false,
            });
            id
        })
    }

    /// Labelbox can no longer assume the integration's role: `validateDataset`
    /// fails for datasets it signs, though the integration still shows valid.
    pub fn break_iam_integration(&self, id: &str) {
        self.with(|s| {
            if let Some(i) = s.iam_integrations.iter_mut().find(|i| i.id == id) {
                i.broken = true;
            }
        });
    }

    pub fn iam_integrations(&self) -> Vec<FakeIamIntegration> {
        self.with(|s| s.iam_integrations.clone())
    }

    /// The IAM integration signing a dataset's URLs.
    pub fn dataset_signer(&self, dataset_id: &str) -> Option<String> {
        self.with(|s| s.signers.get(dataset_id).cloned())
    }

    /// A project made before the test, as `createProject` makes one.
    pub fn insert_project(&self, name: &str) -> String {
        self.with(|s| {
            let id = s.id("project");
            s.projects.push(FakeProject {
                id: id.clone(),
                name: name.to_string(),
                ontology_id: None,
                labeling_frontend_id: None,
                showing_predictions: false,
                setup_complete: None,
            });
            id
        })
    }

    /// An ontology made before the test (`normalized`: its tools and classifications).
    pub fn insert_ontology(&self, name: &str, normalized: Value) -> String {
        self.with(|s| {
            let id = s.id("ontology");
            s.ontologies.push(FakeOntology {
                id: id.clone(),
                name: name.to_string(),
                normalized,
            });
            id
        })
    }

    /// Connects an editor and `ontology_id` to a project, as someone did in
    /// Labelbox's app before the test.
    pub fn connect_project_ontology(&self, project_id: &str, ontology_id: &str) {
        self.with(|s| {
            if let Some(p) = s.projects.iter_mut().find(|p| p.id == project_id) {
                p.labeling_frontend_id = Some("lf-editor".into());
                p.ontology_id = Some(ontology_id.to_string());
            }
        });
    }

    /// Every MAL import from now on ends FAILED, with an error file, as
    /// Labelbox fails one whose lines it cannot import.
    pub fn fail_imports(&self) {
        self.with(|s| s.fail_imports = true);
    }

    /// What was uploaded under a URL `uploadFile` returned.
    pub fn uploaded(&self, url: &str) -> Option<Vec<u8>> {
        self.with(|s| s.files.get(url).cloned())
    }
}

struct HttpRequest {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Every request: a `GET` of a stored file, or a GraphQL operation.
async fn serve(
    Shared(state): Shared<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = HttpRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
    };
    let (status, retry_after, body) = {
        let mut state = state.lock().expect("fake state");
        if request.method == "GET" {
            download(&mut state, request)
        } else {
            let (status, retry_after, body) = answer(&mut state, request);
            (status, retry_after, body.into_bytes())
        }
    };
    if status == NO_ANSWER {
        std::future::pending::<()>().await;
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [("content-type", "application/json")], body).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", seconds.to_string().parse().expect("digits"));
    }
    response
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `multipart/form-data` parts: (field, file name, content type, content).
fn multipart(content_type: &str, body: &[u8]) -> Vec<FilePart> {
    let Some(boundary) = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
    else {
        return Vec::new();
    };
    let delimiter = format!("--{}", boundary.trim_matches('"'));
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let rest_part = rest.strip_prefix(b"\r\n").unwrap_or(rest);
        let Some(head_end) = find(rest_part, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest_part[..head_end]).to_string();
        let content_start = &rest_part[head_end + 4..];
        let end = find(content_start, format!("\r\n{delimiter}").as_bytes())
            .unwrap_or(content_start.len());
        let content = content_start[..end].to_vec();
        let mut field = String::new();
        let mut file_name = None;
        let mut part_type = None;
        for line in head.split("\r\n") {
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("content-disposition:") {
                for attr in line.split(';') {
                    let attr = attr.trim();
                    if let Some(v) = attr.strip_prefix("name=") {
                        field = v.trim_matches('"').to_string();
                    } else if let Some(v) = attr.strip_prefix("filename=") {
                        file_name = Some(v.trim_matches('"').to_string());
                    }
                }
            } else if lower.starts_with("content-type:") {
                part_type = line.split_once(':').map(|(_, v)| v.trim().to_string());
            }
        }
        parts.push(FilePart {
            field,
            file_name,
            content_type: part_type,
            content,
        });
        rest = content_start;
    }
    parts
}

fn operation_name(query: &str) -> String {
    let rest = query.trim_start();
    let rest = rest
        .strip_prefix("mutation")
        .or_else(|| rest.strip_prefix("query"))
        .unwrap_or(rest)
        .trim_start();
    rest.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// `GET /files/<n>`: a file `uploadFile` stored or an export chunk. Recorded
/// with operation `GET` (and whatever `Authorization` came with it).
fn download(state: &mut State, request: HttpRequest) -> (u16, Option<u64>, Vec<u8>) {
    state.requests.push(Recorded {
        path: request.path.clone(),
        authorization: request.headers.get("authorization").cloned(),
        content_type: None,
        operation: "GET".into(),
        query: String::new(),
        variables: Value::Null,
        files: Vec::new(),
    });
    if let Some(fault) = stormed(state) {
        let (status, retry_after, body) = fault;
        return (status, retry_after, body.into_bytes());
    }
    let url = format!("http://{}{}", state.addr, request.path);
    match state.files.get(&url) {
        Some(content) => (200, None, content.clone()),
        None => (404, None, b"{}".to_vec()),
    }
}

/// The storm's answer, when it draws a fault.
fn stormed(state: &State) -> Option<(u16, Option<u64>, String)> {
    Some(match state.storm.as_ref()?.draw()? {
        Fault::Status {
            status,
            retry_after,
        } => (
            status,
            retry_after,
            json!({ "message": "storm" }).to_string(),
        ),
        Fault::BlackHole => (NO_ANSWER, None, String::new()),
    })
}

fn gql_error(message: impl Into<String>, code: Option<&str>) -> (u16, Option<u64>, String) {
    let mut error = json!({ "message": message.into() });
    if let Some(code) = code {
        error["extensions"] = json!({ "code": code });
    }
    (
        200,
        None,
        json!({ "data": Value::Null, "errors": [error] }).to_string(),
    )
}

fn ok(data: Value) -> (u16, Option<u64>, String) {
    (200, None, json!({ "data": data }).to_string())
}

fn answer(state: &mut State, request: HttpRequest) -> (u16, Option<u64>, String) {
    let content_type = request.headers.get("content-type").cloned();
    let authorization = request.headers.get("authorization").cloned();
    let (query, variables, files) = match content_type.as_deref() {
        Some(ct) if ct.starts_with("multipart/form-data") => {
            let parts = multipart(ct, &request.body);
            let operations: Value = parts
                .iter()
                .find(|p| p.field == "operations")
                .and_then(|p| serde_json::from_slice(&p.content).ok())
                .unwrap_or(Value::Null);
            let files = parts
                .into_iter()
                .filter(|p| p.field != "operations" && p.field != "map")
                .collect();
            (
                operations["query"].as_str().unwrap_or_default().to_string(),
                operations["variables"].clone(),
                files,
            )
        }
        _ => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            (
                body["query"].as_str().unwrap_or_default().to_string(),
                body["variables"].clone(),
                Vec::new(),
            )
        }
    };
    let operation = operation_name(&query);
    state.requests.push(Recorded {
        path: request.path.clone(),
        authorization: authorization.clone(),
        content_type,
        operation: operation.clone(),
        query: query.clone(),
        variables: variables.clone(),
        files: files.clone(),
    });

    if authorization.as_deref() != Some(format!("Bearer {}", state.api_key).as_str()) {
        return (401, None, json!({ "message": "Unauthorized" }).to_string());
    }
    if let Some(fault) = stormed(state) {
        return fault;
    }
    if let Some(i) = state
        .script
        .iter()
        .position(|(op, _)| op == "*" || *op == operation)
    {
        let (_, scripted) = state.script.remove(i).expect("index from position");
        return match scripted {
            Scripted::Status {
                status,
                retry_after,
            } => (
                status,
                retry_after,
                json!({ "message": "scripted" }).to_string(),
            ),
            Scripted::GraphqlError { message, code } => gql_error(message, code.as_deref()),
            Scripted::BlackHole => (NO_ANSWER, None, String::new()),
        };
    }
    let experimental = request.path == "/_gql";
    if !experimental && request.path != "/graphql" {
        return (404, None, "{}".into());
    }
    if operation == "createBatchV2PyApi" && !experimental {
        return gql_error(
            "Cannot query field \"createBatchV2\" on type \"ProjectMutation\".",
            Some("GRAPHQL_VALIDATION_FAILED"),
        );
    }
    dispatch(state, &operation, &query, &variables, &files)
}

fn dispatch(
    state: &mut State,
    operation: &str,
    query: &str,
    v: &Value,
    files: &[FilePart],
) -> (u16, Option<u64>, String) {
    let s = |key: &str| v[key].as_str().unwrap_or_default().to_string();
    match operation {
        "UploadFile" => {
            let Some(file) = files.iter().find(|f| f.field == "1") else {
                return gql_error("no file under map key 1", Some("MALFORMED_REQUEST"));
            };
            if v["contentLength"].as_u64() != Some(file.content.len() as u64) {
                return gql_error("contentLength does not match the file", None);
            }
            let n = state.id("file");
            let url = format!("http://{}/files/{n}", state.addr);
            state.files.insert(url.clone(), file.content.clone());
            ok(json!({ "uploadFile": { "url": url, "filename": file.file_name } }))
        }
        "UpsertDataRowsPyApi" => upsert_data_rows(state, &s("manifestUri")),
        "exportDataRowsInProjectPyApi" => start_export(state, &v["input"]),
        "GetExportMetadataHeaderPyApi" => {
            let id = v["where"]["id"].as_str().unwrap_or_default().to_string();
            if v["streamType"] != "RESULT" {
                return gql_error(format!("task {id} has no {} stream", v["streamType"]), None);
            }
            let Some(task) = state.tasks.get(&id) else {
                return gql_error(format!("task {id} not found"), Some("RESOURCE_NOT_FOUND"));
            };
            let Some(content) = &task.export else {
                return gql_error(format!("task {id} is not an export"), None);
            };
            if task.polls_left > 0 {
                return gql_error(format!("task {id} is not done"), None);
            }
            let lines = content.iter().filter(|b| **b == b'\n').count();
            // As the API writes UInt64: strings.
            ok(json!({ "task": { "exportMetadataHeader": {
                "totalSize": content.len().to_string(), "totalLines": lines.to_string() } } }))
        }
        "GetExportFileFromOffsetPyApi" => export_chunk(state, v),
        // `Client.get_user` (client.py): the API key's user.
        "GetUserPyApi" => ok(json!({ "user": { "id": state.user_id } })),
        // `Client.get_task_by_id` / `Task.refresh` (client.py, schema/task.py):
        // a task is read among the tasks its user created; there is no
        // query of a task by id alone.
        "GetUserCreatedTasksPyApi" => {
            let (user_id, task_id) = (s("userId"), s("taskId"));
            if user_id != state.user_id {
                return ok(json!({ "user": Value::Null }));
            }
            let tasks: Vec<Value> = match state.tasks.get_mut(&task_id) {
                Some(task) if task.created_by.is_none() => {
                    task.polls_left = task.polls_left.saturating_sub(1);
                    let status = if task.polls_left > 0 {
                        "IN_PROGRESS"
                    } else {
                        "COMPLETE"
                    };
                    vec![json!({ "id": task_id, "status": status })]
                }
                _ => Vec::new(),
            };
            ok(json!({ "user": { "createdTasks": tasks } }))
        }
        "FailedDataRowImportsPyApi" => {
            let task = state.tasks.get(&s("taskId"));
            let results: Vec<Value> = task
                .map(|t| {
                    t.failed
                        .iter()
                        .map(|(message, gk)| json!({ "message": message, "spec": { "globalKey": gk } }))
                        .collect()
                })
                .unwrap_or_default();
            ok(
                json!({ "failedDataRowImports": { "after": Value::Null, "total": results.len(), "results": results } }),
            )
        }
        "SuccessesfulDataRowImportsPyApi" => {
            let ids = state
                .tasks
                .get(&s("taskId"))
                .map(|t| t.created.clone())
                .unwrap_or_default();
            let nodes: Vec<Value> = state
                .data_rows
                .iter()
                .filter(|r| ids.contains(&r.id))
                .map(|r| json!({ "id": r.id, "globalKey": r.global_key, "externalId": r.external_id, "rowData": r.row_data }))
                .collect();
            ok(
                json!({ "successesfulDataRowImports": { "nodes": nodes, "after": Value::Null, "total": ids.len() } }),
            )
        }
        "getDataRowsForGlobalKeysPyApi" => {
            let keys = strings(&v["globalKeys"]);
            let job = state.id("job");
            state.jobs.insert(job.clone(), keys);
            ok(json!({ "dataRowsForGlobalKeys": { "jobId": job } }))
        }
        "getDataRowsForGlobalKeysResultPyApi" => {
            let keys = state.jobs.get(&s("jobId")).cloned().unwrap_or_default();
            let mut fetched = Vec::new();
            let mut not_found = Vec::new();
            for key in keys {
                match state.data_rows.iter().find(|r| r.global_key == key) {
                    Some(r) => fetched.push(json!({ "id": r.id })),
                    None => {
                        fetched.push(json!({ "id": "" }));
                        not_found.push(key);
                    }
                }
            }
            ok(
                json!({ "dataRowsForGlobalKeysResult": { "jobStatus": "COMPLETE", "data": {
                "fetchedDataRows": fetched, "notFoundGlobalKeys": not_found, "accessDeniedGlobalKeys": [] } } }),
            )
        }
        "CheckAllDataRowsHaveBeenProcessedPyApi" => {
            let keys = strings(&v["globalKeys"]);
            let all = keys
                .iter()
                .all(|k| state.data_rows.iter().any(|r| &r.global_key == k));
            ok(
                json!({ "queryAllDataRowsHaveBeenProcessed": { "allDataRowsHaveBeenProcessed": all } }),
            )
        }
        "createBatchV2PyApi" => {
            let project_id = s("projectId");
            let input = &v["batchInput"];
            let name = input["name"].as_str().unwrap_or_default().to_string();
            if !state.projects.iter().any(|p| p.id == project_id) {
                return gql_error(
                    format!("project {project_id} not found"),
                    Some("RESOURCE_NOT_FOUND"),
                );
            }
            if state
                .batches
                .iter()
                .any(|b| b.project_id == project_id && b.name == name)
            {
                // The SDK's tests/integration/test_batch.py: `ResourceConflict`.
                return gql_error(
                    format!("Batch with name {name} already exists in project"),
                    Some("RESOURCE_CONFLICT"),
                );
            }
            let keys = strings(&input["globalKeys"]);
            if let Some(missing) = keys
                .iter()
                .find(|k| !state.data_rows.iter().any(|r| &r.global_key == *k))
            {
                return gql_error(
                    format!("Data row with global key {missing} not found"),
                    None,
                );
            }
            // Rows already in a batch of the project are left out; none left:
            // refused, as test_batch.py `test_create_batch_with_same_data_row_ids`
            // sees it (`MalformedQueryException`).
            let in_project = |k: &String| {
                state
                    .batches
                    .iter()
                    .any(|b| b.project_id == project_id && b.global_keys.contains(k))
            };
            let keys: Vec<String> = keys.iter().filter(|k| !in_project(k)).cloned().collect();
            if keys.is_empty() {
                return gql_error(
                    "No valid data rows to add to project",
                    Some("MALFORMED_REQUEST"),
                );
            }
            let id = state.id("batch");
            state.batches.push(FakeBatch {
                id: id.clone(),
                project_id,
                name: name.clone(),
                global_keys: keys,
                priority: input["priority"].as_u64().unwrap_or(5),
            });
            ok(
                json!({ "project": { "createBatchV2": { "batch": { "id": id, "name": name }, "failedDataRowIds": [] } } }),
            )
        }
        "createMALPredictionImportByFilePyApi" => {
            let project_id = s("projectId");
            let name = s("name");
            let Some(file) = files.first() else {
                return gql_error("no file", Some("MALFORMED_REQUEST"));
            };
            if file.content_type.as_deref() != Some("application/x-ndjson") {
                return gql_error("import file must be application/x-ndjson", None);
            }
            if state
                .imports
                .iter()
                .any(|i| i.project_id == project_id && i.name == name)
            {
                return gql_error(format!("Import with name {name} already exists"), None);
            }
            let id = state.id("import");
            state.imports.push(FakeImport {
                id: id.clone(),
                project_id,
                name: name.clone(),
                ndjson: String::from_utf8_lossy(&file.content).to_string(),
            });
            ok(json!({ "createModelAssistedLabelingPredictionImport": mal_import(&id, &name) }))
        }
        "getModelAssistedLabelingPredictionImportPyApi" => {
            let Some(import) = state
                .imports
                .iter()
                .find(|i| i.project_id == s("projectId") && i.name == s("name"))
                .cloned()
            else {
                return ok(json!({ "modelAssistedLabelingPredictionImport": Value::Null }));
            };
            // RUNNING for as many polls as a task takes, then done.
            let polls = state
                .import_polls
                .entry(import.id.clone())
                .or_insert(state.task_polls);
            let running = *polls > 0;
            *polls = polls.saturating_sub(1);
            let mut answer = mal_import(&import.id, &import.name);
            if !running {
                if state.fail_imports {
                    let n = state.id("file");
                    let url = format!("http://{}/files/{n}", state.addr);
                    let error = json!({"uuid": Value::Null, "dataRow": Value::Null,
                        "errors": [{"name": "ValidationError",
                                    "message": "Tool name not found in ontology"}]});
                    state
                        .files
                        .insert(url.clone(), format!("{error}\n").into_bytes());
                    answer["state"] = json!("FAILED");
                    answer["errorFileUrl"] = json!(url);
                } else {
                    answer["state"] = json!("FINISHED");
                    answer["progress"] = json!("100%");
                }
            }
            ok(json!({ "modelAssistedLabelingPredictionImport": answer }))
        }
        "GetDatasetsPyApi" => {
            let found: Vec<Value> = state
                .datasets
                .iter()
                .filter(|(_, n)| *n == s("name"))
                .map(|(id, n)| json!({ "id": id, "name": n }))
                .collect();
            ok(json!({ "datasets": found }))
        }
        "CreateDatasetPyApi" => {
            let id = state.id("ds");
            state.datasets.push((id.clone(), s("name")));
            ok(json!({ "createDataset": { "id": id, "name": s("name") } }))
        }
        "GetProjectsPyApi" => {
            let found: Vec<Value> = state
                .projects
                .iter()
                .filter(|p| p.name == s("name"))
                .map(|p| json!({ "id": p.id, "name": p.name }))
                .collect();
            ok(json!({ "projects": found }))
        }
        "CreateProjectPyApi" => {
            if s("allowedMediaType") != "IMAGE" {
                return gql_error("expected an IMAGE project", None);
            }
            let id = state.id("project");
            state.projects.push(FakeProject {
                id: id.clone(),
                name: s("name"),
                ontology_id: None,
                labeling_frontend_id: None,
                showing_predictions: false,
                setup_complete: None,
            });
            ok(json!({ "createProject": { "id": id, "name": s("name") } }))
        }
        "getOntologiesPyApi" => {
            let search = s("search");
            let nodes: Vec<Value> = state
                .ontologies
                .iter()
                .filter(|o| o.name.contains(&search))
                .map(|o| json!({ "id": o.id, "name": o.name, "normalized": o.normalized }))
                .collect();
            ok(json!({ "ontologies": { "nodes": nodes, "nextCursor": Value::Null } }))
        }
        "upsertRootSchemaNodePyApi" => {
            let data = &v["data"];
            let Some(normalized) = data["normalized"]
                .as_str()
                .and_then(|n| serde_json::from_str::<Value>(n).ok())
            else {
                return gql_error("normalized must be a JSON string", None);
            };
            let id = state.id("ontology");
            let name = data["name"].as_str().unwrap_or_default().to_string();
            state.ontologies.push(FakeOntology {
                id: id.clone(),
                name: name.clone(),
                normalized: normalized.clone(),
            });
            ok(json!({ "upsertOntology": { "id": id, "name": name, "normalized": normalized } }))
        }
        "GetProjectSetupPyApi" | "GetProjectOntologyPyApi" => {
            let Some(p) = state.projects.iter().find(|p| p.id == s("projectId")) else {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            };
            let ontology = p
                .ontology_id
                .as_ref()
                .and_then(|id| state.ontologies.iter().find(|o| &o.id == id))
                .map(|o| json!({ "id": o.id, "name": o.name, "normalized": o.normalized.to_string() }));
            let webhooks: Vec<Value> = state
                .webhooks
                .iter()
                .filter(|w| w.project_id == p.id)
                .map(
                    |w| json!({ "id": w.id, "url": w.url, "topics": w.topics, "status": "ACTIVE" }),
                )
                .collect();
            ok(json!({ "project": {
                "id": p.id,
                "setupComplete": p.setup_complete,
                "ontology": ontology,
                "labelingFrontend": p.labeling_frontend_id.as_ref().map(|id| json!({ "id": id })),
                "webhooks": webhooks,
            }}))
        }
        "GetLabelingFrontendsPyApi" => {
            ok(json!({ "labelingFrontends": [{ "id": "lf-editor", "name": "Editor" }] }))
        }
        "ConnectProjectAndLabelingFrontendPyApi" => {
            let Some(p) = state.projects.iter_mut().find(|p| p.id == s("projectId")) else {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            };
            p.labeling_frontend_id = Some(s("labelingFrontendId"));
            ok(json!({ "updateProject": { "id": p.id } }))
        }
        // The options become the project's ontology: the empty one the SDK's
        // `connect_ontology` sends, which its `is_empty_ontology` counts as
        // no ontology (schema/project.py).
        "CreateLabelingFrontendOptionsPyApi" => {
            let Some(options) = v["customizationOptions"]
                .as_str()
                .and_then(|o| serde_json::from_str::<Value>(o).ok())
            else {
                return gql_error("customizationOptions must be a JSON string", None);
            };
            let project_id = s("project");
            if !state.projects.iter().any(|p| p.id == project_id) {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            }
            let id = state.id("lfo");
            let ontology = state.id("ontology");
            state.ontologies.push(FakeOntology {
                id: ontology.clone(),
                name: format!("Ontology of project {project_id}"),
                normalized: options,
            });
            if let Some(p) = state.projects.iter_mut().find(|p| p.id == project_id) {
                p.ontology_id.get_or_insert(ontology);
            }
            ok(json!({ "createLabelingFrontendOptions": { "id": id } }))
        }
        // `Project.update(setup_complete=...)` through orm/query.py `update_fields`.
        "updateProjectPyApi" => {
            let Some(when) = v["setupComplete"].as_str() else {
                return gql_error(
                    "setupComplete is required",
                    Some("GRAPHQL_VALIDATION_FAILED"),
                );
            };
            if chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%SZ").is_err() {
                return gql_error(
                    format!("Variable \"$setupComplete\" got invalid value {when:?}"),
                    Some("GRAPHQL_VALIDATION_FAILED"),
                );
            }
            let Some(p) = state.projects.iter_mut().find(|p| p.id == s("projectId")) else {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            };
            p.setup_complete = Some(when.to_string());
            ok(json!({ "updateProject": { "id": p.id, "setupComplete": when } }))
        }
        "ConnectOntologyPyApi" => {
            let ontology = s("ontologyId");
            if !state.ontologies.iter().any(|o| o.id == ontology) {
                return gql_error("ontology not found", Some("RESOURCE_NOT_FOUND"));
            }
            let Some(p) = state.projects.iter().find(|p| p.id == s("projectId")) else {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            };
            if p.labeling_frontend_id.is_none() {
                return gql_error("project has no labeling frontend", None);
            }
            // One ontology per project: the SDK refuses to connect over one
            // with tools or classifications ("Ontology already connected to
            // project.", `is_empty_ontology`).
            let connected = p
                .ontology_id
                .as_ref()
                .filter(|id| **id != ontology)
                .and_then(|id| state.ontologies.iter().find(|o| &o.id == id));
            if let Some(o) = connected {
                let has = |key: &str| o.normalized[key].as_array().is_some_and(|a| !a.is_empty());
                if has("tools") || has("classifications") {
                    return gql_error("Ontology already connected to project.", None);
                }
            }
            let Some(p) = state.projects.iter_mut().find(|p| p.id == s("projectId")) else {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            };
            p.ontology_id = Some(ontology);
            ok(json!({ "project": { "connectOntology": { "id": p.id } } }))
        }
        "toggle_model_assisted_labelingPyApi" => {
            let Some(p) = state.projects.iter_mut().find(|p| p.id == s("project_id")) else {
                return gql_error("project not found", Some("RESOURCE_NOT_FOUND"));
            };
            p.showing_predictions = v["show"].as_bool().unwrap_or(false);
            ok(json!({ "project": { "showPredictionsToLabelers": {
                "id": p.id, "showingPredictionsToLabelers": p.showing_predictions } } }))
        }
        "CreateWebhookPyApi" => {
            let (Some(project_id), Some(url), Some(secret)) = (
                literal_after(query, "project:{id:"),
                literal_after(query, "url:"),
                literal_after(query, "secret:"),
            ) else {
                return gql_error("createWebhook: project, url and secret are required", None);
            };
            let topics: Vec<String> = query
                .split("set:[")
                .nth(1)
                .and_then(|t| t.split(']').next())
                .map(|t| t.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            let id = state.id("webhook");
            state.webhooks.push(FakeWebhook {
                id: id.clone(),
                project_id,
                url: url.clone(),
                secret,
                topics: topics.clone(),
            });
            ok(
                json!({ "createWebhook": { "id": id, "url": url, "topics": topics, "status": "ACTIVE" } }),
            )
        }
        // Organization.get_iam_integrations (schema/organization.py).
        "getAllIntegrationsPyApi" => {
            let integrations: Vec<Value> = state
                .iam_integrations
                .iter()
                .map(|i| {
                    json!({
                        "id": i.id, "name": i.name,
                        "createdAt": "2026-01-05T10:00:00.000Z", "updatedAt": "2026-01-05T10:00:00.000Z",
                        "provider": "AWS", "valid": i.valid,
                        "lastValidAt": if i.valid { json!("2026-01-05T10:00:00.000Z") } else { Value::Null },
                        "isOrgDefault": i.is_org_default,
                        "settings": { "__typename": "AwsIamIntegrationSettings", "roleArn": i.role_arn },
                    })
                })
                .collect();
            ok(json!({ "iamIntegrations": integrations }))
        }
        // Client.create_dataset / Dataset.add_iam_integration.
        "setSignerForDatasetPyApi" | "SetSignerForDatasetPyApi" => {
            let (signer, dataset) = (s("signerId"), s("datasetId"));
            if !state.datasets.iter().any(|(id, _)| *id == dataset) {
                return gql_error("dataset not found", Some("RESOURCE_NOT_FOUND"));
            }
            if !state.iam_integrations.iter().any(|i| i.id == signer) {
                return gql_error("IAM integration not found", Some("RESOURCE_NOT_FOUND"));
            }
            state.signers.insert(dataset.clone(), signer.clone());
            ok(json!({ "setSignerForDataset": { "id": dataset, "signer": { "id": signer } } }))
        }
        // The dataset's `iam_integration` relationship (graphql name `signer`).
        "GetDatasetSignerPyApi" => {
            let dataset = s("datasetId");
            if !state.datasets.iter().any(|(id, _)| *id == dataset) {
                return ok(json!({ "dataset": Value::Null }));
            }
            let signer = state.signers.get(&dataset).map(|id| json!({ "id": id }));
            ok(json!({ "dataset": { "id": dataset, "signer": signer } }))
        }
        // Valid when the dataset's signer is an integration Labelbox can assume.
        "validateDatasetPyApi" => {
            let dataset = s("id");
            if !state.datasets.iter().any(|(id, _)| *id == dataset) {
                return gql_error("dataset not found", Some("RESOURCE_NOT_FOUND"));
            }
            let signer = state
                .signers
                .get(&dataset)
                .and_then(|id| state.iam_integrations.iter().find(|i| &i.id == id));
            let valid = signer.is_some_and(|i| i.valid && !i.broken);
            ok(json!({ "validateDataset": { "valid": valid, "checks": [
                { "name": "signerAttached", "success": signer.is_some() },
                { "name": "signerValid", "success": valid },
            ] } }))
        }
        other => gql_error(
            format!("Cannot query operation {other:?}"),
            Some("GRAPHQL_VALIDATION_FAILED"),
        ),
    }
}

fn mal_import(id: &str, name: &str) -> Value {
    json!({ "id": id, "name": name, "state": "RUNNING", "inputFileUrl": Value::Null,
        "errorFileUrl": Value::Null, "statusFileUrl": Value::Null, "progress": Value::Null })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The string literal that follows `marker` in a query.
fn literal_after(query: &str, marker: &str) -> Option<String> {
    let start = query.find(marker)? + marker.len();
    let rest = query[start..].trim_start();
    serde_json::Deserializer::from_str(rest)
        .into_iter::<String>()
        .next()?
        .ok()
}

/// `exportDataRowsInProject`: checks the input the way the SDK builds it and
/// snapshots the matching rows into a task's RESULT stream.
fn start_export(state: &mut State, input: &Value) -> (u16, Option<u64>, String) {
    let project_id = input["filters"]["projectId"].as_str().unwrap_or_default();
    if project_id.is_empty() {
        return gql_error("filters.projectId is required", Some("MALFORMED_REQUEST"));
    }
    if input["taskName"].as_str().is_none_or(str::is_empty)
        || input["streamable"] != true
        || input["isStreamableReady"] != true
    {
        return gql_error("expected a named, streamable export", None);
    }
    let Some(query) = input["filters"]["searchQuery"]["query"].as_array() else {
        return gql_error("filters.searchQuery.query must be a list", None);
    };
    let mut keys: Option<Vec<String>> = None;
    for filter in query {
        match (filter["type"].as_str(), filter["operator"].as_str()) {
            (Some("global_key"), Some("is")) => {
                keys.get_or_insert_with(Vec::new)
                    .extend(strings(&filter["ids"]));
            }
            // A data row by its id: rows the fake made, or labelled rows
            // named `dr-of-<global key>` (what this export calls them).
            (Some("data_row_id"), Some("is")) => {
                let ids = strings(&filter["ids"]);
                let of_id = |id: &String| {
                    state
                        .data_rows
                        .iter()
                        .find(|r| &r.id == id)
                        .map(|r| r.global_key.clone())
                        .or_else(|| id.strip_prefix("dr-of-").map(str::to_string))
                };
                keys.get_or_insert_with(Vec::new)
                    .extend(ids.iter().filter_map(of_id));
            }
            _ => return gql_error(format!("unsupported search query filter {filter}"), None),
        }
    }
    let with_details = input["params"]["includeLabelDetails"] == true;
    let mut row_keys: Vec<String> = Vec::new();
    for l in state.labels.iter().filter(|l| l.project_id == project_id) {
        if keys.as_ref().is_none_or(|k| k.contains(&l.global_key))
            && !row_keys.contains(&l.global_key)
        {
            row_keys.push(l.global_key.clone());
        }
    }
    // Rows asked for that are in the project without a label (not labelled
    // yet, or their labels deleted) are exported too, with no labels.
    for key in keys.iter().flatten() {
        let in_project = state
            .batches
            .iter()
            .any(|b| b.project_id == project_id && b.global_keys.contains(key));
        if in_project && !row_keys.contains(key) {
            row_keys.push(key.clone());
        }
    }
    let mut content = String::new();
    for key in row_keys {
        let labels: Vec<Value> = state
            .labels
            .iter()
            .filter(|l| l.project_id == project_id && l.global_key == key)
            .map(|l| {
                let mut label = l.label.clone();
                if !with_details && let Some(label) = label.as_object_mut() {
                    label.remove("label_details");
                }
                label
            })
            .collect();
        let data_row_id = state
            .data_rows
            .iter()
            .find(|r| r.global_key == key)
            .map(|r| r.id.clone())
            .unwrap_or_else(|| format!("dr-of-{key}"));
        let row = json!({
            "data_row": { "id": data_row_id, "global_key": key, "external_id": Value::Null,
                "row_data": "https://elsewhere.example/image.jpg" },
            "media_attributes": { "height": 512, "width": 773, "mime_type": "image/jpeg" },
            "projects": { project_id: { "name": "animals", "labels": labels } },
        });
        content.push_str(&row.to_string());
        content.push('\n');
    }
    let id = state.id("task");
    state.tasks.insert(
        id.clone(),
        Task {
            polls_left: state.task_polls,
            export: Some(content.into_bytes()),
            ..Task::default()
        },
    );
    ok(json!({ "exportDataRowsInProject": { "taskId": id, "isStreamable": true } }))
}

/// `exportFileFromOffset`: the chunk holding `offset`, stored as a file.
fn export_chunk(state: &mut State, v: &Value) -> (u16, Option<u64>, String) {
    let id = v["where"]["id"].as_str().unwrap_or_default().to_string();
    if v["streamType"] != "RESULT" {
        return gql_error(format!("task {id} has no {} stream", v["streamType"]), None);
    }
    // UInt64! arrives as a string from the SDK.
    let Some(offset) = v["offset"].as_str().and_then(|o| o.parse::<usize>().ok()) else {
        return gql_error(
            "offset must be a UInt64 string",
            Some("GRAPHQL_VALIDATION_FAILED"),
        );
    };
    let Some(content) = state.tasks.get(&id).and_then(|t| t.export.clone()) else {
        return gql_error(
            format!("export task {id} not found"),
            Some("RESOURCE_NOT_FOUND"),
        );
    };
    // Asked in the frame the offsets are reported in (see `set_export_offset_skew`).
    let offset = offset.saturating_sub(state.export_offset_skew);
    if offset >= content.len() {
        return ok(json!({ "task": { "exportFileFromOffset": Value::Null } }));
    }
    let size = state.export_chunk.unwrap_or(content.len());
    let start = offset / size * size;
    let end = (start + size).min(content.len()) - 1;
    let line_of = |at: usize| content[..at].iter().filter(|b| **b == b'\n').count();
    let n = state.id("file");
    let url = format!("http://{}/files/{n}", state.addr);
    state
        .files
        .insert(url.clone(), content[start..=end].to_vec());
    let (reported_start, reported_end) = if state.export_offsets_frozen {
        (0, size.min(content.len()) - 1)
    } else {
        (start, end)
    };
    let skew = state.export_offset_skew;
    ok(json!({ "task": { "exportFileFromOffset": {
        "offsets": {
            "start": (reported_start + skew).to_string(),
            "end": (reported_end + skew).to_string(),
        },
        "lines": { "start": line_of(start).to_string(), "end": line_of(end).to_string() },
        "file": url,
    } } }))
}

fn upsert_data_rows(state: &mut State, manifest_uri: &str) -> (u16, Option<u64>, String) {
    let Some(manifest) = state
        .files
        .get(manifest_uri)
        .and_then(|m| serde_json::from_slice::<Value>(m).ok())
    else {
        return gql_error("manifest not found", Some("MALFORMED_REQUEST"));
    };
    if manifest["source"] != "SDK" || manifest["item_count"].as_u64().is_none() {
        return gql_error(
            "manifest needs source and item_count",
            Some("MALFORMED_REQUEST"),
        );
    }
    let mut items = Vec::new();
    for uri in strings(&manifest["chunk_uris"]) {
        let Some(chunk) = state
            .files
            .get(&uri)
            .and_then(|c| serde_json::from_slice::<Vec<Value>>(c).ok())
        else {
            return gql_error(format!("chunk {uri} not found"), Some("MALFORMED_REQUEST"));
        };
        items.extend(chunk);
    }
    let mut task = Task {
        polls_left: state.task_polls,
        created_by: state.task_creator.clone(),
        ..Task::default()
    };
    for item in items {
        let payload = &item["payload"];
        if item["id"]["type"] != "AUTO" {
            task.failed
                .push(("only AUTO keys are accepted here".into(), String::new()));
            continue;
        }
        let (Some(row_data), Some(dataset_id)) =
            (payload["row_data"].as_str(), payload["dataset_id"].as_str())
        else {
            task.failed
                .push(("row_data and dataset_id are required".into(), String::new()));
            continue;
        };
        let global_key = payload["global_key"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state.data_rows.iter().any(|r| r.global_key == global_key) {
            // The key is in the message only: the failed row's spec has an
            // empty `globalKey`, as the SDK's snapshot of a duplicate shows
            // (tests/integration/snapshots/test_data_rows.
            // test_data_row_bulk_creation_with_same_global_keys.failed_data_rows.json).
            task.failed.push((
                format!("Duplicate global keys found: {global_key}"),
                String::new(),
            ));
            continue;
        }
        let id = state.id("dr");
        state.data_rows.push(FakeDataRow {
            id: id.clone(),
            global_key,
            row_data: row_data.to_string(),
            external_id: payload["external_id"].as_str().map(str::to_string),
            dataset_id: dataset_id.to_string(),
        });
        task.created.push(id);
    }
    let id = state.id("task");
    let status = if task.polls_left > 0 {
        "IN_PROGRESS"
    } else {
        "COMPLETE"
    };
    state.tasks.insert(id.clone(), task);
    ok(json!({ "upsertDataRows": { "id": id, "status": status } }))
}

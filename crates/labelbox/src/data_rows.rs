//! Data rows, the way the current SDK creates them (`Dataset.create_data_rows`
//! → `_exec_upsert_data_rows`): upload a JSON chunk of row specs, upload a
//! manifest naming the chunk, `upsertDataRows(data: {manifestUri})`, then poll
//! the task it returns.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Api, LabelboxClient};
use crate::error::{LabelboxError, mentions_existing};

/// A data row to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDataRow {
    /// What the labeling editor loads: a URL it can fetch (e.g. presigned S3).
    pub row_data: String,
    /// Unique across the organisation: our capture id.
    pub global_key: String,
    pub external_id: Option<String>,
}

/// A data row that exists now: created by this call or found by its global key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRowRef {
    pub id: String,
    pub global_key: String,
    /// `false`: the global key was taken already and the row is reused.
    pub created: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TaskState {
    pub(crate) id: String,
    pub(crate) status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedImport {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    spec: Option<FailedSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedSpec {
    #[serde(default)]
    global_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportedRow {
    id: String,
    #[serde(default)]
    global_key: Option<String>,
}

impl LabelboxClient {
    /// Creates one data row in `dataset_id`, or finds the one that already
    /// holds its global key: safe to call again for the same row.
    pub async fn create_data_row(
        &self,
        dataset_id: &str,
        row: &NewDataRow,
    ) -> Result<DataRowRef, LabelboxError> {
        let mut payload = json!({
            "row_data": row.row_data,
            "global_key": row.global_key,
            "dataset_id": dataset_id,
        });
        if let Some(external_id) = &row.external_id {
            payload["external_id"] = json!(external_id);
        }
        // An AUTO key: create, never update a row someone else made.
        let chunk = json!([{ "id": { "type": "AUTO", "value": "" }, "payload": payload }]);
        let chunk_uri = self
            .upload_file(
                "json_import.json",
                "application/json",
                chunk.to_string().as_bytes(),
            )
            .await?;
        let manifest = json!({ "source": "SDK", "item_count": 1, "chunk_uris": [chunk_uri] });
        let manifest_uri = self
            .upload_file(
                "manifest.json",
                "application/json",
                manifest.to_string().as_bytes(),
            )
            .await?;

        const UPSERT: &str = "mutation UpsertDataRowsPyApi($manifestUri: String!) {\
            upsertDataRows(data: { manifestUri: $manifestUri }) { id status } }";
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Upserted {
            upsert_data_rows: TaskState,
        }
        let task: Upserted = self
            .execute_as(Api::Main, UPSERT, json!({ "manifestUri": manifest_uri }))
            .await?;
        let task = self.wait_for_task(task.upsert_data_rows).await?;

        let failed = self.failed_imports(&task.id).await?;
        // One row per task: every failure is ours unless it names another
        // key. Labelbox leaves `spec.globalKey` empty on some (the SDK's own
        // snapshot of a duplicate key's failure has `"globalKey": ""`, tests/
        // integration/snapshots/test_data_rows.test_data_row_bulk_creation_with_same_global_keys).
        let ours = |spec: &Option<FailedSpec>| {
            spec.as_ref()
                .and_then(|s| s.global_key.as_deref())
                .is_none_or(|k| k.is_empty() || k == row.global_key)
        };
        let mut problems = Vec::new();
        for failure in failed.iter().filter(|f| ours(&f.spec)) {
            let message = failure.message.clone().unwrap_or_default();
            if mentions_existing(&message) && message.to_ascii_lowercase().contains("global key") {
                let id = self.data_row_id_for_global_key(&row.global_key).await?;
                tracing::info!(global_key = %row.global_key, data_row = %id, "global key taken: reusing its data row");
                return Ok(DataRowRef {
                    id,
                    global_key: row.global_key.clone(),
                    created: false,
                });
            }
            problems.push(message);
        }
        if !problems.is_empty() || task.status == "FAILED" {
            return Err(LabelboxError::Task {
                task: task.id,
                detail: format!("data row upsert {}: {}", task.status, problems.join("; ")),
                timed_out: false,
            });
        }

        let created = self.imported_rows(&task.id).await?;
        let row_id = created
            .into_iter()
            .find(|r| r.global_key.as_deref().is_none_or(|k| k == row.global_key))
            .map(|r| r.id)
            .ok_or_else(|| LabelboxError::Task {
                task: task.id.clone(),
                detail: "data row upsert finished without creating the row".into(),
                timed_out: false,
            })?;
        Ok(DataRowRef {
            id: row_id,
            global_key: row.global_key.clone(),
            created: true,
        })
    }

    /// Polls the task until it leaves `IN_PROGRESS`, as `Task.wait_till_done`
    /// does (schema/task.py; an export's `ExportTask.wait_till_done` is the
    /// same): Labelbox has no query of a task by id alone, `Task.refresh`
    /// reads it among the tasks the API key's user created,
    /// `user.created_tasks(where: Task.uid == id)`, in the words of
    /// `Client.get_task_by_id` (client.py). No such task (or another's):
    /// `ResourceNotFoundError` there, a failed task here.
    pub(crate) async fn wait_for_task(
        &self,
        mut task: TaskState,
    ) -> Result<TaskState, LabelboxError> {
        const QUERY: &str = "query GetUserCreatedTasksPyApi($userId: ID!, $taskId: ID!) {\
            user(where: {id: $userId}) { createdTasks(where: {id: $taskId} skip: 0 first: 1) {\
            id status } } }";
        let polling = self.polling();
        let started = tokio::time::Instant::now();
        while task.status == "IN_PROGRESS" {
            if started.elapsed() >= polling.timeout {
                return Err(LabelboxError::Task {
                    task: task.id,
                    detail: format!("still running after {:?}", polling.timeout),
                    timed_out: true,
                });
            }
            let user_id = self.current_user_id().await?;
            tokio::time::sleep(polling.interval).await;
            let data = self
                .execute_on(
                    Api::Main,
                    QUERY,
                    json!({ "userId": user_id, "taskId": task.id }),
                )
                .await?;
            let found: Vec<TaskState> = read_list(&data, "/user/createdTasks")?;
            task = found
                .into_iter()
                .next()
                .ok_or_else(|| LabelboxError::Task {
                    task: task.id.clone(),
                    detail: format!("not found among the tasks of user {user_id}"),
                    timed_out: false,
                })?;
        }
        Ok(task)
    }

    async fn failed_imports(&self, task_id: &str) -> Result<Vec<FailedImport>, LabelboxError> {
        const QUERY: &str = "query FailedDataRowImportsPyApi($taskId: ID!, $first: Int, $from: String) {\
            failedDataRowImports(data: { taskId: $taskId, first: $first, from: $from}) {\
            after total results { message spec { externalId globalKey rowData } } } }";
        let data = self
            .execute_on(
                Api::Main,
                QUERY,
                json!({ "taskId": task_id, "first": 100, "from": Value::Null }),
            )
            .await?;
        read_list(&data, "/failedDataRowImports/results")
    }

    async fn imported_rows(&self, task_id: &str) -> Result<Vec<ImportedRow>, LabelboxError> {
        // Sic: the field is spelled so in Labelbox's schema.
        const QUERY: &str = "query SuccessesfulDataRowImportsPyApi($taskId: ID!, $first: Int, $from: String) {\
            successesfulDataRowImports(data: { taskId: $taskId, first: $first, from: $from}) {\
            nodes { id externalId globalKey rowData } after total } }";
        let data = self
            .execute_on(
                Api::Main,
                QUERY,
                json!({ "taskId": task_id, "first": 100, "from": Value::Null }),
            )
            .await?;
        read_list(&data, "/successesfulDataRowImports/nodes")
    }

    /// The data row holding `global_key` (`dataRowsForGlobalKeys`, a job to poll).
    pub async fn data_row_id_for_global_key(
        &self,
        global_key: &str,
    ) -> Result<String, LabelboxError> {
        const START: &str = "query getDataRowsForGlobalKeysPyApi($globalKeys: [ID!]!) {\
            dataRowsForGlobalKeys(where: {ids: $globalKeys}) { jobId}}";
        const RESULT: &str = "query getDataRowsForGlobalKeysResultPyApi($jobId: ID!) {\
            dataRowsForGlobalKeysResult(jobId: {id: $jobId}) { data {\
            fetchedDataRows { id } notFoundGlobalKeys accessDeniedGlobalKeys } jobStatus}}";
        let data = self
            .execute_on(Api::Main, START, json!({ "globalKeys": [global_key] }))
            .await?;
        let job_id = data
            .pointer("/dataRowsForGlobalKeys/jobId")
            .and_then(Value::as_str)
            .ok_or_else(|| LabelboxError::Protocol("dataRowsForGlobalKeys: no jobId".into()))?
            .to_string();
        let polling = self.polling();
        let started = tokio::time::Instant::now();
        loop {
            let data = self
                .execute_on(Api::Main, RESULT, json!({ "jobId": job_id }))
                .await?;
            let result = &data["dataRowsForGlobalKeysResult"];
            match result["jobStatus"].as_str() {
                Some("COMPLETE") => {
                    return result
                        .pointer("/data/fetchedDataRows/0/id")
                        .and_then(Value::as_str)
                        .filter(|id| !id.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| LabelboxError::Task {
                            task: job_id,
                            detail: format!("no data row has the global key {global_key}"),
                            timed_out: false,
                        });
                }
                Some("FAILED") => {
                    return Err(LabelboxError::Task {
                        task: job_id,
                        detail: "global key look-up failed".into(),
                        timed_out: false,
                    });
                }
                _ if started.elapsed() >= polling.timeout => {
                    return Err(LabelboxError::Task {
                        task: job_id,
                        detail: format!(
                            "global key look-up still running after {:?}",
                            polling.timeout
                        ),
                        timed_out: true,
                    });
                }
                _ => tokio::time::sleep(polling.interval).await,
            }
        }
    }

    /// Waits until Labelbox has processed the rows, as the SDK does before a
    /// batch (`queryAllDataRowsHaveBeenProcessed`).
    pub async fn wait_until_processed(&self, global_keys: &[String]) -> Result<(), LabelboxError> {
        const QUERY: &str = "query CheckAllDataRowsHaveBeenProcessedPyApi($globalKeys: [ID!]) {\
            queryAllDataRowsHaveBeenProcessed(globalKeys:$globalKeys) { allDataRowsHaveBeenProcessed } }";
        let polling = self.polling();
        let started = tokio::time::Instant::now();
        loop {
            let data = self
                .execute_on(Api::Main, QUERY, json!({ "globalKeys": global_keys }))
                .await?;
            let done = data
                .pointer("/queryAllDataRowsHaveBeenProcessed/allDataRowsHaveBeenProcessed")
                .and_then(Value::as_bool)
                .ok_or_else(|| {
                    LabelboxError::Protocol("queryAllDataRowsHaveBeenProcessed: no answer".into())
                })?;
            if done {
                return Ok(());
            }
            if started.elapsed() >= polling.timeout {
                return Err(LabelboxError::Task {
                    task: global_keys.join(","),
                    detail: format!("data rows still processing after {:?}", polling.timeout),
                    timed_out: true,
                });
            }
            tokio::time::sleep(polling.interval).await;
        }
    }
}

pub(crate) fn read_list<T: serde::de::DeserializeOwned>(
    data: &Value,
    pointer: &str,
) -> Result<Vec<T>, LabelboxError> {
    match data.pointer(pointer) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(list) => serde_json::from_value(list.clone())
            .map_err(|e| LabelboxError::Protocol(format!("{pointer}: {e}"))),
    }
}

//! Sending data rows to a project (batches) with the model's boxes as
//! model-assisted pre-labels (MAL prediction imports).

use modelobs_core::boxes::LabelboxBox;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::{Api, LabelboxClient};
use crate::error::LabelboxError;

/// A batch: data rows queued for labeling in a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSpec {
    /// Unique within the project.
    pub name: String,
    pub global_keys: Vec<String>,
    /// 1 (first) to 5 (last); the SDK's default is 5.
    pub priority: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    Created {
        batch_id: String,
        /// Rows Labelbox would not add (e.g. already in the project).
        failed_data_row_ids: Vec<String>,
    },
    /// A batch of that name exists, or every row is in the project already
    /// (in an earlier batch, whatever its name): a repeated submission, the
    /// rows are queued either way.
    AlreadyExists,
}

/// One box of one data row, as a pre-label.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxPrelabel {
    /// The annotation's id: the same box gets the same id on every import.
    pub uuid: Uuid,
    /// The ontology tool's name (our class name).
    pub tool_name: String,
    pub bbox: LabelboxBox,
    /// The model's score, 0..1. The SDK warns that MAL imports ignore it; it
    /// is sent anyway so the import file says what the model said.
    pub confidence: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NdjsonBox<'a> {
    uuid: String,
    data_row: DataRowKey<'a>,
    name: &'a str,
    bbox: LabelboxBox,
    confidence: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataRowKey<'a> {
    global_key: &'a str,
}

/// The NDJSON import file: one line per box, each naming its data row by
/// global key and its tool by name.
pub fn prelabels_ndjson(global_key: &str, boxes: &[BoxPrelabel]) -> String {
    let mut out = String::new();
    for b in boxes {
        let line = NdjsonBox {
            uuid: b.uuid.hyphenated().to_string(),
            data_row: DataRowKey { global_key },
            name: &b.tool_name,
            bbox: b.bbox,
            confidence: b.confidence,
        };
        out.push_str(&serde_json::to_string(&line).expect("plain data serializes"));
        out.push('\n');
    }
    out
}

/// A model-assisted labeling import: Labelbox runs it in the background.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MalImport {
    pub id: String,
    pub name: String,
    /// `RUNNING`, `FINISHED` or `FAILED`.
    pub state: String,
    #[serde(default, rename = "errorFileUrl")]
    pub error_file_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Started(MalImport),
    /// An import of that name exists: a repeated submission.
    AlreadyExists,
}

/// Labelbox refuses a batch whose rows are all in the project already with
/// "No valid data rows to add to project" (the SDK's tests/integration/
/// test_batch.py `test_create_batch_with_same_data_row_ids`), under a code
/// many refusals share (`MALFORMED_REQUEST`, the SDK's
/// `MalformedQueryException`): the message tells it apart. Not "No valid data
/// rows to be added from the list provided!": that one is about rows that do
/// not exist.
fn all_in_project(e: &LabelboxError) -> bool {
    match e {
        LabelboxError::Graphql { errors, .. } => errors.iter().any(|m| {
            m.to_ascii_lowercase()
                .contains("no valid data rows to add to project")
        }),
        _ => false,
    }
}

const MAL_FIELDS: &str = "id name state inputFileUrl errorFileUrl statusFileUrl progress";

impl LabelboxClient {
    /// `project.createBatchV2` on the experimental endpoint, as the SDK's
    /// `Project.create_batch` sends it for fewer than 1,000 rows.
    pub async fn create_batch(
        &self,
        project_id: &str,
        batch: &BatchSpec,
    ) -> Result<BatchOutcome, LabelboxError> {
        const QUERY: &str = "mutation createBatchV2PyApi($projectId: ID!, $batchInput: CreateBatchInput!) {\
            project(where: {id: $projectId}) { createBatchV2(input: $batchInput) {\
            batch { id name } failedDataRowIds } } }";
        let variables = json!({
            "projectId": project_id,
            "batchInput": {
                "name": batch.name,
                "dataRowIds": [],
                "globalKeys": batch.global_keys,
                "priority": batch.priority,
                "consensusSettings": Value::Null,
            },
        });
        let data = match self.execute_on(Api::Experimental, QUERY, variables).await {
            Ok(data) => data,
            Err(e) if e.is_conflict() || all_in_project(&e) => {
                return Ok(BatchOutcome::AlreadyExists);
            }
            Err(e) => return Err(e),
        };
        let created = data
            .pointer("/project/createBatchV2")
            .ok_or_else(|| LabelboxError::Protocol("createBatchV2: no answer".into()))?;
        let batch_id = created
            .pointer("/batch/id")
            .and_then(Value::as_str)
            .ok_or_else(|| LabelboxError::Protocol("createBatchV2: no batch id".into()))?
            .to_string();
        let failed_data_row_ids = match created.get("failedDataRowIds") {
            Some(Value::Array(ids)) => ids
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(BatchOutcome::Created {
            batch_id,
            failed_data_row_ids,
        })
    }

    /// `createModelAssistedLabelingPredictionImport` with the NDJSON as a
    /// multipart file, as the SDK's `MALPredictionImport.create_from_objects`
    /// sends it (file `<project>__<name>.ndjson`, `application/x-ndjson`).
    pub async fn import_prelabels(
        &self,
        project_id: &str,
        name: &str,
        ndjson: &str,
    ) -> Result<ImportOutcome, LabelboxError> {
        let query = format!(
            "mutation createMALPredictionImportByFilePyApi($projectId : ID!, $name: String!, $file: Upload!, $contentLength: Int!) {{\
             createModelAssistedLabelingPredictionImport(data: {{\
             projectId: $projectId name: $name filePayload: {{ file: $file, contentLength: $contentLength}}\
             }}) {{{MAL_FIELDS}}} }}"
        );
        let file_name = format!("{project_id}__{name}.ndjson");
        let variables = json!({
            "contentLength": ndjson.len(),
            "projectId": project_id,
            "name": name,
        });
        let data = match self
            .execute_with_file(
                &query,
                variables,
                &file_name,
                &file_name,
                "application/x-ndjson",
                ndjson.as_bytes(),
            )
            .await
        {
            Ok(data) => data,
            Err(e) if e.is_conflict() => return Ok(ImportOutcome::AlreadyExists),
            Err(e) => return Err(e),
        };
        let import = data
            .get("createModelAssistedLabelingPredictionImport")
            .cloned()
            .ok_or_else(|| LabelboxError::Protocol("MAL import: no answer".into()))?;
        serde_json::from_value(import)
            .map(ImportOutcome::Started)
            .map_err(|e| LabelboxError::Protocol(format!("MAL import: {e}")))
    }

    /// The state of a MAL import, by project and name.
    pub async fn prelabel_import(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<MalImport>, LabelboxError> {
        let query = format!(
            "query getModelAssistedLabelingPredictionImportPyApi($projectId : ID!, $name: String!) {{\
             modelAssistedLabelingPredictionImport(where: {{projectId: $projectId, name: $name}}) {{{MAL_FIELDS}}} }}"
        );
        let data = self
            .execute_on(
                Api::Main,
                &query,
                json!({ "projectId": project_id, "name": name }),
            )
            .await?;
        match data.get("modelAssistedLabelingPredictionImport") {
            None | Some(Value::Null) => Ok(None),
            Some(import) => serde_json::from_value(import.clone())
                .map(Some)
                .map_err(|e| LabelboxError::Protocol(format!("MAL import: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ndjson_line_per_box_naming_row_tool_and_box() {
        let boxes = [
            BoxPrelabel {
                uuid: Uuid::nil(),
                tool_name: "cat".into(),
                bbox: LabelboxBox {
                    top: 20.0,
                    left: 10.0,
                    height: 30.0,
                    width: 40.0,
                },
                confidence: 0.9,
            },
            BoxPrelabel {
                uuid: Uuid::max(),
                tool_name: "dog".into(),
                bbox: LabelboxBox {
                    top: 1.0,
                    left: 2.0,
                    height: 3.0,
                    width: 4.0,
                },
                confidence: 0.5,
            },
        ];
        let ndjson = prelabels_ndjson("capture-1", &boxes);
        let lines: Vec<Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            json!({
                "uuid": "00000000-0000-0000-0000-000000000000",
                "dataRow": {"globalKey": "capture-1"},
                "name": "cat",
                "bbox": {"top": 20.0, "left": 10.0, "height": 30.0, "width": 40.0},
                "confidence": 0.9,
            })
        );
        assert_eq!(lines[1]["name"], "dog");
        assert!(ndjson.ends_with('\n'));
    }
}

//! Reading labels back: a streamable export of a project's data rows (the
//! SDK's `Project.export(filters={"global_keys": [...]}, params={"label_details":
//! True})`), for a webhook event that names a label without carrying it.
//!
//! Export v2 is asynchronous: `exportDataRowsInProject` starts a task, the task
//! is polled until done, `exportMetadataHeader` says how many bytes the result
//! has, and `exportFileFromOffset` hands out signed URLs of consecutive chunks
//! of an NDJSON file, one data row a line.

use chrono::{DateTime, Utc};
use modelobs_core::boxes::LabelboxBox;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Api, LabelboxClient};
use crate::data_rows::TaskState;
use crate::error::LabelboxError;

/// One label as an export row holds it: its boxes, and when it last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedLabel {
    pub label_id: String,
    /// `label_details.updated_at` (else `created_at`), as Labelbox wrote it.
    pub updated_at: Option<String>,
    /// The bounding boxes; other kinds of objects are left out.
    pub objects: Vec<ExportedBox>,
    /// How many objects were of other kinds (polygons, points, masks, ...).
    pub other_objects: usize,
}

impl ExportedLabel {
    /// `updated_at` as a time; `None` when absent or unreadable.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportedBox {
    /// The ontology tool's name (`name`, else `value`).
    pub name: String,
    pub bbox: LabelboxBox,
}

/// Which data rows an export reads.
#[derive(Debug, Clone, Copy)]
pub enum RowKeys<'a> {
    GlobalKeys(&'a [String]),
    DataRowIds(&'a [String]),
}

/// One data row, by global key or by Labelbox id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKey<'a> {
    GlobalKey(&'a str),
    DataRowId(&'a str),
}

/// A data row found by [`LabelboxClient::export_row_label`] and one label of it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLabel {
    /// `data_row.global_key`, when the row has one.
    pub global_key: Option<String>,
    /// `None` when the row has no such label (deleted, or never there).
    pub label: Option<ExportedLabel>,
}

/// One line of a project export (export v2, NDJSON): a data row and its
/// labels, per project. The shape is the SDK's documented one
/// (https://docs.labelbox.com/reference/export-quick-reference).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedRow {
    /// `data_row.id`
    pub data_row_id: String,
    /// `data_row.global_key`: our capture id, for rows the sampler made.
    pub global_key: Option<String>,
    pub external_id: Option<String>,
    /// `data_row.row_data`: usually the image's URL.
    pub row_data: Option<String>,
    /// `media_attributes.width` / `height`.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `(project id, label)` for every label of every project in the row.
    pub labels: Vec<(String, ExportedLabel)>,
}

impl ExportedRow {
    /// The newest label (by `updated_at`; unreadable times count as oldest),
    /// of `project_id` when given, else of any project.
    pub fn newest_label(&self, project_id: Option<&str>) -> Option<(&str, &ExportedLabel)> {
        self.labels
            .iter()
            .filter(|(p, _)| project_id.is_none_or(|want| p == want))
            .max_by_key(|(_, l)| l.updated_at())
            .map(|(p, l)| (p.as_str(), l))
    }
}

/// A UInt64 the API may send as a number or as a string.
fn uint(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
struct ExportObject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    bounding_box: Option<LabelboxBox>,
}

/// The non-empty lines of an NDJSON document as JSON values, numbered from 1.
pub fn ndjson_values(text: &str) -> impl Iterator<Item = (usize, Result<Value, LabelboxError>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                i + 1,
                serde_json::from_str(l)
                    .map_err(|e| LabelboxError::Protocol(format!("export row is not JSON: {e}"))),
            )
        })
}

/// One label of an export row (`projects.<id>.labels[]`).
pub fn parse_label(label: &Value) -> Result<ExportedLabel, LabelboxError> {
    let label_id = label
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| LabelboxError::Protocol("a label without id".into()))?
        .to_string();
    let objects: Vec<ExportObject> = match label.pointer("/annotations/objects") {
        None | Some(Value::Null) => Vec::new(),
        Some(list) => serde_json::from_value(list.clone()).map_err(|e| {
            LabelboxError::Protocol(format!("label {label_id}: annotations.objects: {e}"))
        })?,
    };
    let total = objects.len();
    let objects: Vec<ExportedBox> = objects
        .into_iter()
        .filter_map(|o| {
            Some(ExportedBox {
                name: o.name.or(o.value)?,
                bbox: o.bounding_box?,
            })
        })
        .collect();
    let details = label.get("label_details");
    let updated_at = details
        .and_then(|d| d.get("updated_at").or(d.get("created_at")))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(ExportedLabel {
        label_id,
        updated_at,
        other_objects: total - objects.len(),
        objects,
    })
}

/// One export row: its data row, media attributes and every project's labels.
pub fn parse_row(row: &Value) -> Result<ExportedRow, LabelboxError> {
    let text = |pointer: &str| {
        row.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let data_row_id = text("/data_row/id")
        .ok_or_else(|| LabelboxError::Protocol("export row without data_row.id".into()))?;
    let size = |pointer: &str| {
        row.pointer(pointer)
            .and_then(uint)
            .and_then(|v| u32::try_from(v).ok())
    };
    let mut labels = Vec::new();
    if let Some(projects) = row.get("projects").and_then(Value::as_object) {
        for (project_id, project) in projects {
            for label in project
                .get("labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let label = parse_label(label)
                    .map_err(|e| LabelboxError::Protocol(format!("data row {data_row_id}: {e}")))?;
                labels.push((project_id.clone(), label));
            }
        }
    }
    Ok(ExportedRow {
        global_key: text("/data_row/global_key"),
        external_id: text("/data_row/external_id"),
        row_data: text("/data_row/row_data"),
        width: size("/media_attributes/width"),
        height: size("/media_attributes/height"),
        data_row_id,
        labels,
    })
}

impl LabelboxClient {
    /// The export rows (one JSON object per data row) of `project_id`'s data
    /// rows with these global keys, labels with their details included.
    pub async fn export_rows(
        &self,
        project_id: &str,
        global_keys: &[String],
        task_name: &str,
    ) -> Result<Vec<Value>, LabelboxError> {
        self.export_rows_where(project_id, RowKeys::GlobalKeys(global_keys), task_name)
            .await
    }

    /// [`export_rows`](Self::export_rows) by global keys or by data row ids
    /// (the SDK's `build_filters`: `{"ids", "operator": "is", "type":
    /// "global_key" | "data_row_id"}`, schema/export_filters.py).
    pub async fn export_rows_where(
        &self,
        project_id: &str,
        keys: RowKeys<'_>,
        task_name: &str,
    ) -> Result<Vec<Value>, LabelboxError> {
        let (ids, kind) = match keys {
            RowKeys::GlobalKeys(ids) => (ids, "global_key"),
            RowKeys::DataRowIds(ids) => (ids, "data_row_id"),
        };
        const START: &str = "mutation exportDataRowsInProjectPyApi($input: ExportDataRowsInProjectInput!) {\
            exportDataRowsInProject(input: $input) { taskId isStreamable } }";
        let input = json!({
            "taskName": task_name,
            "isStreamableReady": true,
            "filters": {
                "projectId": project_id,
                "searchQuery": {
                    "scope": Value::Null,
                    "query": [{ "ids": ids, "operator": "is", "type": kind }],
                },
            },
            "params": {
                "mediaTypeOverride": Value::Null,
                "includeAttachments": false,
                "includeEmbeddings": false,
                "includeMetadata": false,
                "includeDataRowDetails": true,
                "includeProjectDetails": false,
                "includePerformanceDetails": false,
                "includeLabelDetails": true,
                "includeInterpolatedFrames": false,
            },
            "streamable": true,
        });
        let data = self
            .execute_on(Api::Main, START, json!({ "input": input }))
            .await?;
        let task_id = data
            .pointer("/exportDataRowsInProject/taskId")
            .and_then(Value::as_str)
            .ok_or_else(|| LabelboxError::Protocol("exportDataRowsInProject: no taskId".into()))?
            .to_string();
        let task = self
            .wait_for_task(TaskState {
                id: task_id,
                status: "IN_PROGRESS".into(),
            })
            .await?;
        if task.status != "COMPLETE" {
            return Err(LabelboxError::Task {
                task: task.id,
                detail: format!("export ended {}", task.status),
                timed_out: false,
            });
        }
        let content = self.export_result(&task.id).await?;
        ndjson_values(&String::from_utf8_lossy(&content))
            .map(|(_, row)| row)
            .collect()
    }

    /// The whole RESULT stream of a finished export task, chunk by chunk, read
    /// as the SDK's `_BufferedGCSFileReader.read` and
    /// `_BufferedFileRetrieverByOffset.get_next_chunk` read it (schema/
    /// export_task.py): every chunk is appended whole and the next one asked
    /// for at `offsets.end + 1`. The SDK stopped placing chunks by their
    /// `offsets.start` ("there is something wrong with the way the offsets are
    /// being calculated ... do not rely on offsets for file location"), so a
    /// chunk is not refused for starting elsewhere than asked; it still must
    /// have `end - start + 1` bytes, as the SDK asserts, and must end past
    /// the offset asked for, or the reading would never end.
    async fn export_result(&self, task_id: &str) -> Result<Vec<u8>, LabelboxError> {
        const HEADER: &str = "query GetExportMetadataHeaderPyApi($where: WhereUniqueIdInput, $streamType: TaskStreamType!) {\
            task(where: $where) { exportMetadataHeader(streamType: $streamType) { totalSize totalLines } } }";
        const CHUNK: &str = "query GetExportFileFromOffsetPyApi($where: WhereUniqueIdInput, $streamType: TaskStreamType!, $offset: UInt64!) {\
            task(where: $where) { exportFileFromOffset(streamType: $streamType, offset: $offset) {\
            offsets { start end } lines { start end } file } } }";
        let data = self
            .execute_on(
                Api::Main,
                HEADER,
                json!({ "where": { "id": task_id }, "streamType": "RESULT" }),
            )
            .await?;
        // No header, or one of no bytes or no lines: nothing matched the
        // filters (the SDK's `has_result` and its stream's `total_size is None`).
        let header = match data.pointer("/task/exportMetadataHeader") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(header) => header,
        };
        let (Some(total), Some(lines)) = (
            header.get("totalSize").and_then(uint),
            header.get("totalLines").and_then(uint),
        ) else {
            return Err(LabelboxError::Protocol(format!(
                "export {task_id}: an unreadable metadata header: {header}"
            )));
        };
        if total == 0 || lines == 0 {
            return Ok(Vec::new());
        }
        let mut content = Vec::new();
        let mut offset = 0u64;
        while offset < total {
            let data = self
                .execute_on(
                    Api::Main,
                    CHUNK,
                    json!({
                        "where": { "id": task_id },
                        "streamType": "RESULT",
                        // UInt64 travels as a string, as the SDK sends it.
                        "offset": offset.to_string(),
                    }),
                )
                .await?;
            let chunk = data
                .pointer("/task/exportFileFromOffset")
                .filter(|c| !c.is_null())
                .ok_or_else(|| {
                    LabelboxError::Protocol(format!("export {task_id}: no file at offset {offset}"))
                })?;
            let (Some(start), Some(end), Some(url)) = (
                chunk.pointer("/offsets/start").and_then(uint),
                chunk.pointer("/offsets/end").and_then(uint),
                chunk.get("file").and_then(Value::as_str),
            ) else {
                return Err(LabelboxError::Protocol(format!(
                    "export {task_id}: a chunk without offsets or file: {chunk}"
                )));
            };
            if end < start || end < offset {
                return Err(LabelboxError::Protocol(format!(
                    "export {task_id}: asked for offset {offset}, got a chunk {start}..={end} that does not reach it"
                )));
            }
            let bytes = self.download(url).await?;
            if bytes.len() as u64 != end - start + 1 {
                return Err(LabelboxError::Protocol(format!(
                    "export {task_id}: chunk {start}..={end} has {} bytes",
                    bytes.len()
                )));
            }
            content.extend_from_slice(&bytes);
            offset = end + 1;
        }
        if content.len() as u64 != total {
            // The SDK does not check this either; said, not refused.
            tracing::warn!(
                task = task_id,
                total,
                read = content.len(),
                "export chunks do not add up to the header's totalSize"
            );
        }
        Ok(content)
    }

    /// The label `label_id` on the data row `global_key` in `project_id`;
    /// `None` when the row or the label is not (or no longer) there.
    pub async fn export_label(
        &self,
        project_id: &str,
        global_key: &str,
        label_id: &str,
    ) -> Result<Option<ExportedLabel>, LabelboxError> {
        Ok(self
            .export_row_label(project_id, RowKey::GlobalKey(global_key), Some(label_id))
            .await?
            .and_then(|row| row.label))
    }

    /// The data row `key` names in `project_id` (its global key) and, when
    /// asked for, its label `label_id`; `None` when the project has no such
    /// row. A webhook payload that names its row only by id is completed
    /// from this.
    pub async fn export_row_label(
        &self,
        project_id: &str,
        key: RowKey<'_>,
        label_id: Option<&str>,
    ) -> Result<Option<RowLabel>, LabelboxError> {
        let (RowKey::GlobalKey(wanted) | RowKey::DataRowId(wanted)) = key;
        let one = [wanted.to_string()];
        let (keys, pointer) = match key {
            RowKey::GlobalKey(_) => (RowKeys::GlobalKeys(&one), "/data_row/global_key"),
            RowKey::DataRowId(_) => (RowKeys::DataRowIds(&one), "/data_row/id"),
        };
        let task_name = match label_id {
            Some(label_id) => format!("modelobs-label-{label_id}"),
            None => format!("modelobs-row-{wanted}"),
        };
        let rows = self.export_rows_where(project_id, keys, &task_name).await?;
        let Some(row) = rows.iter().find(|row| {
            row.pointer(pointer)
                .and_then(Value::as_str)
                .is_none_or(|k| k == wanted)
        }) else {
            return Ok(None);
        };
        let label = row
            .pointer(&format!("/projects/{project_id}/labels"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|l| label_id.is_some() && l.get("id").and_then(Value::as_str) == label_id)
            .map(parse_label)
            .transpose()?;
        Ok(Some(RowLabel {
            global_key: row
                .pointer("/data_row/global_key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_string),
            label,
        }))
    }
}

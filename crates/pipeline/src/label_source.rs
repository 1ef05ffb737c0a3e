//! Where a label comes from when its event does not carry it: `trait
//! LabelFetcher`, Labelbox's export behind it, and an in-memory one for tests.
//! What comes back takes the same path as a label read from the payload.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use modelobs_labelbox::{LabelboxClient, LabelboxError, RowKey};
use thiserror::Error;

use modelobs_labelbox::webhook::payload::LabelledObject;

/// The label an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRef {
    /// `project.id` from the payload, when it had one.
    pub project_id: Option<String>,
    /// The data row: its global key (our capture id) when the payload gave
    /// it, else its id at the source.
    pub row: RowRef,
    pub label_id: String,
}

/// How an event names its data row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowRef {
    GlobalKey(String),
    DataRowId(String),
}

impl RowRef {
    fn as_key(&self) -> RowKey<'_> {
        match self {
            Self::GlobalKey(k) => RowKey::GlobalKey(k),
            Self::DataRowId(id) => RowKey::DataRowId(id),
        }
    }
}

/// A label read from its source.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedLabel {
    pub objects: Vec<LabelledObject>,
    /// When the source says the label last changed, if it says.
    pub updated_at: Option<DateTime<Utc>>,
    /// The global key of the label's data row, when the source says.
    pub global_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FetchError {
    /// Worth retrying: throttled, 5xx, no connection, an export still running.
    #[error("label source unavailable: {0}")]
    Unavailable(String),
    /// The source refused (bad API key, a query it rejects, an answer we cannot read).
    #[error("label source refused: {0}")]
    Refused(String),
    /// Neither the payload (`project.id`) nor the configuration names a project.
    #[error("the payload names no project (project.id) and LABELBOX_PROJECT_ID is not set")]
    NoProject,
    #[error(
        "the payload carries no label JSON (field label), and fetching labels from Labelbox is not configured"
    )]
    NotConfigured,
}

/// Reads one label by id.
pub trait LabelFetcher: Send + Sync {
    /// `Ok(None)`: the source has no such label (deleted since, or never there).
    fn fetch(
        &self,
        label: &LabelRef,
    ) -> impl Future<Output = Result<Option<FetchedLabel>, FetchError>> + Send;

    /// The global key of the data row `data_row_id` (for a payload that
    /// names its row only by id and carries what it needs otherwise, e.g. a
    /// deletion); `Ok(None)`: no such row, or a row without a global key.
    fn global_key_of(
        &self,
        project_id: Option<&str>,
        data_row_id: &str,
    ) -> impl Future<Output = Result<Option<String>, FetchError>> + Send;
}

/// `None`: fetching is not configured (LABEL_SOURCE other than `labelbox`).
impl<F: LabelFetcher> LabelFetcher for Option<F> {
    async fn fetch(&self, label: &LabelRef) -> Result<Option<FetchedLabel>, FetchError> {
        match self {
            Some(f) => f.fetch(label).await,
            None => Err(FetchError::NotConfigured),
        }
    }

    async fn global_key_of(
        &self,
        project_id: Option<&str>,
        data_row_id: &str,
    ) -> Result<Option<String>, FetchError> {
        match self {
            Some(f) => f.global_key_of(project_id, data_row_id).await,
            None => Err(FetchError::NotConfigured),
        }
    }
}

/// Labels from Labelbox's export (`LabelboxClient::export_label`).
#[derive(Debug, Clone)]
pub struct LabelboxFetcher {
    pub client: LabelboxClient,
    /// For payloads without `project.id`.
    pub default_project_id: Option<String>,
}

impl LabelboxFetcher {
    fn project<'a>(&'a self, from_payload: Option<&'a str>) -> Result<&'a str, FetchError> {
        from_payload
            .or(self.default_project_id.as_deref())
            .ok_or(FetchError::NoProject)
    }
}

fn fetch_error(e: LabelboxError) -> FetchError {
    if e.is_transient() {
        FetchError::Unavailable(e.to_string())
    } else {
        FetchError::Refused(e.to_string())
    }
}

impl LabelFetcher for LabelboxFetcher {
    async fn fetch(&self, label: &LabelRef) -> Result<Option<FetchedLabel>, FetchError> {
        let project_id = self.project(label.project_id.as_deref())?;
        let Some(row) = self
            .client
            .export_row_label(project_id, label.row.as_key(), Some(&label.label_id))
            .await
            .map_err(fetch_error)?
        else {
            return Ok(None);
        };
        let global_key = row.global_key;
        Ok(row.label.map(|l| FetchedLabel {
            objects: l.objects.into_iter().map(LabelledObject::from).collect(),
            updated_at: l.updated_at.as_deref().and_then(|t| {
                DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .inspect_err(|e| {
                        tracing::warn!(label_id = %label.label_id, updated_at = t, error = %e,
                            "unreadable label_details.updated_at; using the event's time");
                    })
                    .ok()
            }),
            global_key,
        }))
    }

    async fn global_key_of(
        &self,
        project_id: Option<&str>,
        data_row_id: &str,
    ) -> Result<Option<String>, FetchError> {
        let project_id = self.project(project_id)?;
        let row = self
            .client
            .export_row_label(project_id, RowKey::DataRowId(data_row_id), None)
            .await
            .map_err(fetch_error)?;
        Ok(row.and_then(|r| r.global_key))
    }
}

/// Labels in memory, by label id, and data rows by id; records every
/// request and can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryFetcher {
    labels: Mutex<HashMap<String, FetchedLabel>>,
    rows: Mutex<HashMap<String, String>>,
    failures: Mutex<VecDeque<FetchError>>,
    requests: Mutex<Vec<LabelRef>>,
}

impl MemoryFetcher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, label_id: &str, label: FetchedLabel) {
        self.labels
            .lock()
            .expect("labels")
            .insert(label_id.to_string(), label);
    }

    /// The data row `data_row_id` has the global key `global_key`.
    pub fn insert_row(&self, data_row_id: &str, global_key: &str) {
        self.rows
            .lock()
            .expect("rows")
            .insert(data_row_id.to_string(), global_key.to_string());
    }

    /// The next fetch fails with `error`.
    pub fn fail_next(&self, error: FetchError) {
        self.failures.lock().expect("failures").push_back(error);
    }

    pub fn requests(&self) -> Vec<LabelRef> {
        self.requests.lock().expect("requests").clone()
    }

    fn next_failure(&self) -> Result<(), FetchError> {
        match self.failures.lock().expect("failures").pop_front() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl LabelFetcher for MemoryFetcher {
    async fn fetch(&self, label: &LabelRef) -> Result<Option<FetchedLabel>, FetchError> {
        self.requests.lock().expect("requests").push(label.clone());
        self.next_failure()?;
        Ok(self
            .labels
            .lock()
            .expect("labels")
            .get(&label.label_id)
            .cloned())
    }

    async fn global_key_of(
        &self,
        _project_id: Option<&str>,
        data_row_id: &str,
    ) -> Result<Option<String>, FetchError> {
        self.next_failure()?;
        Ok(self.rows.lock().expect("rows").get(data_row_id).cloned())
    }
}

//! Where a label comes from when its event does not carry it: `trait
//! LabelFetcher`, Labelbox's export behind it, and an in-memory one for tests.
//! What comes back takes the same path as a label read from the payload.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use modelobs_labelbox::{LabelboxClient, LabelboxError};
use thiserror::Error;

use modelobs_labelbox::webhook::payload::LabelledObject;

/// The label an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRef {
    /// `project.id` from the payload, when it had one.
    pub project_id: Option<String>,
    /// The data row's global key: our capture id.
    pub global_key: String,
    pub label_id: String,
}

/// A label read from its source.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedLabel {
    pub objects: Vec<LabelledObject>,
    /// When the source says the label last changed, if it says.
    pub updated_at: Option<DateTime<Utc>>,
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
}

/// `None`: fetching is not configured (LABEL_SOURCE other than `labelbox`).
impl<F: LabelFetcher> LabelFetcher for Option<F> {
    async fn fetch(&self, label: &LabelRef) -> Result<Option<FetchedLabel>, FetchError> {
        match self {
            Some(f) => f.fetch(label).await,
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

impl LabelFetcher for LabelboxFetcher {
    async fn fetch(&self, label: &LabelRef) -> Result<Option<FetchedLabel>, FetchError> {
        let project_id = label
            .project_id
            .as_deref()
            .or(self.default_project_id.as_deref())
            .ok_or(FetchError::NoProject)?;
        let exported = self
            .client
            .export_label(project_id, &label.global_key, &label.label_id)
            .await
            .map_err(|e: LabelboxError| {
                if e.is_transient() {
                    FetchError::Unavailable(e.to_string())
                } else {
                    FetchError::Refused(e.to_string())
                }
            })?;
        Ok(exported.map(|l| FetchedLabel {
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
        }))
    }
}

/// Labels in memory, by label id; records every request and can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryFetcher {
    labels: Mutex<HashMap<String, FetchedLabel>>,
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

    /// The next fetch fails with `error`.
    pub fn fail_next(&self, error: FetchError) {
        self.failures.lock().expect("failures").push_back(error);
    }

    pub fn requests(&self) -> Vec<LabelRef> {
        self.requests.lock().expect("requests").clone()
    }
}

impl LabelFetcher for MemoryFetcher {
    async fn fetch(&self, label: &LabelRef) -> Result<Option<FetchedLabel>, FetchError> {
        self.requests.lock().expect("requests").push(label.clone());
        if let Some(error) = self.failures.lock().expect("failures").pop_front() {
            return Err(error);
        }
        Ok(self
            .labels
            .lock()
            .expect("labels")
            .get(&label.label_id)
            .cloned())
    }
}

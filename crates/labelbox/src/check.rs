//! `modelobs labelbox check`: the smallest live check of a connected
//! project, for the first time a user points the system at a real Labelbox
//! (docs/labelbox.md). Each step runs one operation the sampler and the
//! webhook depend on, in the order they use it, and the check stops at the
//! first that fails:
//!
//! 1. one data row (the upsert manifest and task polling),
//! 2. a batch of it in the project (`createBatchV2`),
//! 3. one pre-label (a MAL import, polled until Labelbox has run it),
//! 4. an export of the row (the export task and its stream),
//! 5. with a webhook URL, one signed delivery of a topic the webhook ignores
//!    (it must answer 2xx and write nothing), and the same body unsigned (it
//!    must answer 401): the URL is reachable and holds the same secret.
//!
//! It leaves the row and its batch, named `modelobs-check-<stamp>`, in the
//! project: Labelbox's SDK deletes data rows through a mutation this client
//! does not send, so the report names them for deleting in the UI.

use std::time::{Duration, Instant};

use modelobs_core::boxes::LabelboxBox;
use serde_json::{Value, json};

use crate::client::LabelboxClient;
use crate::data_rows::NewDataRow;
use crate::error::LabelboxError;
use crate::labeling::{BatchOutcome, BatchSpec, BoxPrelabel, ImportOutcome, prelabels_ndjson};
use crate::webhook::signature;

/// What to check against.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub project_id: String,
    pub dataset_id: String,
    /// A URL Labelbox can read (with delegated access: an object of the
    /// data bucket by its plain `https://` URL).
    pub image_url: String,
    /// One tool of the project's ontology, for the pre-label.
    pub tool_name: String,
    /// Names the row, the batch and the import: `modelobs-check-<stamp>`.
    pub stamp: String,
    pub webhook: Option<WebhookCheck>,
    /// How long to wait for the MAL import to run.
    pub import_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WebhookCheck {
    pub url: String,
    pub secret: String,
}

/// One step: what it did and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: &'static str,
    pub detail: String,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{step}: {source}")]
    Labelbox {
        step: &'static str,
        #[source]
        source: LabelboxError,
    },
    #[error("{step}: {why}")]
    Failed { step: &'static str, why: String },
}

/// Every step that passed, in order; the first failure ends the check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CheckReport {
    pub steps: Vec<Step>,
}

impl LabelboxClient {
    /// Runs the check (module doc). `Err` names the step that failed; the
    /// steps before it are in `passed`.
    pub async fn check(
        &self,
        spec: &CheckSpec,
        passed: &mut CheckReport,
    ) -> Result<(), CheckError> {
        let name = format!("modelobs-check-{}", spec.stamp);
        let lb = |step| move |source| CheckError::Labelbox { step, source };

        let started = Instant::now();
        let row = self
            .create_data_row(
                &spec.dataset_id,
                &NewDataRow {
                    row_data: spec.image_url.clone(),
                    global_key: name.clone(),
                    external_id: Some(name.clone()),
                },
            )
            .await
            .map_err(lb("data row"))?;
        passed.record(
            "data row",
            format!("{} (global key {name})", row.id),
            started,
        );

        let started = Instant::now();
        let batch = BatchSpec {
            name: name.clone(),
            global_keys: vec![name.clone()],
            priority: 5,
        };
        let detail = match self
            .create_batch(&spec.project_id, &batch)
            .await
            .map_err(lb("batch"))?
        {
            BatchOutcome::Created { batch_id, .. } => format!("batch {batch_id}"),
            other => format!("{other:?}"),
        };
        passed.record("batch", detail, started);

        let started = Instant::now();
        let prelabel = BoxPrelabel {
            uuid: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()),
            tool_name: spec.tool_name.clone(),
            bbox: LabelboxBox {
                top: 1.0,
                left: 1.0,
                height: 8.0,
                width: 8.0,
            },
            confidence: 0.5,
        };
        let ndjson = prelabels_ndjson(&name, &[prelabel]);
        if let ImportOutcome::Started(import) = self
            .import_prelabels(&spec.project_id, &name, &ndjson)
            .await
            .map_err(lb("pre-label import"))?
        {
            tracing::info!(import = %import.id, "MAL import started");
        }
        let state = self
            .wait_for_import(&spec.project_id, &name, spec.import_timeout)
            .await?;
        passed.record(
            "pre-label import",
            format!("import {name}: {state}"),
            started,
        );

        let started = Instant::now();
        let rows = self
            .export_rows(&spec.project_id, std::slice::from_ref(&name), &name)
            .await
            .map_err(lb("export"))?;
        let found = rows.iter().any(|r| {
            r.pointer("/data_row/global_key").and_then(Value::as_str) == Some(name.as_str())
        });
        if !found {
            return Err(CheckError::Failed {
                step: "export",
                why: format!(
                    "the export of project {} has no row with global key {name} ({} rows)",
                    spec.project_id,
                    rows.len()
                ),
            });
        }
        passed.record("export", format!("row {name} read back"), started);

        if let Some(webhook) = &spec.webhook {
            let started = Instant::now();
            let detail = check_webhook(webhook, &name).await?;
            passed.record("webhook", detail, started);
        }
        Ok(())
    }

    async fn wait_for_import(
        &self,
        project_id: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<String, CheckError> {
        let step = "pre-label import";
        let started = Instant::now();
        loop {
            let import = self
                .prelabel_import(project_id, name)
                .await
                .map_err(|source| CheckError::Labelbox { step, source })?
                .ok_or_else(|| CheckError::Failed {
                    step,
                    why: format!("Labelbox has no import named {name}"),
                })?;
            match import.state.as_str() {
                "FINISHED" => return Ok(import.state),
                "FAILED" => {
                    return Err(CheckError::Failed {
                        step,
                        why: format!(
                            "import {name} FAILED; its errors: {}",
                            import
                                .error_file_url
                                .as_deref()
                                .unwrap_or("(no error file)")
                        ),
                    });
                }
                _ if started.elapsed() >= timeout => {
                    return Err(CheckError::Failed {
                        step,
                        why: format!("import {name} still {} after {timeout:?}", import.state),
                    });
                }
                _ => tokio::time::sleep(self.polling().interval).await,
            }
        }
    }
}

impl CheckReport {
    fn record(&mut self, name: &'static str, detail: String, started: Instant) {
        self.steps.push(Step {
            name,
            detail,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
}

/// A signed delivery of a topic the webhook does not handle, then the same
/// body unsigned: 2xx then 401 means the URL is ours and the secrets agree.
async fn check_webhook(webhook: &WebhookCheck, name: &str) -> Result<String, CheckError> {
    let step = "webhook";
    let failed = |why: String| CheckError::Failed { step, why };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let body = json!({"event": "WORKFLOW_ACTION", "id": name,
        "dataRow": {"globalKey": name}, "modelobsCheck": true})
    .to_string();
    let (sha1, sha256) = signature::sign(webhook.secret.as_bytes(), body.as_bytes());
    let post = |signed: bool| {
        let mut request = http
            .post(&webhook.url)
            .header("content-type", "application/json")
            .header("x-labelbox-event", "WORKFLOW_ACTION")
            .header("x-labelbox-id", name)
            .body(body.clone());
        if signed {
            request = request
                .header("x-hub-signature", &sha1)
                .header("x-hub-signature-256", &sha256);
        }
        request.send()
    };
    let signed = post(true)
        .await
        .map_err(|e| failed(format!("cannot reach {}: {e}", webhook.url)))?;
    let signed_status = signed.status();
    if !signed_status.is_success() {
        let answer = signed.text().await.unwrap_or_default();
        return Err(failed(format!(
            "a delivery signed with the secret got HTTP {signed_status}: {answer} \
             (401: the webhook holds another secret)"
        )));
    }
    let unsigned = post(false)
        .await
        .map_err(|e| failed(format!("cannot reach {}: {e}", webhook.url)))?;
    if unsigned.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(failed(format!(
            "an unsigned delivery got HTTP {}, not 401: is {} the webhook function?",
            unsigned.status(),
            webhook.url
        )));
    }
    Ok(format!(
        "signed delivery HTTP {signed_status}, unsigned HTTP 401"
    ))
}

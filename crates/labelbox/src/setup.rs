//! The one-off setup `modelobs labelbox setup` runs: a dataset, a project with
//! an ontology of one bounding-box tool per class, model-assisted labeling on,
//! and the label webhook. Everything is looked up by name (or URL) first, so a
//! second run finds what the first made and creates nothing.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Api, LabelboxClient};
use crate::data_rows::read_list;
use crate::error::LabelboxError;

/// Webhook topics for label events (the SDK's `Webhook.Topic`).
pub const LABEL_TOPICS: [&str; 3] = ["LABEL_CREATED", "LABEL_UPDATED", "LABEL_DELETED"];

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OntologyInfo {
    pub id: String,
    pub name: String,
    /// Names of its tools.
    pub tools: Vec<String>,
}

/// What a project is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectState {
    pub id: String,
    pub ontology_id: Option<String>,
    pub labeling_frontend_id: Option<String>,
    pub webhooks: Vec<Webhook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupSpec {
    pub project_name: String,
    pub dataset_name: String,
    pub ontology_name: String,
    /// One bounding-box tool each: the classes we pre-label.
    pub tool_names: Vec<String>,
    pub webhook: Option<WebhookSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    pub project_id: String,
    pub dataset_id: String,
    pub ontology_id: String,
    pub webhook_id: Option<String>,
    /// What this run created or connected; empty on a repeated run.
    pub changes: Vec<String>,
    /// Things a person should look at (an existing ontology missing a tool...).
    pub warnings: Vec<String>,
}

impl SetupReport {
    /// `Key=value` lines for `sam deploy --parameter-overrides`.
    pub fn parameter_overrides(&self) -> String {
        format!(
            "LabelboxProjectId={}\nLabelboxDatasetId={}\nLabelboxOntologyId={}\n",
            self.project_id, self.dataset_id, self.ontology_id
        )
    }
}

/// The ontology the SDK's `OntologyBuilder(tools=[Tool(tool=Tool.Type.BBOX,
/// name=...)]).asdict()` writes.
pub fn bbox_ontology(tool_names: &[String]) -> Value {
    let tools: Vec<Value> = tool_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({
                "tool": "rectangle",
                "name": name,
                "required": false,
                "color": PALETTE[i % PALETTE.len()],
                "classifications": [],
            })
        })
        .collect();
    json!({ "tools": tools, "classifications": [] })
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Every page of a `skip`/`first` collection the SDK reads with
/// `PaginatedCollection`; ours are small, one page of 100 is plenty.
const PAGE: usize = 100;

impl LabelboxClient {
    pub async fn datasets_named(&self, name: &str) -> Result<Vec<Named>, LabelboxError> {
        let query = format!(
            "query GetDatasetsPyApi($name: String!) {{\
             datasets(where: {{AND: [{{name: $name}}, {{deleted: false}}]}} skip: 0 first: {PAGE}) {{id name}} }}"
        );
        let data = self
            .execute_on(Api::Main, &query, json!({ "name": name }))
            .await?;
        read_list(&data, "/datasets")
    }

    pub async fn create_dataset(&self, name: &str) -> Result<Named, LabelboxError> {
        const QUERY: &str = "mutation CreateDatasetPyApi($name: String!) {\
            createDataset(data: {name: $name}) {id name} }";
        let data = self
            .execute_on(Api::Main, QUERY, json!({ "name": name }))
            .await?;
        read_one(&data, "/createDataset")
    }

    pub async fn projects_named(&self, name: &str) -> Result<Vec<Named>, LabelboxError> {
        let query = format!(
            "query GetProjectsPyApi($name: String!) {{\
             projects(where: {{AND: [{{name: $name}}, {{deleted: false}}]}} skip: 0 first: {PAGE}) {{id name}} }}"
        );
        let data = self
            .execute_on(Api::Main, &query, json!({ "name": name }))
            .await?;
        read_list(&data, "/projects")
    }

    /// An image project (`media_type=MediaType.Image`).
    pub async fn create_project(&self, name: &str) -> Result<Named, LabelboxError> {
        const QUERY: &str = "mutation CreateProjectPyApi($name: String!, $allowedMediaType: MediaType!) {\
            createProject(data: {name: $name allowedMediaType: $allowedMediaType}) {id name} }";
        let data = self
            .execute_on(
                Api::Main,
                QUERY,
                json!({ "name": name, "allowedMediaType": "IMAGE" }),
            )
            .await?;
        read_one(&data, "/createProject")
    }

    /// Ontologies whose name is exactly `name` (Labelbox searches by substring).
    pub async fn ontologies_named(&self, name: &str) -> Result<Vec<OntologyInfo>, LabelboxError> {
        const QUERY: &str = "query getOntologiesPyApi($search: String, $filter: OntologyFilter, $from : String, $first: PageSize) {\
            ontologies(where: {filter: $filter, search: $search}, after: $from, first: $first) {\
            nodes {id name normalized} nextCursor } }";
        let data = self
            .execute_on(
                Api::Main,
                QUERY,
                json!({
                    "search": name,
                    "filter": { "status": "ALL" },
                    "from": Value::Null,
                    "first": PAGE,
                }),
            )
            .await?;
        let nodes = data
            .pointer("/ontologies/nodes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(nodes
            .iter()
            .filter(|n| n["name"].as_str() == Some(name))
            .filter_map(ontology_info)
            .collect())
    }

    /// `upsertOntology` with the normalized JSON, as `Client.create_ontology`.
    pub async fn create_ontology(
        &self,
        name: &str,
        normalized: &Value,
    ) -> Result<OntologyInfo, LabelboxError> {
        const QUERY: &str = "mutation upsertRootSchemaNodePyApi($data: UpsertOntologyInput!) {\
            upsertOntology(data: $data) {id name normalized} }";
        let data = self
            .execute_on(
                Api::Main,
                QUERY,
                json!({ "data": {
                    "name": name,
                    "normalized": normalized.to_string(),
                    "mediaType": "IMAGE",
                }}),
            )
            .await?;
        data.get("upsertOntology")
            .and_then(ontology_info)
            .ok_or_else(|| LabelboxError::Protocol("upsertOntology: no ontology".into()))
    }

    /// The names of the bounding-box tools of the project's ontology.
    pub async fn project_tool_names(&self, project_id: &str) -> Result<Vec<String>, LabelboxError> {
        const QUERY: &str = "query GetProjectOntologyPyApi($projectId: ID!) {\
            project(where: {id: $projectId}) { ontology {id name normalized} } }";
        let data = self
            .execute_on(Api::Main, QUERY, json!({ "projectId": project_id }))
            .await?;
        Ok(data
            .pointer("/project/ontology")
            .and_then(ontology_info)
            .map(|o| o.tools)
            .unwrap_or_default())
    }

    pub async fn project_state(&self, project_id: &str) -> Result<ProjectState, LabelboxError> {
        let query = format!(
            "query GetProjectSetupPyApi($projectId: ID!) {{\
             project(where: {{id: $projectId}}) {{ id ontology {{id}} labelingFrontend {{id}}\
             webhooks(skip: 0 first: {PAGE}) {{id url topics status}} }} }}"
        );
        let data = self
            .execute_on(Api::Main, &query, json!({ "projectId": project_id }))
            .await?;
        let project = data
            .get("project")
            .filter(|p| !p.is_null())
            .ok_or_else(|| LabelboxError::Graphql {
                errors: vec![format!("project {project_id} not found")],
                codes: vec!["RESOURCE_NOT_FOUND".into()],
            })?;
        let id_of = |field: &str| {
            project
                .get(field)
                .and_then(|o| o.get("id"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(ProjectState {
            id: project_id.to_string(),
            ontology_id: id_of("ontology"),
            labeling_frontend_id: id_of("labelingFrontend"),
            webhooks: read_list(project, "/webhooks")?,
        })
    }

    /// What `Project.connect_ontology` does for a project without an editor:
    /// connect the "Editor" labeling frontend and give it empty options.
    pub async fn connect_default_editor(&self, project_id: &str) -> Result<(), LabelboxError> {
        let query = "query GetLabelingFrontendsPyApi($name: String!) {\
            labelingFrontends(where: {AND: [{name: $name}, {deleted: false}]} skip: 0 first: 10) {id name} }";
        let data = self
            .execute_on(Api::Main, query, json!({ "name": "Editor" }))
            .await?;
        let frontends: Vec<Named> = read_list(&data, "/labelingFrontends")?;
        let editor = frontends
            .into_iter()
            .next()
            .ok_or_else(|| LabelboxError::Protocol("no labeling frontend named Editor".into()))?;

        const CONNECT: &str = "mutation ConnectProjectAndLabelingFrontendPyApi($projectId: ID!, $labelingFrontendId: ID!) {\
            updateProject(where: {id: $projectId} data: {labelingFrontend: {connect: {id: $labelingFrontendId}}}) {id} }";
        self.execute_on(
            Api::Main,
            CONNECT,
            json!({ "projectId": project_id, "labelingFrontendId": editor.id }),
        )
        .await?;

        const OPTIONS: &str = "mutation CreateLabelingFrontendOptionsPyApi($project: ID!, $labelingFrontend: ID!, $customizationOptions: String!) {\
            createLabelingFrontendOptions(data: {project: {connect: {id: $project}} labelingFrontend: {connect: {id: $labelingFrontend}} customizationOptions: $customizationOptions}) {id} }";
        self.execute_on(
            Api::Main,
            OPTIONS,
            json!({
                "project": project_id,
                "labelingFrontend": editor.id,
                "customizationOptions": json!({ "tools": [], "classifications": [] }).to_string(),
            }),
        )
        .await?;
        Ok(())
    }

    pub async fn connect_ontology(
        &self,
        project_id: &str,
        ontology_id: &str,
    ) -> Result<(), LabelboxError> {
        const QUERY: &str = "mutation ConnectOntologyPyApi($projectId: ID!, $ontologyId: ID!) {\
            project(where: {id: $projectId}) {connectOntology(ontologyId: $ontologyId) {id}} }";
        self.execute_on(
            Api::Main,
            QUERY,
            json!({ "projectId": project_id, "ontologyId": ontology_id }),
        )
        .await?;
        Ok(())
    }

    /// Shows imported pre-labels to labelers (`enable_model_assisted_labeling`).
    pub async fn enable_model_assisted_labeling(
        &self,
        project_id: &str,
    ) -> Result<bool, LabelboxError> {
        const QUERY: &str = "mutation toggle_model_assisted_labelingPyApi($project_id: ID!, $show: Boolean!) {\
            project(where: {id: $project_id }) { showPredictionsToLabelers(show: $show) { id, showingPredictionsToLabelers } } }";
        let data = self
            .execute_on(
                Api::Main,
                QUERY,
                json!({ "project_id": project_id, "show": true }),
            )
            .await?;
        Ok(data
            .pointer("/project/showPredictionsToLabelers/showingPredictionsToLabelers")
            .and_then(Value::as_bool)
            .unwrap_or(false))
    }

    /// `createWebhook` for one project. The SDK writes the values into the
    /// query rather than variables; so do we, as JSON string literals (valid
    /// GraphQL strings, escaped).
    pub async fn create_webhook(
        &self,
        project_id: &str,
        topics: &[&str],
        url: &str,
        secret: &str,
    ) -> Result<Webhook, LabelboxError> {
        let literal = |s: &str| Value::from(s).to_string();
        let query = format!(
            "mutation CreateWebhookPyApi {{\
             createWebhook(data:{{project:{{id:{}}}, topics:{{set:[{}]}}, url:{}, secret:{} }}){{id url topics status}} }}",
            literal(project_id),
            topics.join(" "),
            literal(url),
            literal(secret),
        );
        let data = self.execute_on(Api::Main, &query, Value::Null).await?;
        read_one(&data, "/createWebhook")
    }

    /// Creates or finds the dataset, project, ontology and webhook; connects them.
    pub async fn setup(&self, spec: &SetupSpec) -> Result<SetupReport, LabelboxError> {
        let mut changes = Vec::new();
        let mut warnings = Vec::new();

        let dataset = match first_unique(
            self.datasets_named(&spec.dataset_name).await?,
            "dataset",
            &mut warnings,
        ) {
            Some(d) => d,
            None => {
                let d = self.create_dataset(&spec.dataset_name).await?;
                changes.push(format!("created dataset {} ({})", d.name, d.id));
                d
            }
        };
        let project = match first_unique(
            self.projects_named(&spec.project_name).await?,
            "project",
            &mut warnings,
        ) {
            Some(p) => p,
            None => {
                let p = self.create_project(&spec.project_name).await?;
                changes.push(format!("created project {} ({})", p.name, p.id));
                p
            }
        };
        let ontology = match self
            .ontologies_named(&spec.ontology_name)
            .await?
            .into_iter()
            .next()
        {
            Some(o) => {
                let missing: Vec<&String> = spec
                    .tool_names
                    .iter()
                    .filter(|t| !o.tools.contains(t))
                    .collect();
                if !missing.is_empty() {
                    warnings.push(format!(
                        "ontology {} has no tool for {missing:?}: those boxes will not be pre-labelled",
                        o.name
                    ));
                }
                o
            }
            None => {
                let o = self
                    .create_ontology(&spec.ontology_name, &bbox_ontology(&spec.tool_names))
                    .await?;
                changes.push(format!("created ontology {} ({})", o.name, o.id));
                o
            }
        };

        let state = self.project_state(&project.id).await?;
        if state.ontology_id.as_deref() != Some(ontology.id.as_str()) {
            if state.labeling_frontend_id.is_none() {
                self.connect_default_editor(&project.id).await?;
                changes.push("connected the Editor labeling frontend".into());
            }
            self.connect_ontology(&project.id, &ontology.id).await?;
            changes.push(format!("connected ontology {} to the project", ontology.id));
        }
        // Idempotent in itself: it sets a flag.
        self.enable_model_assisted_labeling(&project.id).await?;

        let webhook_id = match &spec.webhook {
            None => None,
            Some(webhook) => {
                let existing = state.webhooks.iter().find(|w| {
                    w.url == webhook.url && w.status.as_deref().is_none_or(|s| s == "ACTIVE")
                });
                match existing {
                    Some(w) => Some(w.id.clone()),
                    None => {
                        let w = self
                            .create_webhook(
                                &project.id,
                                &LABEL_TOPICS,
                                &webhook.url,
                                &webhook.secret,
                            )
                            .await?;
                        changes.push(format!("created webhook {} → {}", w.id, w.url));
                        Some(w.id)
                    }
                }
            }
        };

        Ok(SetupReport {
            project_id: project.id,
            dataset_id: dataset.id,
            ontology_id: ontology.id,
            webhook_id,
            changes,
            warnings,
        })
    }
}

/// Names are not unique in Labelbox: take the first and say so when there are more.
fn first_unique(found: Vec<Named>, what: &str, warnings: &mut Vec<String>) -> Option<Named> {
    if found.len() > 1 {
        warnings.push(format!(
            "{} {what}s are named {:?}; using {}",
            found.len(),
            found[0].name,
            found[0].id
        ));
    }
    found.into_iter().next()
}

fn read_one<T: serde::de::DeserializeOwned>(
    data: &Value,
    pointer: &str,
) -> Result<T, LabelboxError> {
    let value = data
        .pointer(pointer)
        .filter(|v| !v.is_null())
        .ok_or_else(|| LabelboxError::Protocol(format!("{pointer}: no answer")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| LabelboxError::Protocol(format!("{pointer}: {e}")))
}

/// `normalized` comes back as JSON, or as a string of JSON.
fn ontology_info(node: &Value) -> Option<OntologyInfo> {
    let normalized = match &node["normalized"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let tools = normalized["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some(OntologyInfo {
        id: node["id"].as_str()?.to_string(),
        name: node["name"].as_str().unwrap_or_default().to_string(),
        tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rectangle_tool_per_class() {
        let ontology = bbox_ontology(&["cat".into(), "dog".into()]);
        let tools = ontology["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 2);
        assert_eq!(tools[0]["tool"], "rectangle");
        assert_eq!(tools[1]["name"], "dog");
        assert_eq!(ontology["classifications"], json!([]));
    }
}

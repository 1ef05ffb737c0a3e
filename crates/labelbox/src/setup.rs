//! The one-off setup `modelobs labelbox setup` runs: a dataset (with delegated
//! image access through an IAM integration, or none), a project with an
//! ontology of one bounding-box tool per class, model-assisted labeling on,
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
    /// Names of its classifications.
    pub classifications: Vec<String>,
}

impl OntologyInfo {
    /// No tools and no classifications: what the SDK's `is_empty_ontology`
    /// counts as no ontology (schema/project.py), e.g. the empty one
    /// `createLabelingFrontendOptions` gives a project with its editor.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty() && self.classifications.is_empty()
    }
}

/// What a project is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectState {
    pub id: String,
    /// The connected ontology, empty or not.
    pub ontology: Option<OntologyInfo>,
    pub labeling_frontend_id: Option<String>,
    /// `setupComplete` (the SDK's `Project.setup_complete`): when the
    /// project was marked set up; `None` until it is.
    pub setup_complete: Option<String>,
    pub webhooks: Vec<Webhook>,
}

/// How Labelbox's editor gets at the images.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImageAccess {
    /// Delegated access through the organisation's default IAM integration,
    /// as `Client.create_dataset(iam_integration=IAMIntegration._DEFAULT)`:
    /// Labelbox assumes the integration's role to sign the image URLs.
    #[default]
    DelegatedDefault,
    /// Delegated access through the IAM integration of that name or id.
    Delegated(String),
    /// No signer (`iam_integration=None`): the row data are URLs Labelbox
    /// can fetch as they are (presigned S3 URLs).
    Presigned,
}

/// An IAM integration of the organisation (schema/iam_integration.py).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamIntegration {
    pub id: String,
    pub name: String,
    /// `AWS`, `GCP`...
    pub provider: Option<String>,
    /// Labelbox could assume it when it last checked.
    pub valid: bool,
    pub is_org_default: bool,
    /// AWS: the role Labelbox assumes (`AwsIamIntegrationSettings.roleArn`).
    pub role_arn: Option<String>,
}

/// `validateDataset`: whether Labelbox can sign the dataset's URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetValidation {
    pub valid: bool,
    /// `(name, success)` of each check.
    pub checks: Vec<(String, bool)>,
}

/// Where a person fixes the organisation's IAM integrations.
const INTEGRATIONS_SETTINGS: &str = "Labelbox: Workspace settings → Integrations";

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
    /// How Labelbox reads the dataset's images; the default is delegated
    /// access through the organisation's default IAM integration.
    pub image_access: ImageAccess,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    pub project_id: String,
    pub dataset_id: String,
    /// The project's ontology: ours, or the one it had (see `warnings`).
    pub ontology_id: String,
    pub webhook_id: Option<String>,
    /// The IAM integration signing the dataset's image URLs (delegated
    /// access); `None` with presigned URLs.
    pub signer: Option<IamIntegration>,
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
            .map(|o| o.tools.into_iter().filter(|t| !t.is_empty()).collect())
            .unwrap_or_default())
    }

    /// The project's ontology (with its tools, to tell an empty one), editor,
    /// `setupComplete` (`Project.setup_complete`, schema/project.py) and webhooks.
    pub async fn project_state(&self, project_id: &str) -> Result<ProjectState, LabelboxError> {
        let query = format!(
            "query GetProjectSetupPyApi($projectId: ID!) {{\
             project(where: {{id: $projectId}}) {{ id setupComplete ontology {{id name normalized}} labelingFrontend {{id}}\
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
            ontology: project.get("ontology").and_then(ontology_info),
            labeling_frontend_id: id_of("labelingFrontend"),
            setup_complete: project
                .get("setupComplete")
                .and_then(Value::as_str)
                .map(str::to_string),
            webhooks: read_list(project, "/webhooks")?,
        })
    }

    /// Marks the project set up, as `Project.connect_ontology` ends:
    /// `self.update(setup_complete=datetime.now(timezone.utc).strftime(
    /// "%Y-%m-%dT%H:%M:%SZ"))` (schema/project.py), which the ORM sends as
    /// orm/query.py `update_fields` writes it (`mutation update<Type>PyApi`,
    /// the fields as `$<graphqlName>: <Type>!`, then the id).
    pub async fn mark_setup_complete(&self, project_id: &str) -> Result<String, LabelboxError> {
        const QUERY: &str = "mutation updateProjectPyApi($setupComplete: DateTime!, $projectId: ID!){updateProject(\
            where: {id: $projectId} data: {setupComplete: $setupComplete}) {id setupComplete}} ";
        let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        self.execute_on(
            Api::Main,
            QUERY,
            json!({ "setupComplete": timestamp, "projectId": project_id }),
        )
        .await?;
        Ok(timestamp)
    }

    /// The organisation's IAM integrations, as `Organization.get_iam_integrations`
    /// asks for them (schema/organization.py; the fields of `Entity.IAMIntegration`,
    /// schema/iam_integration.py).
    pub async fn iam_integrations(&self) -> Result<Vec<IamIntegration>, LabelboxError> {
        const QUERY: &str = "query getAllIntegrationsPyApi { iamIntegrations {\
            id name createdAt updatedAt provider valid lastValidAt isOrgDefault\
            settings { __typename ... on AwsIamIntegrationSettings {roleArn}\
            ... on GcpIamIntegrationSettings {serviceAccountEmailId readBucket} } } }";
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Node {
            id: String,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            provider: Option<String>,
            #[serde(default)]
            valid: Option<bool>,
            #[serde(default)]
            is_org_default: Option<bool>,
            #[serde(default)]
            settings: Option<Value>,
        }
        let data = self.execute_on(Api::Main, QUERY, json!({})).await?;
        let nodes: Vec<Node> = read_list(&data, "/iamIntegrations")?;
        Ok(nodes
            .into_iter()
            .map(|n| IamIntegration {
                role_arn: n
                    .settings
                    .as_ref()
                    .and_then(|s| s.get("roleArn"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                id: n.id,
                name: n.name.unwrap_or_default(),
                provider: n.provider,
                valid: n.valid.unwrap_or(false),
                is_org_default: n.is_org_default.unwrap_or(false),
            })
            .collect())
    }

    /// The IAM integration signing a dataset's URLs: the dataset's
    /// `iam_integration` relationship, `signer` in GraphQL (schema/dataset.py),
    /// read as orm/query.py `relationship` names it (`Get<Type><Relationship>`).
    pub async fn dataset_signer(&self, dataset_id: &str) -> Result<Option<String>, LabelboxError> {
        const QUERY: &str = "query GetDatasetSignerPyApi($datasetId: ID!) {\
            dataset(where: {id: $datasetId}) { signer { id } } }";
        let data = self
            .execute_on(Api::Main, QUERY, json!({ "datasetId": dataset_id }))
            .await?;
        let dataset = data
            .get("dataset")
            .filter(|d| !d.is_null())
            .ok_or_else(|| LabelboxError::Graphql {
                errors: vec![format!("dataset {dataset_id} not found")],
                codes: vec!["RESOURCE_NOT_FOUND".into()],
            })?;
        Ok(dataset
            .pointer("/signer/id")
            .and_then(Value::as_str)
            .map(str::to_string))
    }

    /// Attaches an IAM integration to a dataset, as `Client.create_dataset` does.
    pub async fn set_dataset_signer(
        &self,
        dataset_id: &str,
        signer_id: &str,
    ) -> Result<(), LabelboxError> {
        const QUERY: &str = "mutation setSignerForDatasetPyApi($signerId: ID!, $datasetId: ID!) {\
            setSignerForDataset(data: { signerId: $signerId}, where: {id: $datasetId}){id}}";
        self.execute_on(
            Api::Main,
            QUERY,
            json!({ "signerId": signer_id, "datasetId": dataset_id }),
        )
        .await?;
        Ok(())
    }

    /// Whether Labelbox can sign the dataset's URLs now (`Client.create_dataset`
    /// checks it after attaching the integration).
    pub async fn validate_dataset(
        &self,
        dataset_id: &str,
    ) -> Result<DatasetValidation, LabelboxError> {
        const QUERY: &str = "mutation validateDatasetPyApi($id: ID!){validateDataset(where: {id : $id}){\
            valid checks{name, success}}}";
        let data = self
            .execute_on(Api::Main, QUERY, json!({ "id": dataset_id }))
            .await?;
        let result = data
            .get("validateDataset")
            .filter(|v| !v.is_null())
            .ok_or_else(|| LabelboxError::Protocol("validateDataset: no answer".into()))?;
        let valid = result
            .get("valid")
            .and_then(Value::as_bool)
            .ok_or_else(|| LabelboxError::Protocol("validateDataset: no valid".into()))?;
        let checks = result
            .get("checks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    c.get("success").and_then(Value::as_bool).unwrap_or(false),
                )
            })
            .collect();
        Ok(DatasetValidation { valid, checks })
    }

    /// The integration `access` names: the organisation's default, or the one
    /// with that id or name; refused when missing, ambiguous or not valid
    /// (`Organization.get_default_iam_integration`, `Client.create_dataset`).
    pub async fn choose_iam_integration(
        &self,
        access: &ImageAccess,
    ) -> Result<Option<IamIntegration>, LabelboxError> {
        let wanted = match access {
            ImageAccess::Presigned => return Ok(None),
            ImageAccess::DelegatedDefault => None,
            ImageAccess::Delegated(name_or_id) => Some(name_or_id.as_str()),
        };
        let integrations = self.iam_integrations().await?;
        let known = || {
            let names: Vec<String> = integrations
                .iter()
                .map(|i| format!("{} ({})", i.name, i.id))
                .collect();
            if names.is_empty() {
                "it has none".to_string()
            } else {
                format!("it has {}", names.join(", "))
            }
        };
        let chosen = match wanted {
            None => {
                let defaults: Vec<&IamIntegration> =
                    integrations.iter().filter(|i| i.is_org_default).collect();
                match defaults.as_slice() {
                    [one] => (*one).clone(),
                    [] => {
                        return Err(LabelboxError::Configuration(format!(
                            "the organisation has no default IAM integration for delegated image access \
                             ({}): add one and make it the default in {INTEGRATIONS_SETTINGS}, \
                             or name one, or use presigned image URLs",
                            known()
                        )));
                    }
                    more => {
                        // The SDK: "Found more than one default signer".
                        let ids: Vec<&str> = more.iter().map(|i| i.id.as_str()).collect();
                        return Err(LabelboxError::Configuration(format!(
                            "the organisation has more than one default IAM integration ({}): \
                             name the one to use",
                            ids.join(", ")
                        )));
                    }
                }
            }
            Some(wanted) => match integrations.iter().find(|i| i.id == wanted) {
                Some(i) => i.clone(),
                None => {
                    let named: Vec<&IamIntegration> =
                        integrations.iter().filter(|i| i.name == wanted).collect();
                    match named.as_slice() {
                        [one] => (*one).clone(),
                        [] => {
                            return Err(LabelboxError::Configuration(format!(
                                "no IAM integration is named or has the id {wanted:?} ({}): \
                                 see {INTEGRATIONS_SETTINGS}",
                                known()
                            )));
                        }
                        more => {
                            let ids: Vec<&str> = more.iter().map(|i| i.id.as_str()).collect();
                            return Err(LabelboxError::Configuration(format!(
                                "{} IAM integrations are named {wanted:?} ({}): name the one to use by id",
                                more.len(),
                                ids.join(", ")
                            )));
                        }
                    }
                }
            },
        };
        if !chosen.valid {
            // The SDK: "Integration is not valid. Please select another."
            return Err(LabelboxError::Configuration(format!(
                "the IAM integration {} ({}{}) is not valid: Labelbox cannot assume its role; \
                 check the role's trust policy and the integration in {INTEGRATIONS_SETTINGS}, \
                 or choose another",
                chosen.name,
                chosen.id,
                chosen
                    .role_arn
                    .as_deref()
                    .map(|arn| format!(", role {arn}"))
                    .unwrap_or_default(),
            )));
        }
        Ok(Some(chosen))
    }

    /// Attaches `signer` to the dataset unless it is attached already, then
    /// has Labelbox validate the dataset (`Client.create_dataset`, client.py).
    async fn attach_signer(
        &self,
        dataset: &Named,
        signer: &IamIntegration,
        changes: &mut Vec<String>,
    ) -> Result<(), LabelboxError> {
        let current = self.dataset_signer(&dataset.id).await?;
        if current.as_deref() != Some(signer.id.as_str()) {
            self.set_dataset_signer(&dataset.id, &signer.id).await?;
            changes.push(format!(
                "attached IAM integration {} ({}) to dataset {}{}",
                signer.name,
                signer.id,
                dataset.id,
                current
                    .map(|c| format!(" (it had {c})"))
                    .unwrap_or_default()
            ));
        }
        let validation = self.validate_dataset(&dataset.id).await?;
        if !validation.valid {
            let failed: Vec<&str> = validation
                .checks
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(name, _)| name.as_str())
                .collect();
            // The SDK: "IAMIntegration was not successfully added to the dataset."
            return Err(LabelboxError::Configuration(format!(
                "Labelbox cannot sign dataset {}'s URLs with IAM integration {} ({}): \
                 validation failed{}; check the integration in {INTEGRATIONS_SETTINGS}",
                dataset.id,
                signer.name,
                signer.id,
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", failed.join(", "))
                }
            )));
        }
        Ok(())
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

        // Before anything is made: a missing or broken integration stops here.
        let signer = self.choose_iam_integration(&spec.image_access).await?;
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
        if let Some(signer) = &signer {
            self.attach_signer(&dataset, signer, &mut changes).await?;
        }
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

        let state = self.project_state(&project.id).await?;
        let named = self
            .ontologies_named(&spec.ontology_name)
            .await?
            .into_iter()
            .next();
        // Labelbox connects one ontology to a project: the SDK's
        // `connect_ontology` refuses one with tools or classifications
        // ("Ontology already connected to project."). Another's is left be.
        let other = state
            .ontology
            .clone()
            .filter(|o| !o.is_empty())
            .filter(|o| named.as_ref().is_none_or(|n| n.id != o.id));
        let ontology = match other {
            Some(other) => {
                warnings.push(format!(
                    "project {} already has the ontology {} ({}), not {}: it is left connected \
                     (Labelbox connects an ontology to a project once) and pre-labels name its tools",
                    project.name,
                    other.name,
                    other.id,
                    match &named {
                        Some(n) => format!("{} ({})", n.name, n.id),
                        None => format!("{:?} (not created)", spec.ontology_name),
                    }
                ));
                other
            }
            None => {
                let ontology = match named {
                    Some(o) => o,
                    None => {
                        let o = self
                            .create_ontology(&spec.ontology_name, &bbox_ontology(&spec.tool_names))
                            .await?;
                        changes.push(format!("created ontology {} ({})", o.name, o.id));
                        o
                    }
                };
                let connect =
                    state.ontology.as_ref().map(|o| o.id.as_str()) != Some(ontology.id.as_str());
                if connect {
                    if state.labeling_frontend_id.is_none() {
                        self.connect_default_editor(&project.id).await?;
                        changes.push("connected the Editor labeling frontend".into());
                    }
                    self.connect_ontology(&project.id, &ontology.id).await?;
                    changes.push(format!("connected ontology {} to the project", ontology.id));
                }
                // As `connect_ontology` ends; and once for a project connected
                // before this was done.
                if connect || state.setup_complete.is_none() {
                    let at = self.mark_setup_complete(&project.id).await?;
                    changes.push(format!("marked the project set up ({at})"));
                }
                ontology
            }
        };
        let missing: Vec<&String> = spec
            .tool_names
            .iter()
            .filter(|t| !ontology.tools.contains(t))
            .collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "ontology {} has no tool for {missing:?}: those boxes will not be pre-labelled",
                ontology.name
            ));
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
            signer,
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
    // Every tool and classification counts, named or not (emptiness).
    let names = |key: &str| -> Vec<String> {
        normalized[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|t| t["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(OntologyInfo {
        id: node["id"].as_str()?.to_string(),
        name: node["name"].as_str().unwrap_or_default().to_string(),
        tools: names("tools"),
        classifications: names("classifications"),
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

//! Label events as Labelbox sends them (and our local labelers copy).
//! No schema is published: we accept what integrations have seen — label id
//! at `id` (or `label.id` for reviews), the capture id at `dataRow.globalKey`,
//! the label as a JSON string or object with `objects[].{title|value|name, bbox}`
//! — and say which field is missing when we can't.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use modelobs_core::classes;
use modelobs_core::records::{CaptureId, GroundTruthObject};
use modelobs_core::{BBox, LabelboxBox};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    LabelCreated,
    LabelUpdated,
    LabelDeleted,
    /// Older projects: a review of a label, with a score.
    ReviewCreated,
}

impl Topic {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "LABEL_CREATED" => Some(Self::LabelCreated),
            "LABEL_UPDATED" => Some(Self::LabelUpdated),
            "LABEL_DELETED" => Some(Self::LabelDeleted),
            "REVIEW_CREATED" | "REVIEW_UPDATED" => Some(Self::ReviewCreated),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {why}")]
    Invalid { field: &'static str, why: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelEvent {
    pub topic: Topic,
    pub label_id: String,
    pub capture_id: CaptureId,
    /// `project.id`: where to fetch the label from when the payload lacks it.
    pub project_id: Option<String>,
    /// When the label last changed: its version.
    pub updated_at: DateTime<Utc>,
    /// `None` when the payload carries no label JSON.
    pub objects: Option<Vec<LabelledObject>>,
    pub review_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelledObject {
    pub name: String,
    pub bbox: LabelboxBox,
}

/// A box read back from an export is labelled like one in a payload.
impl From<crate::export::ExportedBox> for LabelledObject {
    fn from(b: crate::export::ExportedBox) -> Self {
        Self {
            name: b.name,
            bbox: b.bbox,
        }
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The topic from the header, else from the payload; `Ok(None)` for a topic we don't handle.
pub fn parse(
    body: &[u8],
    topic_header: Option<&str>,
) -> Result<Option<(String, LabelEvent)>, PayloadError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let topic_name = topic_header
        .map(str::to_string)
        .or_else(|| {
            str_at(&v, &["event"])
                .or(str_at(&v, &["topic"]))
                .map(str::to_string)
        })
        .ok_or(PayloadError::Missing(
            "event (or the X-Labelbox-Event header)",
        ))?;
    let Some(topic) = Topic::parse(&topic_name) else {
        return Ok(None);
    };
    let label_id = match topic {
        Topic::ReviewCreated => str_at(&v, &["label", "id"]).or(str_at(&v, &["labelId"])),
        _ => str_at(&v, &["id"]),
    }
    .ok_or(PayloadError::Missing("id"))?
    .to_string();
    let global_key =
        str_at(&v, &["dataRow", "globalKey"]).ok_or(PayloadError::Missing("dataRow.globalKey"))?;
    let capture_id = CaptureId::parse(global_key).map_err(|e| PayloadError::Invalid {
        field: "dataRow.globalKey",
        why: e.to_string(),
    })?;
    let updated_at = match str_at(&v, &["updatedAt"]).or(str_at(&v, &["createdAt"])) {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| PayloadError::Invalid {
                field: "updatedAt",
                why: e.to_string(),
            })?,
        // A deletion needs no time of its own: it wins over what is stored.
        None if topic == Topic::LabelDeleted => Utc::now(),
        None => return Err(PayloadError::Missing("updatedAt")),
    };
    let label = match v.get("label") {
        Some(Value::String(s)) => {
            Some(
                serde_json::from_str::<Value>(s).map_err(|e| PayloadError::Invalid {
                    field: "label",
                    why: format!("not a JSON document: {e}"),
                })?,
            )
        }
        Some(obj @ Value::Object(_)) if obj.get("objects").is_some() => Some(obj.clone()),
        _ => None,
    };
    let objects = label.map(|l| parse_objects(&l)).transpose()?;
    Ok(Some((
        topic_name,
        LabelEvent {
            topic,
            label_id,
            capture_id,
            project_id: str_at(&v, &["project", "id"]).map(str::to_string),
            updated_at,
            objects,
            review_score: v.get("score").and_then(Value::as_f64),
        },
    )))
}

fn parse_objects(label: &Value) -> Result<Vec<LabelledObject>, PayloadError> {
    let Some(list) = label.get("objects").and_then(Value::as_array) else {
        return Err(PayloadError::Missing("label.objects"));
    };
    list.iter()
        // Only boxes: other tools (points, polygons) are not evaluated.
        .filter(|o| o.get("bbox").is_some())
        .map(|o| {
            let name = str_at(o, &["title"])
                .or(str_at(o, &["value"]))
                .or(str_at(o, &["name"]))
                .ok_or(PayloadError::Missing("label.objects[].title"))?;
            let bbox: LabelboxBox =
                serde_json::from_value(o["bbox"].clone()).map_err(|e| PayloadError::Invalid {
                    field: "label.objects[].bbox",
                    why: e.to_string(),
                })?;
            Ok(LabelledObject {
                name: name.to_string(),
                bbox,
            })
        })
        .collect()
}

/// Ontology names → our classes: an explicit map first, then the COCO name
/// itself (case and `_` vs space ignored).
#[derive(Debug, Clone, Default)]
pub struct ClassMap(pub HashMap<String, String>);

impl ClassMap {
    /// `CLASS_MAP`'s form: a JSON object of tool name → COCO class name.
    pub fn from_json(doc: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(doc).map(Self)
    }

    /// Labelled objects as ground truth, and the names we could not map.
    pub fn map(&self, objects: &[LabelledObject]) -> (Vec<GroundTruthObject>, Vec<String>) {
        let mut mapped = Vec::new();
        let mut unmapped = Vec::new();
        for o in objects {
            let target = self
                .0
                .get(&o.name)
                .cloned()
                .unwrap_or_else(|| o.name.to_lowercase().replace('_', " "));
            match (classes::by_name(&target), BBox::from_labelbox(o.bbox)) {
                (Some(class), Ok(bbox)) => mapped.push(GroundTruthObject {
                    label: class.name.to_string(),
                    class_id: class.index,
                    bbox,
                    iscrowd: false,
                }),
                (None, _) => unmapped.push(o.name.clone()),
                (_, Err(e)) => unmapped.push(format!("{} ({e})", o.name)),
            }
        }
        (mapped, unmapped)
    }
}

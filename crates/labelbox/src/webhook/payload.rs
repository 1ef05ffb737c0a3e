//! Label events as Labelbox sends them (and our local labelers copy).
//! Labelbox publishes no schema for its webhook payloads, and there are two
//! generations ([`Shape`]), both accepted:
//! - **v1**, webhooks created through the SDK (`Webhook.create`): camelCase,
//!   the label id at `id` (a review's label at `label.id`), the data row at
//!   `dataRow {id, globalKey?}`, the label as a JSON *string* (or object) with
//!   `objects[].{title|value|name, bbox}`, times `createdAt`/`updatedAt`;
//! - **v2**, webhooks created in Labelbox's UI: the export v2 shape,
//!   snake_case, the data row at `data_row {id, global_key?}`, the label as an
//!   export label (`id`, `label_details.{created_at, updated_at}`,
//!   `annotations.objects[].{name, bounding_box}`).
//!
//! Neither the global key (our capture id) nor the time is promised: an
//! event may name its data row only by id, or carry no time. What is missing
//! is read from Labelbox's export by the recorder (`modelobs_pipeline::label`);
//! [`LabelEvent`] says what the payload itself had.
//!
//! # Which topic an event is
//! Labelbox names the topic in the `X-Labelbox-Event` header, which the HMAC
//! signature does not cover: anyone holding one signed delivery can resend
//! its body under another topic. So:
//! - a topic in the signed body (`event`, or `topic`: what our local labelers
//!   send) is the topic; a header naming a different one is refused
//!   ([`PayloadError::TopicMismatch`]), since one of the two was tampered with;
//! - a topic only in the header is marked [`TopicFrom::Header`], and what it
//!   may do is bounded by the signed body: a deletion named only by the
//!   header is applied only when the label's source confirms the label is
//!   gone, or, with no source to ask, only to a body without label content
//!   (`modelobs_pipeline::label`). A header cannot turn a deletion into a
//!   label either: a created or updated event without content is read from
//!   the source, and content for a label recorded as deleted is refused
//!   there, deleted labels staying deleted.

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

/// Where an event's topic was read: what the signature covers, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicFrom {
    /// `event` / `topic` in the signed body.
    Body,
    /// Only the unsigned `X-Labelbox-Event` header.
    Header,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {why}")]
    Invalid { field: &'static str, why: String },
    #[error(
        "the signed body says {body} but the (unsigned) X-Labelbox-Event header says {header}: refused"
    )]
    TopicMismatch { body: String, header: String },
}

/// Which generation of Labelbox's webhook payloads an event is (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// camelCase, `dataRow`: webhooks created through the SDK.
    V1,
    /// snake_case, export-shaped, `data_row`: webhooks created in the UI.
    V2,
}

impl Shape {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelEvent {
    pub topic: Topic,
    /// Whether the signature covers the topic.
    pub topic_from: TopicFrom,
    /// Which payload generation it came in.
    pub shape: Shape,
    /// The label the event is about: the label's own id, or for a review the
    /// label reviewed.
    pub label_id: String,
    /// The data row's global key (our capture id); `None` when the payload
    /// names the row only by id ([`data_row_id`](Self::data_row_id)).
    pub capture_id: Option<CaptureId>,
    /// The data row's Labelbox id, when the payload has it.
    pub data_row_id: Option<String>,
    /// `project.id`: where to fetch the label from when the payload lacks it.
    pub project_id: Option<String>,
    /// `updatedAt` (else `createdAt`): when the label last changed, or for a
    /// review when it was given. `None` when the payload says no time: a
    /// label's time is then read from its source, and a deletion's is
    /// versioned after the label it deletes.
    pub updated_at: Option<DateTime<Utc>>,
    /// `None` when the payload carries no label content.
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

/// The first of `paths` that holds a string.
fn first_str<'a>(v: &'a Value, paths: &[&[&str]]) -> Option<&'a str> {
    paths.iter().find_map(|p| str_at(v, p))
}

/// The topic from the signed body, else from the header (see the module's
/// doc); `Ok(None)` for a topic we don't handle.
pub fn parse(
    body: &[u8],
    topic_header: Option<&str>,
) -> Result<Option<(String, LabelEvent)>, PayloadError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let body_topic = str_at(&v, &["event"]).or(str_at(&v, &["topic"]));
    let (topic_name, topic_from) = match (body_topic, topic_header) {
        (Some(body), Some(header)) if Topic::parse(body) != Topic::parse(header) => {
            return Err(PayloadError::TopicMismatch {
                body: body.to_string(),
                header: header.to_string(),
            });
        }
        (Some(body), _) => (body.to_string(), TopicFrom::Body),
        (None, Some(header)) => (header.to_string(), TopicFrom::Header),
        (None, None) => {
            return Err(PayloadError::Missing(
                "event (or the X-Labelbox-Event header)",
            ));
        }
    };
    let Some(topic) = Topic::parse(&topic_name) else {
        return Ok(None);
    };
    // The label: a JSON string (v1), or an object (v1 with `objects`, v2 an
    // export label with `annotations`).
    let label = match v.get("label") {
        Some(Value::String(s)) => {
            Some(
                serde_json::from_str::<Value>(s).map_err(|e| PayloadError::Invalid {
                    field: "label",
                    why: format!("not a JSON document: {e}"),
                })?,
            )
        }
        Some(obj @ Value::Object(_)) => Some(obj.clone()),
        _ => None,
    };
    let shape = if v.get("data_row").is_some()
        || label
            .as_ref()
            .is_some_and(|l| l.get("annotations").is_some())
    {
        Shape::V2
    } else {
        Shape::V1
    };
    // The label's own fields first: in a v2 body a top-level `id` or time
    // may be the delivery's, not the label's.
    let label_id = match (topic, shape) {
        (Topic::ReviewCreated, _) => {
            first_str(&v, &[&["label", "id"], &["labelId"], &["label_id"]])
        }
        (_, Shape::V1) => first_str(&v, &[&["id"], &["label", "id"], &["label_id"]]),
        (_, Shape::V2) => first_str(&v, &[&["label", "id"], &["label_id"], &["id"]]),
    }
    .ok_or(PayloadError::Missing("id"))?
    .to_string();
    let global_key = first_str(
        &v,
        &[&["dataRow", "globalKey"], &["data_row", "global_key"]],
    )
    .filter(|k| !k.is_empty());
    let capture_id = global_key
        .map(|k| {
            CaptureId::parse(k).map_err(|e| PayloadError::Invalid {
                field: "dataRow.globalKey",
                why: e.to_string(),
            })
        })
        .transpose()?;
    let data_row_id = first_str(&v, &[&["dataRow", "id"], &["data_row", "id"]])
        .filter(|id| !id.is_empty())
        .map(str::to_string);
    if capture_id.is_none() && data_row_id.is_none() {
        return Err(PayloadError::Missing("dataRow.globalKey (or dataRow.id)"));
    }
    let time = match shape {
        Shape::V1 => first_str(&v, &[&["updatedAt"], &["createdAt"]]),
        Shape::V2 => first_str(
            &v,
            &[
                &["label", "label_details", "updated_at"],
                &["label", "label_details", "created_at"],
                &["updated_at"],
                &["created_at"],
            ],
        ),
    };
    let updated_at = time
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| PayloadError::Invalid {
                    field: "updatedAt",
                    why: e.to_string(),
                })
        })
        .transpose()?;
    let objects = match &label {
        Some(l) if l.get("annotations").is_some() => Some(
            crate::export::parse_label(&with_id(l, &label_id))
                .map_err(|e| PayloadError::Invalid {
                    field: "label.annotations",
                    why: e.to_string(),
                })?
                .objects
                .into_iter()
                .map(LabelledObject::from)
                .collect(),
        ),
        // A label string is content: without objects it is refused.
        Some(l)
            if l.get("objects").is_some() || matches!(v.get("label"), Some(Value::String(_))) =>
        {
            Some(parse_objects(l)?)
        }
        // `label: {id}` of a review names the label reviewed.
        _ => None,
    };
    Ok(Some((
        topic_name,
        LabelEvent {
            topic,
            topic_from,
            shape,
            label_id,
            capture_id,
            data_row_id,
            project_id: first_str(&v, &[&["project", "id"], &["project_id"]]).map(str::to_string),
            updated_at,
            objects,
            review_score: v.get("score").and_then(Value::as_f64),
        },
    )))
}

/// An export label with its `id` (a v2 payload may put the label's id only
/// at the top).
fn with_id(label: &Value, label_id: &str) -> Value {
    let mut label = label.clone();
    if label.get("id").and_then(Value::as_str).is_none()
        && let Some(o) = label.as_object_mut()
    {
        o.insert("id".into(), Value::from(label_id));
    }
    label
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CAPTURE: &str = "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90";

    fn body(extra: Value) -> Vec<u8> {
        let mut v = json!({"id": "label-a", "dataRow": {"globalKey": CAPTURE},
            "updatedAt": "2026-11-26T09:15:00Z"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v.to_string().into_bytes()
    }

    #[test]
    fn a_topic_in_the_signed_body_is_the_topic_and_the_header_only_agrees_with_it() {
        // GIVEN a body that names its topic
        let b = body(json!({"event": "LABEL_CREATED", "label": {"objects": []}}));
        // WHEN the header agrees, or says nothing
        for header in [Some("LABEL_CREATED"), Some("label_created"), None] {
            let (name, e) = parse(&b, header).unwrap().unwrap();
            // THEN the body's topic, marked as signed
            assert_eq!(
                (name.as_str(), e.topic),
                ("LABEL_CREATED", Topic::LabelCreated)
            );
            assert_eq!(e.topic_from, TopicFrom::Body);
        }
        // WHEN the header says another topic THEN refused, naming both
        let err = parse(&b, Some("LABEL_DELETED")).unwrap_err();
        assert_eq!(
            err,
            PayloadError::TopicMismatch {
                body: "LABEL_CREATED".into(),
                header: "LABEL_DELETED".into()
            }
        );
        // ... REVIEW_CREATED and REVIEW_UPDATED are one topic to us
        let review = body(json!({"topic": "REVIEW_UPDATED", "label": {"id": "label-a"}}));
        assert!(parse(&review, Some("REVIEW_CREATED")).is_ok());
    }

    #[test]
    fn a_topic_only_in_the_header_is_marked_unsigned() {
        let (_, e) = parse(&body(json!({})), Some("LABEL_DELETED"))
            .unwrap()
            .unwrap();
        assert_eq!(e.topic_from, TopicFrom::Header);
        assert_eq!(
            parse(&body(json!({})), None).unwrap_err(),
            PayloadError::Missing("event (or the X-Labelbox-Event header)")
        );
    }

    #[test]
    fn no_time_is_no_time_never_the_time_it_arrived() {
        // GIVEN bodies without updatedAt or createdAt
        let untimed = json!({"id": "label-a", "dataRow": {"globalKey": CAPTURE}}).to_string();
        // THEN neither a deletion nor an update is given one: the recorder
        // reads the label's time from its source, or versions a deletion
        // after the label it deletes
        for topic in ["LABEL_DELETED", "LABEL_UPDATED"] {
            let (_, e) = parse(untimed.as_bytes(), Some(topic)).unwrap().unwrap();
            assert_eq!(e.updated_at, None, "{topic}");
        }
    }

    #[test]
    fn a_v1_payload_may_name_its_data_row_by_id_only() {
        // GIVEN an SDK-created webhook's payload: dataRow.id, no globalKey
        let b = json!({"id": "label-a", "dataRow": {"id": "dr-1"},
            "label": "{\"objects\": [{\"title\": \"Dog\", \"bbox\": {\"top\": 1, \"left\": 2, \"height\": 3, \"width\": 4}}]}",
            "createdAt": "2026-11-26T09:15:00Z"})
        .to_string();
        let (_, e) = parse(b.as_bytes(), Some("LABEL_CREATED")).unwrap().unwrap();
        // THEN the row's id, no capture id, the label's boxes and its time
        assert_eq!(e.shape, Shape::V1);
        assert_eq!(
            (e.capture_id, e.data_row_id.as_deref()),
            (None, Some("dr-1"))
        );
        assert_eq!(e.objects.as_ref().map(Vec::len), Some(1));
        assert_eq!(
            e.updated_at.unwrap().to_rfc3339(),
            "2026-11-26T09:15:00+00:00"
        );
        // ... and neither key is refused, naming both
        let neither = json!({"id": "label-a", "dataRow": {}}).to_string();
        assert_eq!(
            parse(neither.as_bytes(), Some("LABEL_CREATED")).unwrap_err(),
            PayloadError::Missing("dataRow.globalKey (or dataRow.id)")
        );
    }

    #[test]
    fn a_v2_payload_is_read_in_the_export_shape() {
        // GIVEN a UI-created webhook's payload: snake_case, an export label
        let b = json!({
            "data_row": {"id": "dr-1", "global_key": CAPTURE, "external_id": "x.jpg"},
            "project": {"id": "p-1"},
            "label": {"id": "label-a",
                "label_details": {"created_at": "2026-11-26T09:00:00Z", "updated_at": "2026-11-26T09:15:00Z"},
                "annotations": {"objects": [
                    {"name": "Dog", "annotation_kind": "ImageBoundingBox",
                     "bounding_box": {"top": 1.0, "left": 2.0, "height": 3.0, "width": 4.0}},
                    {"name": "Dog", "annotation_kind": "ImagePolygon", "polygon": []}],
                    "classifications": []}},
        })
        .to_string();
        let (_, e) = parse(b.as_bytes(), Some("LABEL_UPDATED")).unwrap().unwrap();
        // ... and with a delivery's own id and time at the top, the label's still win
        let mut delivery: Value = serde_json::from_str(&b).unwrap();
        delivery["id"] = json!("delivery-1");
        delivery["updated_at"] = json!("2026-11-27T00:00:00Z");
        let (_, d) = parse(delivery.to_string().as_bytes(), Some("LABEL_UPDATED"))
            .unwrap()
            .unwrap();
        assert_eq!(d, e);
        // THEN the same event a v1 payload gives: the label id, the capture,
        // the boxes only, the label's updated_at
        assert_eq!(e.shape, Shape::V2);
        assert_eq!(e.label_id, "label-a");
        assert_eq!(e.capture_id, Some(CaptureId::parse(CAPTURE).unwrap()));
        assert_eq!(e.data_row_id.as_deref(), Some("dr-1"));
        assert_eq!(e.project_id.as_deref(), Some("p-1"));
        assert_eq!(
            e.updated_at.unwrap().to_rfc3339(),
            "2026-11-26T09:15:00+00:00"
        );
        let objects = e.objects.unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].name, "Dog");
        assert_eq!(objects[0].bbox.width, 4.0);
    }
}

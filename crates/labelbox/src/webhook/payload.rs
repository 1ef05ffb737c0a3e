//! Label events as Labelbox sends them (and our local labelers copy).
//! No schema is published: we accept what integrations have seen — label id
//! at `id` (or `label.id` for reviews), the capture id at `dataRow.globalKey`,
//! the label as a JSON string or object with `objects[].{title|value|name, bbox}`
//! — and say which field is missing when we can't.
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

#[derive(Debug, Clone, PartialEq)]
pub struct LabelEvent {
    pub topic: Topic,
    /// Whether the signature covers the topic.
    pub topic_from: TopicFrom,
    /// The label the event is about: the label's own id, or for a review the
    /// label reviewed.
    pub label_id: String,
    pub capture_id: CaptureId,
    /// `project.id`: where to fetch the label from when the payload lacks it.
    pub project_id: Option<String>,
    /// `updatedAt` (else `createdAt`): when the label last changed, or for a
    /// review when it was given. `None` only for a deletion that says no time:
    /// recording versions it after the label it deletes.
    pub updated_at: Option<DateTime<Utc>>,
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
        Some(t) => Some(
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| PayloadError::Invalid {
                    field: "updatedAt",
                    why: e.to_string(),
                })?,
        ),
        // Never the time it arrived: a delayed deletion would then win over
        // labels made after it. Recording versions it after the label it names.
        None if topic == Topic::LabelDeleted => None,
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
            topic_from,
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
    fn only_a_deletion_may_come_without_a_time_and_it_is_not_given_one() {
        // GIVEN bodies without updatedAt or createdAt
        let untimed = json!({"id": "label-a", "dataRow": {"globalKey": CAPTURE}}).to_string();
        // THEN a deletion has no time (never the time it arrived)...
        let (_, e) = parse(untimed.as_bytes(), Some("LABEL_DELETED"))
            .unwrap()
            .unwrap();
        assert_eq!(e.updated_at, None);
        // ... and anything else is refused
        assert_eq!(
            parse(untimed.as_bytes(), Some("LABEL_UPDATED")).unwrap_err(),
            PayloadError::Missing("updatedAt")
        );
    }
}

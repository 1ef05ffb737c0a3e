//! Reading a project export (export v2 NDJSON) row by row: the fixture is shaped like
//! Labelbox's documented samples (events/labelbox/README.md names them).

use modelobs_core::boxes::LabelboxBox;
use modelobs_labelbox::export::{ndjson_values, parse_row};
use modelobs_labelbox::{ExportedBox, ExportedRow, LabelboxError};

const PROJECT: &str = "cltd3vkju021907u63w2odj69";

fn rows() -> Vec<(usize, Result<ExportedRow, LabelboxError>)> {
    let text = modelobs_testkit::event("labelbox/project-export.ndjson");
    ndjson_values(&text)
        .map(|(line, v)| (line, v.and_then(|v| parse_row(&v))))
        .collect()
}

fn row(data_row_id: &str) -> ExportedRow {
    rows()
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .find(|r| r.data_row_id == data_row_id)
        .unwrap_or_else(|| panic!("no row {data_row_id}"))
}

#[test]
fn every_line_is_a_row_or_says_why_not() {
    let rows = rows();
    assert_eq!(rows.len(), 9);
    let (line, last) = rows.last().unwrap();
    assert_eq!(*line, 9);
    let err = last.as_ref().unwrap_err().to_string();
    assert!(err.contains("not JSON"), "{err}");
    assert!(rows[..8].iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn a_row_carries_its_data_row_media_and_every_label() {
    let r = row("clrow0horses000000000001");
    assert_eq!(
        r.global_key.as_deref(),
        Some("01a216ce-1102-7c4e-9a52-4d8e2f6a1b90")
    );
    assert_eq!(r.external_id, None);
    assert!(r.row_data.as_deref().unwrap().starts_with("https://"));
    assert_eq!((r.width, r.height), (Some(773), Some(512)));
    assert_eq!(r.labels.len(), 2);
    assert!(r.labels.iter().all(|(p, _)| p == PROJECT));

    // The newest label wins, whatever order the export lists them in.
    let (project, newest) = r.newest_label(None).unwrap();
    assert_eq!(project, PROJECT);
    assert_eq!(newest.label_id, "cllabel0horses0new00001");
    assert_eq!(
        newest.updated_at().unwrap().to_rfc3339(),
        "2026-11-26T09:40:00+00:00"
    );
    let mut reversed = r.clone();
    reversed.labels.reverse();
    assert_eq!(
        reversed.newest_label(None).unwrap().1.label_id,
        "cllabel0horses0new00001"
    );
    // Boxes only; the polygon is counted, not returned.
    assert_eq!(newest.other_objects, 1);
    assert_eq!(
        newest.objects[1],
        ExportedBox {
            name: "Horse".into(),
            bbox: LabelboxBox {
                top: 130.0,
                left: 398.0,
                height: 240.0,
                width: 212.0
            }
        }
    );
}

#[test]
fn labels_are_taken_from_the_project_asked_for() {
    let r = row("clrow0otherproject000007");
    assert!(r.newest_label(Some(PROJECT)).is_none());
    let (project, label) = r.newest_label(None).unwrap();
    assert_eq!(project, "clx0other0project000000001");
    assert_eq!(label.objects[0].name, "giraffe");
    assert!(row("clrow0unlabelled00000004").newest_label(None).is_none());
    let only_shapes = row("clrow0polygons0000000005");
    let (_, label) = only_shapes.newest_label(Some(PROJECT)).unwrap();
    assert_eq!((label.objects.len(), label.other_objects), (0, 2));
}

#[test]
fn a_row_without_a_data_row_id_or_with_a_broken_label_is_refused() {
    let refused = |v: serde_json::Value| parse_row(&v).unwrap_err().to_string();
    let err = refused(serde_json::json!({"data_row": {"global_key": "k"}}));
    assert!(err.contains("data_row.id"), "{err}");
    let err = refused(serde_json::json!({
        "data_row": {"id": "r1"},
        "projects": {"p": {"labels": [{"id": "l1", "annotations": {"objects": [
            {"name": "Horse", "bounding_box": {"top": "high"}}
        ]}}]}}
    }));
    assert!(err.contains("r1") && err.contains("l1"), "{err}");
}

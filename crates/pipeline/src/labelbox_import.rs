//! A training dataset from a Labelbox project export (`modelobs dataset
//! import-labelbox`): export v2 NDJSON, one data row a line, read by
//! `modelobs_labelbox::export`, classes mapped by the webhook's
//! [`ClassMap`], written in the layout of [`crate::dataset_layout`].
//!
//! Each row's newest label (by `label_details.updated_at`) is taken. A row's
//! `row_data` is usually a signed URL, which this does not fetch: images come
//! from a local directory when one is given (found by the row's global key,
//! external id or `row_data`'s file name), and are otherwise named in the
//! dataset by the row's global key and counted as not fetched. Rows without
//! a label, with only objects that are not boxes, or with classes the map
//! does not know are skipped and reported. A label with no objects at all is
//! an image with nothing on it, and is kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use modelobs_core::export::{self, DatasetImage, ImageProvenance, LabelboxRow, SplitPlan};
use modelobs_core::records::CaptureId;
use modelobs_labelbox::export::{ExportedRow, ndjson_values, parse_row};
use modelobs_labelbox::webhook::payload::{ClassMap, LabelledObject};
use thiserror::Error;

use crate::dataset_layout::{DatasetOutcome, DatasetWriter, LayoutError, Problem, Progress};

/// What `label_source` imported labels carry.
pub const LABEL_SOURCE: &str = "labelbox";

pub struct ImportRequest<'a> {
    /// The export's NDJSON text.
    pub export: &'a str,
    /// Only this project's labels (else every project's in the row).
    pub project_id: Option<&'a str>,
    /// Where the rows' images are.
    pub images: Option<&'a Path>,
    pub class_map: &'a ClassMap,
    pub split: Option<SplitPlan>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Data rows (non-empty lines) in the export.
    pub rows: usize,
    /// Images named by their row's key only: no image directory was given.
    pub images_not_fetched: usize,
    pub outcome: DatasetOutcome,
}

#[derive(Debug, Error)]
pub enum ImportError {
    #[error("reading the image directory {path}: {source}")]
    Images {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// The files of the image directory, by name and by name without extension.
struct ImageIndex {
    by_name: HashMap<String, PathBuf>,
    by_stem: HashMap<String, Vec<PathBuf>>,
}

impl ImageIndex {
    fn read(dir: &Path) -> Result<Self, ImportError> {
        let failed = |source| ImportError::Images {
            path: dir.to_path_buf(),
            source,
        };
        let mut index = Self {
            by_name: HashMap::new(),
            by_stem: HashMap::new(),
        };
        for entry in std::fs::read_dir(dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            if !entry.file_type().map_err(failed)?.is_file() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Some((stem, _)) = name.rsplit_once('.') {
                index
                    .by_stem
                    .entry(stem.to_string())
                    .or_default()
                    .push(entry.path());
            }
            index.by_name.insert(name, entry.path());
        }
        Ok(index)
    }

    /// The file named exactly `name`, else the one file whose name without extension is `name`.
    fn find(&self, name: &str) -> Option<&Path> {
        self.by_name.get(name).map(PathBuf::as_path).or_else(|| {
            match self.by_stem.get(name).map(Vec::as_slice) {
                Some([one]) => Some(one.as_path()),
                _ => None,
            }
        })
    }

    /// The first of `names` found, as its file name and bytes; else why not.
    async fn fetch(&self, names: &[String]) -> Result<(String, Vec<u8>), String> {
        let path = names
            .iter()
            .find_map(|name| self.find(name))
            .ok_or_else(|| {
                format!(
                    "no image for it in the image directory (looked for {})",
                    names.join(", ")
                )
            })?;
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        Ok((name.to_string(), bytes))
    }
}

/// The last path segment of a URL, without query or fragment.
fn url_file_name(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next()?;
    path.rsplit('/').next().filter(|n| !n.is_empty())
}

/// A row's label, mapped; the image is found later.
struct Candidate {
    image: DatasetImage,
    /// The names the image may have in the image directory, in order.
    lookups: Vec<String>,
    key: String,
}

fn candidate(
    row: ExportedRow,
    key: String,
    request: &ImportRequest<'_>,
) -> Result<Candidate, Problem> {
    let refuse = |why: String| Problem {
        key: key.clone(),
        why,
    };
    let Some((project_id, label)) = row.newest_label(request.project_id) else {
        return Err(refuse(match request.project_id {
            Some(p) => format!("no label in project {p}"),
            None => "no label".into(),
        }));
    };
    if label.objects.is_empty() && label.other_objects > 0 {
        return Err(refuse(format!(
            "label {}: only objects that are not boxes ({})",
            label.label_id, label.other_objects
        )));
    }
    let boxes: Vec<LabelledObject> = label
        .objects
        .iter()
        .cloned()
        .map(LabelledObject::from)
        .collect();
    let (objects, unmapped) = request.class_map.map(&boxes);
    if !unmapped.is_empty() {
        return Err(refuse(format!(
            "label {}: classes not in the class map: {}",
            label.label_id,
            unmapped.join(", ")
        )));
    }
    let updated_at = label.updated_at();
    let capture_id = row
        .global_key
        .as_deref()
        .and_then(|k| CaptureId::parse(k).ok())
        .filter(|id| id.captured_at().is_some());
    let captured_at = capture_id.and_then(|id| id.captured_at());
    let lookups: Vec<String> = [
        row.global_key.as_deref(),
        row.external_id.as_deref(),
        row.row_data.as_deref().and_then(url_file_name),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .collect();
    Ok(Candidate {
        image: DatasetImage {
            file_name: row
                .global_key
                .clone()
                .or(row.external_id.clone())
                .unwrap_or(row.data_row_id.clone()),
            width: row.width,
            height: row.height,
            source: format!("labelbox:{}", row.data_row_id),
            time: captured_at
                .or(updated_at)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            objects,
            provenance: ImageProvenance {
                capture_id,
                captured_at,
                model: None,
                label_id: label.label_id.clone(),
                label_version: updated_at.map_or(0, |t| t.timestamp_millis()),
                label_source: LABEL_SOURCE.into(),
                sampling_reason: None,
                labelbox: Some(LabelboxRow {
                    project_id: project_id.to_string(),
                    data_row_id: row.data_row_id.clone(),
                    global_key: row.global_key.clone(),
                    external_id: row.external_id.clone(),
                    row_data: row.row_data.clone(),
                }),
            },
        },
        lookups,
        key,
    })
}

/// Imports the labelled rows of a project export into `out` (which must not hold a dataset yet).
pub async fn import(
    request: &ImportRequest<'_>,
    out: &Path,
    progress: &impl Progress,
) -> Result<ImportReport, ImportError> {
    let index = request.images.map(ImageIndex::read).transpose()?;
    let mut report = ImportReport::default();
    let mut candidates = Vec::new();
    for (line, value) in ndjson_values(request.export) {
        report.rows += 1;
        let row = value.and_then(|v| parse_row(&v));
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let key = format!("line {line}");
                report.outcome.skip(
                    Problem {
                        key,
                        why: e.to_string(),
                    },
                    progress,
                );
                continue;
            }
        };
        let key = format!("line {line} (data row {})", row.data_row_id);
        match candidate(row, key, request) {
            Ok(c) => candidates.push(c),
            Err(problem) => report.outcome.skip(problem, progress),
        }
    }
    // Oldest first: of duplicates, the oldest is kept.
    candidates.sort_by_key(|c| c.image.time);

    let mut writer = DatasetWriter::create(out).await?;
    progress.start("importing", candidates.len() as u64);
    for Candidate {
        mut image,
        lookups,
        key,
    } in candidates
    {
        progress.advance();
        let bytes = match &index {
            None => {
                report.images_not_fetched += 1;
                None
            }
            Some(index) => match index.fetch(&lookups).await {
                Ok((file_name, bytes)) => {
                    image.file_name = file_name;
                    image.source = export::sha256_hex(&bytes);
                    Some(bytes)
                }
                Err(why) => {
                    report.outcome.skip(Problem { key, why }, progress);
                    continue;
                }
            },
        };
        let added = writer.add(image, bytes.as_deref()).await?;
        report.outcome.added(added, key, progress);
    }
    report.outcome.written = writer.close(request.split.as_ref()).await?;
    Ok(report)
}

//! The one on-disk layout of a training dataset, written by both
//! `dataset_export` (from the bucket) and `labelbox_import` (from a project
//! export):
//!
//! ```text
//! DIR/images/<file_name>     the image bytes as stored
//! DIR/annotations.json       COCO (modelobs_core::export::ExportedDataset),
//!                            file_name relative to DIR/images/
//! ```
//!
//! Images are added oldest first; the first of each source is kept and later
//! ones are reported as duplicates ([`Deduper`]). Splits are decided once all
//! images are in, and `annotations.json` is written last (through a temporary
//! file), so a directory with one holds a whole dataset.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use modelobs_core::eval::coco_format::Split;
use modelobs_core::export::{self, DatasetImage, Deduper, Duplicate, SplitPlan};
use thiserror::Error;

pub const ANNOTATIONS: &str = "annotations.json";
pub const IMAGES: &str = "images";

#[derive(Debug, Error)]
pub enum LayoutError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already holds a dataset (annotations.json or images/): choose another directory")]
    NotEmpty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What became of an added image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    Kept,
    Duplicate(Duplicate),
    /// Its file name is not a plain name, or another image has it.
    BadName(String),
}

/// The dataset written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub annotations: PathBuf,
    pub images: usize,
    pub objects: usize,
    /// Images per side, when split.
    pub splits: Option<[usize; 3]>,
}

pub struct DatasetWriter {
    dir: PathBuf,
    deduper: Deduper,
    names: std::collections::HashSet<String>,
    images: Vec<DatasetImage>,
}

impl DatasetWriter {
    /// Creates `dir` (and `dir/images/`); refuses one that already holds a dataset.
    pub async fn create(dir: &Path) -> Result<Self, LayoutError> {
        let images = dir.join(IMAGES);
        for taken in [dir.join(ANNOTATIONS), images.clone()] {
            match tokio::fs::metadata(&taken).await {
                Ok(_) => return Err(LayoutError::NotEmpty(dir.to_path_buf())),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io(&taken)(e)),
            }
        }
        tokio::fs::create_dir_all(&images)
            .await
            .map_err(io(&images))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            deduper: Deduper::default(),
            names: Default::default(),
            images: Vec::new(),
        })
    }

    /// Adds an image, with its bytes when there are any to write to `images/`.
    pub async fn add(
        &mut self,
        image: DatasetImage,
        bytes: Option<&[u8]>,
    ) -> Result<Added, LayoutError> {
        let plain = !image.file_name.is_empty()
            && image.file_name != "."
            && image.file_name != ".."
            && !image.file_name.contains(['/', '\\', '\0']);
        if bytes.is_some() && !plain {
            return Ok(Added::BadName(format!(
                "{:?} is not a plain file name",
                image.file_name
            )));
        }
        if let Some(duplicate) = self.deduper.duplicate_of(&image) {
            return Ok(Added::Duplicate(duplicate));
        }
        if self.names.contains(&image.file_name) {
            return Ok(Added::BadName(format!(
                "another image is already named {:?}",
                image.file_name
            )));
        }
        if let Some(bytes) = bytes {
            let path = self.dir.join(IMAGES).join(&image.file_name);
            tokio::fs::write(&path, bytes).await.map_err(io(&path))?;
        }
        self.deduper.keep(&image);
        self.names.insert(image.file_name.clone());
        self.images.push(image);
        Ok(Added::Kept)
    }

    /// Splits the images and writes `annotations.json`; with no images,
    /// writes nothing (and leaves no empty `images/` behind).
    pub async fn close(self, split: Option<&SplitPlan>) -> Result<Option<Written>, LayoutError> {
        if self.images.is_empty() {
            let _ = tokio::fs::remove_dir(self.dir.join(IMAGES)).await;
            return Ok(None);
        }
        let splits = split.map(|plan| plan.assign(&self.images));
        let dataset = export::coco_dataset(&self.images, splits.as_deref());
        let json = serde_json::to_vec(&dataset).expect("a dataset serializes: plain data");
        let path = self.dir.join(ANNOTATIONS);
        let partial = self.dir.join(format!(".{ANNOTATIONS}.partial"));
        tokio::fs::write(&partial, json)
            .await
            .map_err(io(&partial))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(io(&path))?;
        Ok(Some(Written {
            annotations: path,
            images: self.images.len(),
            objects: dataset.annotations.len(),
            splits: splits.map(|s| Split::ALL.map(|side| s.iter().filter(|&&x| x == side).count())),
        }))
    }
}

/// What went into a dataset and what did not: the part of the export's and
/// the import's reports they share.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetOutcome {
    pub duplicates: Vec<Duplicate>,
    pub problems: Vec<Problem>,
    /// `None`: nothing could go in, and no `annotations.json` was written.
    pub written: Option<Written>,
}

impl DatasetOutcome {
    /// Records a problem, and says it as it happens.
    pub fn skip(&mut self, problem: Problem, progress: &impl Progress) {
        progress.skipped(&problem);
        self.problems.push(problem);
    }

    /// Records what became of an image read at `key`.
    pub fn added(&mut self, added: Added, key: String, progress: &impl Progress) {
        match added {
            Added::Kept => {}
            Added::Duplicate(d) => self.duplicates.push(d),
            Added::BadName(why) => self.skip(Problem { key, why }, progress),
        }
    }
}

/// Something that could not go into the dataset, named by where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// An S3 key, or a line and data row of a Labelbox export.
    pub key: String,
    pub why: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.why)
    }
}

/// Where a long run says how far it got (the CLI draws a progress bar).
pub trait Progress: Send + Sync {
    /// A stage of `total` steps begins.
    fn start(&self, stage: &str, total: u64);
    fn advance(&self);
    /// Something skipped, said as it happens.
    fn skipped(&self, problem: &Problem);
}

/// No progress shown.
impl Progress for () {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self) {}
    fn skipped(&self, _: &Problem) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use modelobs_core::export::ImageProvenance;

    fn image(name: &str, source: &str) -> DatasetImage {
        DatasetImage {
            file_name: name.into(),
            width: None,
            height: None,
            source: source.into(),
            time: Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).unwrap(),
            objects: Vec::new(),
            provenance: ImageProvenance {
                capture_id: None,
                captured_at: None,
                model: None,
                label_id: "l".into(),
                label_version: 0,
                label_source: "test".into(),
                sampling_reason: None,
                labelbox: None,
            },
        }
    }

    #[tokio::test]
    async fn names_are_checked_and_a_directory_is_never_written_twice() {
        let dir = modelobs_testkit::temp_dir("layout");
        let mut w = DatasetWriter::create(&dir).await.unwrap();
        assert_eq!(
            w.add(image("a.jpg", "1"), Some(b"A")).await.unwrap(),
            Added::Kept
        );
        for bad in ["../a.jpg", "x/y.jpg", ".."] {
            assert!(
                matches!(
                    w.add(image(bad, "2"), Some(b"B")).await.unwrap(),
                    Added::BadName(_)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            w.add(image("a.jpg", "3"), None).await.unwrap(),
            Added::BadName(_)
        ));
        // A name that is not written (no bytes) may be anything.
        assert_eq!(
            w.add(image("gs://bucket/b.jpg", "4"), None).await.unwrap(),
            Added::Kept
        );
        let written = w.close(None).await.unwrap().unwrap();
        assert_eq!(written.images, 2);
        assert_eq!(std::fs::read(dir.join("images/a.jpg")).unwrap(), b"A");
        assert_eq!(std::fs::read_dir(dir.join("images")).unwrap().count(), 1);
        assert!(matches!(
            DatasetWriter::create(&dir).await,
            Err(LayoutError::NotEmpty(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

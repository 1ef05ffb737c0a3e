//! A directory of photos with a COCO `annotations.json` beside them (or in
//! `images/` beside it: the layout `modelobs dataset export` writes).

use std::path::{Path, PathBuf};

use image::RgbImage;
use modelobs_core::BBox;
use modelobs_core::classes;
use modelobs_core::eval::coco_format::{self, Split};

use crate::error::DatasetError;

/// One labelled photo, decoded.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The file name inside the dataset directory (`horses.jpg`).
    pub file: String,
    pub image: RgbImage,
    /// Every visible object: COCO-80 class name and box in pixels.
    pub boxes: Vec<(String, BBox)>,
    /// The side of the split this photo is on (None: the file does not say).
    pub split: Option<Split>,
    /// What the photo was made from (itself, for a photo; see `CocoImage::source`).
    pub source: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    /// Where `annotations.json` is (the first one's, for [`Dataset::concat`]).
    pub dir: PathBuf,
    /// In the order of `annotations.json`'s `images`.
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Reads `dir/annotations.json` and decodes every image it names. Sizes
    /// must match the file's `width`/`height`, categories must be COCO's and
    /// boxes must lie inside their image: a dataset that loads is consistent.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, DatasetError> {
        let dir = dir.as_ref().to_path_buf();
        let ann_path = dir.join("annotations.json");
        let bytes = std::fs::read(&ann_path).map_err(|source| DatasetError::Io {
            path: ann_path.clone(),
            source,
        })?;
        let bad = |problem: String| DatasetError::Annotations {
            path: ann_path.clone(),
            problem,
        };
        let coco = coco_format::parse_dataset(&bytes).map_err(|e| bad(e.to_string()))?;
        // `modelobs dataset export`'s layout keeps the images in `images/`
        // (train/finetune.py reads both the same way).
        let images = match dir.join("images") {
            d if d.is_dir() => d,
            _ => dir.clone(),
        };

        let mut samples = Vec::with_capacity(coco.images.len());
        for img in &coco.images {
            let file = img
                .file_name
                .clone()
                .ok_or_else(|| bad(format!("image {} has no file_name", img.id)))?;
            let path = images.join(&file);
            let image = image::open(&path)
                .map_err(|source| DatasetError::Image {
                    path: path.clone(),
                    source,
                })?
                .to_rgb8();
            let (w, h) = image.dimensions();
            if img.width.is_some_and(|x| x != w) || img.height.is_some_and(|x| x != h) {
                return Err(bad(format!(
                    "{file} is {w}x{h}, the annotations say {:?}x{:?}",
                    img.width, img.height
                )));
            }
            let mut boxes = Vec::new();
            for a in coco.annotations.iter().filter(|a| a.image_id == img.id) {
                let class = u32::try_from(a.category_id)
                    .ok()
                    .and_then(classes::by_category_id)
                    .ok_or_else(|| {
                        bad(format!(
                            "annotation {}: category {} is not a COCO-80 category",
                            a.id, a.category_id
                        ))
                    })?;
                let b = BBox::from_xywh(a.bbox)
                    .map_err(|e| bad(format!("annotation {}: {e}", a.id)))?;
                if b.clamp(w, h) != b || b.area() <= 0.0 {
                    return Err(bad(format!(
                        "annotation {}: box {:?} is empty or outside {file} ({w}x{h})",
                        a.id, a.bbox
                    )));
                }
                boxes.push((class.name.to_string(), b));
            }
            samples.push(Sample {
                source: img.source.clone(),
                split: img.split,
                file,
                image,
                boxes,
            });
        }
        if let Some(a) = coco
            .annotations
            .iter()
            .find(|a| !coco.images.iter().any(|i| i.id == a.image_id))
        {
            return Err(bad(format!(
                "annotation {} refers to image {}, which is not listed",
                a.id, a.image_id
            )));
        }
        if samples.is_empty() {
            return Err(bad("no images".into()));
        }
        Ok(Self { dir, samples })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn get(&self, file: &str) -> Option<&Sample> {
        self.samples.iter().find(|s| s.file == file)
    }

    /// Only the samples on one side of the split (an error if none is).
    pub fn split(self, split: Split) -> Result<Self, DatasetError> {
        let samples: Vec<Sample> = self
            .samples
            .into_iter()
            .filter(|s| s.split == Some(split))
            .collect();
        if samples.is_empty() {
            return Err(DatasetError::Annotations {
                path: self.dir.join("annotations.json"),
                problem: format!("no image is on the {split} split"),
            });
        }
        Ok(Self {
            dir: self.dir,
            samples,
        })
    }

    /// Several datasets as one (`modelobs simulate` draws from photos and
    /// composites alike). File names stay relative to their own directory.
    pub fn concat(sets: Vec<Dataset>) -> Option<Self> {
        let mut sets = sets.into_iter();
        let mut first = sets.next()?;
        for more in sets {
            first.samples.extend(more.samples);
        }
        Some(first)
    }
}

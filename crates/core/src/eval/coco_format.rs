//! Standard COCO files: a ground-truth dataset (images, annotations,
//! categories) and a results list, evaluated like `COCOeval(gt, gt.loadRes(dt), "bbox")`.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

use super::accumulate::{Accumulated, CocoSummary, accumulate};
use super::image::{ClassEval, DtBox, GtBox, evaluate_image};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoDataset {
    pub images: Vec<CocoImage>,
    pub annotations: Vec<CocoAnnotation>,
    pub categories: Vec<CocoCategory>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoImage {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Our extension (COCO tools ignore it): which side of the train /
    /// validation / test split the image is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Our extension: what the image was made from (a source photo, a
    /// cut-out, a capture's image hash). Everything with one source stays
    /// on one side of the split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The side of a dataset split an image is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Split {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Split::Train),
            "validation" | "val" => Ok(Split::Validation),
            "test" => Ok(Split::Test),
            other => Err(CoreError::InvalidCoco(format!(
                "split must be train, validation or test, got {other:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoAnnotation {
    pub id: u64,
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f64; 4],
    /// pycocotools judges area ranges on this field; when a file leaves it
    /// out we take `w * h` (pycocotools would stop with a KeyError).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<f64>,
    #[serde(default, deserialize_with = "flag")]
    pub iscrowd: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoCategory {
    pub id: u64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supercategory: Option<String>,
}

/// One entry of a results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoResult {
    pub image_id: u64,
    pub category_id: u64,
    pub bbox: [f64; 4],
    pub score: f64,
}

/// `iscrowd` is written as 0/1 or as a boolean.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(b),
        Flag::Int(0) => Ok(false),
        Flag::Int(1) => Ok(true),
        Flag::Int(n) => Err(de::Error::custom(format!(
            "iscrowd must be 0 or 1, got {n}"
        ))),
    }
}

pub fn parse_dataset(bytes: &[u8]) -> Result<CocoDataset, CoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| CoreError::InvalidCoco(format!("not a COCO ground-truth dataset: {e}")))
}

pub fn parse_results(bytes: &[u8]) -> Result<Vec<CocoResult>, CoreError> {
    let results: Vec<CocoResult> = serde_json::from_slice(bytes)
        .map_err(|e| CoreError::InvalidCoco(format!("not a COCO results list: {e}")))?;
    if let Some((i, r)) = results
        .iter()
        .enumerate()
        .find(|(_, r)| !r.score.is_finite())
    {
        return Err(CoreError::InvalidCoco(format!(
            "result {i} (image {}) has a non-finite score {}",
            r.image_id, r.score
        )));
    }
    Ok(results)
}

/// The evaluation of a whole dataset: per-image results, accumulated.
pub struct DatasetEval {
    /// Ascending image ids, and each image's class evaluations.
    pub images: Vec<(u64, Vec<ClassEval>)>,
    pub accumulated: Accumulated,
}

impl DatasetEval {
    pub fn summary(&self, categories: &[CocoCategory]) -> CocoSummary {
        let names: HashMap<u64, &str> =
            categories.iter().map(|c| (c.id, c.name.as_str())).collect();
        self.accumulated.summarize(|id| {
            names
                .get(&id)
                .map_or_else(|| id.to_string(), |n| n.to_string())
        })
    }
}

/// Evaluates `results` against `gt` as pycocotools' bbox COCOeval does.
/// Results on images the dataset doesn't have are an error (pycocotools
/// refuses them too).
pub fn evaluate_dataset(
    gt: &CocoDataset,
    results: &[CocoResult],
) -> Result<DatasetEval, CoreError> {
    let mut image_ids: Vec<u64> = gt.images.iter().map(|i| i.id).collect();
    image_ids.sort_unstable();
    image_ids.dedup();
    let mut category_ids: Vec<u64> = gt.categories.iter().map(|c| c.id).collect();
    category_ids.sort_unstable();
    category_ids.dedup();

    let slot = |image_id: u64| image_ids.binary_search(&image_id).ok();
    if let Some(r) = results.iter().find(|r| slot(r.image_id).is_none()) {
        return Err(CoreError::InvalidCoco(format!(
            "results name image {} that the ground truth does not have",
            r.image_id
        )));
    }

    // Bucket annotations by image, keeping file order within an image.
    let mut by_image: Vec<Vec<usize>> = vec![Vec::new(); image_ids.len()];
    for (ai, a) in gt.annotations.iter().enumerate() {
        if let Some(i) = slot(a.image_id) {
            by_image[i].push(ai);
        }
    }
    // pycocotools indexes annotations by id, so of several with one id the
    // last stands in for all of them (in its own image). Rare, but we agree.
    let mut last_with_id: HashMap<u64, usize> = HashMap::new();
    let mut seen: Vec<u64> = gt.annotations.iter().map(|a| a.id).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        for (ai, a) in gt.annotations.iter().enumerate() {
            last_with_id.insert(a.id, ai);
        }
    }
    let mut gts: Vec<Vec<GtBox>> = vec![Vec::new(); image_ids.len()];
    for ai in by_image.into_iter().flatten() {
        if category_ids
            .binary_search(&gt.annotations[ai].category_id)
            .is_err()
        {
            continue;
        }
        let a = &gt.annotations[*last_with_id.get(&gt.annotations[ai].id).unwrap_or(&ai)];
        if let Some(i) = slot(a.image_id) {
            gts[i].push(GtBox {
                id: a.id,
                category_id: a.category_id,
                bbox: a.bbox,
                area: a.area.unwrap_or(a.bbox[2] * a.bbox[3]),
                iscrowd: a.iscrowd,
            });
        }
    }
    let mut dts: Vec<Vec<DtBox>> = vec![Vec::new(); image_ids.len()];
    for r in results {
        if let Some(i) = slot(r.image_id) {
            dts[i].push(DtBox {
                category_id: r.category_id,
                bbox: r.bbox,
                score: r.score,
            });
        }
    }

    let images: Vec<(u64, Vec<ClassEval>)> = image_ids
        .par_iter()
        .zip(gts.par_iter().zip(dts.par_iter()))
        .map(|(&id, (g, d))| (id, evaluate_image(g, d, &category_ids)))
        .collect();
    let accumulated = accumulate(images.iter().map(|(_, c)| c.as_slice()), &category_ids);
    Ok(DatasetEval {
        images,
        accumulated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_dataset_and_flags() {
        let gt = parse_dataset(
            br#"{"images":[{"id":1,"width":10,"height":10}],
                 "annotations":[{"id":1,"image_id":1,"category_id":3,"bbox":[0,0,5,5],"iscrowd":true,"segmentation":[[1,2]]},
                                {"id":2,"image_id":1,"category_id":3,"bbox":[0,0,5,5],"area":20,"iscrowd":0}],
                 "categories":[{"id":3,"name":"car"}]}"#,
        )
        .unwrap();
        assert!(gt.annotations[0].iscrowd);
        assert_eq!(gt.annotations[1].area, Some(20.0));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = parse_dataset(br#"{"images":[]}"#).unwrap_err().to_string();
        assert!(err.contains("missing field `annotations`"), "{err}");
        let err = parse_results(br#"[{"image_id":1,"category_id":1,"bbox":[0,0,1],"score":1}]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("results list"), "{err}");
        let gt =
            parse_dataset(br#"{"images":[{"id":1}],"annotations":[],"categories":[]}"#).unwrap();
        let res = parse_results(br#"[{"image_id":9,"category_id":1,"bbox":[0,0,1,1],"score":1}]"#)
            .unwrap();
        let err = evaluate_dataset(&gt, &res).err().unwrap().to_string();
        assert!(err.contains("image 9"), "{err}");
    }
}

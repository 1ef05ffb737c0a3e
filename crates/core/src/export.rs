//! Labelled captures as standard COCO files: the ground truth as a dataset,
//! the model's answers as a results list. Used to retrain, and to check our
//! windows against any COCO evaluator.

use crate::classes;
use crate::eval::coco_format::{CocoAnnotation, CocoCategory, CocoDataset, CocoImage, CocoResult};
use crate::records::{CaptureRecord, GroundTruth};

/// COCO image ids are 1, 2, ... in capture-id order, the order windows
/// accumulate in; all 80 COCO categories are listed. Deleted labels are left out.
pub fn to_coco(labelled: &[(CaptureRecord, GroundTruth)]) -> (CocoDataset, Vec<CocoResult>) {
    let mut items: Vec<&(CaptureRecord, GroundTruth)> =
        labelled.iter().filter(|(_, gt)| !gt.deleted).collect();
    items.sort_by_key(|(c, _)| c.id);
    let mut dataset = CocoDataset {
        images: Vec::with_capacity(items.len()),
        annotations: Vec::new(),
        categories: classes::coco80()
            .map(|c| CocoCategory {
                id: u64::from(c.category_id),
                name: c.name.to_string(),
                supercategory: None,
            })
            .collect(),
    };
    let mut results = Vec::new();
    let category = |class_id: u16| classes::by_index(class_id).map(|c| u64::from(c.category_id));
    for (i, (capture, truth)) in items.iter().enumerate() {
        let image_id = i as u64 + 1;
        dataset.images.push(CocoImage {
            id: image_id,
            width: Some(capture.image.width),
            height: Some(capture.image.height),
            file_name: Some(capture.image.key.clone()),
            split: None,
            source: None,
        });
        for o in &truth.objects {
            if let Some(category_id) = category(o.class_id) {
                dataset.annotations.push(CocoAnnotation {
                    id: dataset.annotations.len() as u64 + 1,
                    image_id,
                    category_id,
                    bbox: o.bbox.to_xywh(),
                    area: Some(o.bbox.area()),
                    iscrowd: o.iscrowd,
                });
            }
        }
        for d in &capture.detections {
            if let Some(category_id) = category(d.class_id) {
                results.push(CocoResult {
                    image_id,
                    category_id,
                    bbox: d.bbox.to_xywh(),
                    score: d.score,
                });
            }
        }
    }
    (dataset, results)
}

//! The COCO-80 classes: the model's class index (0..80), COCO's category id
//! (1..90, with gaps), the name, and whether we report it as an animal.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CocoClass {
    /// Index in a COCO-80 model's output (0..80).
    pub index: u16,
    /// COCO's `category_id` in annotation files.
    pub category_id: u32,
    pub name: &'static str,
    /// One of the ten animal classes this product reports by default.
    pub animal: bool,
}

/// The ten animal classes we report by default.
pub const ANIMALS: [&str; 10] = [
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
];

const COCO80: [(u32, &str); 80] = [
    (1, "person"),
    (2, "bicycle"),
    (3, "car"),
    (4, "motorcycle"),
    (5, "airplane"),
    (6, "bus"),
    (7, "train"),
    (8, "truck"),
    (9, "boat"),
    (10, "traffic light"),
    (11, "fire hydrant"),
    (13, "stop sign"),
    (14, "parking meter"),
    (15, "bench"),
    (16, "bird"),
    (17, "cat"),
    (18, "dog"),
    (19, "horse"),
    (20, "sheep"),
    (21, "cow"),
    (22, "elephant"),
    (23, "bear"),
    (24, "zebra"),
    (25, "giraffe"),
    (27, "backpack"),
    (28, "umbrella"),
    (31, "handbag"),
    (32, "tie"),
    (33, "suitcase"),
    (34, "frisbee"),
    (35, "skis"),
    (36, "snowboard"),
    (37, "sports ball"),
    (38, "kite"),
    (39, "baseball bat"),
    (40, "baseball glove"),
    (41, "skateboard"),
    (42, "surfboard"),
    (43, "tennis racket"),
    (44, "bottle"),
    (46, "wine glass"),
    (47, "cup"),
    (48, "fork"),
    (49, "knife"),
    (50, "spoon"),
    (51, "bowl"),
    (52, "banana"),
    (53, "apple"),
    (54, "sandwich"),
    (55, "orange"),
    (56, "broccoli"),
    (57, "carrot"),
    (58, "hot dog"),
    (59, "pizza"),
    (60, "donut"),
    (61, "cake"),
    (62, "chair"),
    (63, "couch"),
    (64, "potted plant"),
    (65, "bed"),
    (67, "dining table"),
    (70, "toilet"),
    (72, "tv"),
    (73, "laptop"),
    (74, "mouse"),
    (75, "remote"),
    (76, "keyboard"),
    (77, "cell phone"),
    (78, "microwave"),
    (79, "oven"),
    (80, "toaster"),
    (81, "sink"),
    (82, "refrigerator"),
    (84, "book"),
    (85, "clock"),
    (86, "vase"),
    (87, "scissors"),
    (88, "teddy bear"),
    (89, "hair drier"),
    (90, "toothbrush"),
];

/// All 80 classes in model order.
pub fn coco80() -> impl ExactSizeIterator<Item = CocoClass> {
    COCO80
        .iter()
        .enumerate()
        .map(|(index, &(category_id, name))| CocoClass {
            index: index as u16,
            category_id,
            name,
            animal: ANIMALS.contains(&name),
        })
}

pub fn by_index(index: u16) -> Option<CocoClass> {
    coco80().nth(usize::from(index))
}

pub fn by_name(name: &str) -> Option<CocoClass> {
    coco80().find(|c| c.name == name)
}

pub fn by_category_id(category_id: u32) -> Option<CocoClass> {
    coco80().find(|c| c.category_id == category_id)
}

/// The animal classes, in model order.
pub fn animals() -> impl Iterator<Item = CocoClass> {
    coco80().filter(|c| c.animal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighty_classes_with_unique_ids_and_names() {
        let all: Vec<_> = coco80().collect();
        assert_eq!(all.len(), 80);
        let mut ids: Vec<_> = all.iter().map(|c| c.category_id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 80, "category ids are increasing and unique");
        assert_eq!(by_index(0).unwrap().name, "person");
        assert_eq!(by_index(79).unwrap().category_id, 90);
        assert!(by_index(80).is_none());
    }

    #[test]
    fn the_ten_animals_are_marked() {
        let names: Vec<_> = animals().map(|c| c.name).collect();
        assert_eq!(names, ANIMALS);
        let cat = by_name("cat").unwrap();
        assert_eq!((cat.index, cat.category_id, cat.animal), (15, 17, true));
        assert!(!by_name("person").unwrap().animal);
        assert_eq!(by_category_id(25).unwrap().name, "giraffe");
    }
}

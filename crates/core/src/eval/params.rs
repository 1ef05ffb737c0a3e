//! COCOeval's default bbox parameters, computed the way pycocotools computes
//! them (numpy `linspace`), so every threshold is the same double.

/// IoU thresholds .50:.05:.95.
pub const NUM_IOU_THRS: usize = 10;
/// Recall thresholds 0:.01:1.
pub const NUM_REC_THRS: usize = 101;
/// `all`, `small`, `medium`, `large`.
pub const NUM_AREAS: usize = 4;
/// Detections kept per image and class (the largest of `MAX_DETS`).
pub const MAX_DETS_PER_CELL: usize = 100;
pub const MAX_DETS: [usize; 3] = [1, 10, MAX_DETS_PER_CELL];

pub const AREA_NAMES: [&str; NUM_AREAS] = ["all", "small", "medium", "large"];
/// `[lo, hi]`, both inclusive, in square pixels of the ground truth's `area`.
pub const AREA_RANGES: [[f64; 2]; NUM_AREAS] = [
    [0.0, 1e5 * 1e5],
    [0.0, 32.0 * 32.0],
    [32.0 * 32.0, 96.0 * 96.0],
    [96.0 * 96.0, 1e5 * 1e5],
];

/// numpy's `linspace(start, stop, num)` with `endpoint=True`:
/// `i * step + start`, the last element set to `stop`.
fn linspace<const N: usize>(start: f64, stop: f64) -> [f64; N] {
    let step = (stop - start) / (N - 1) as f64;
    let mut out = [0.0; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = i as f64 * step + start;
    }
    out[N - 1] = stop;
    out
}

pub fn iou_thresholds() -> [f64; NUM_IOU_THRS] {
    linspace::<NUM_IOU_THRS>(0.5, 0.95)
}

pub fn recall_thresholds() -> [f64; NUM_REC_THRS] {
    linspace::<NUM_REC_THRS>(0.0, 1.0)
}

/// The index of an IoU threshold in the grid, compared as pycocotools does
/// (`np.where(iouThr == p.iouThrs)`), or `None` when it is not on the grid.
pub fn iou_threshold_index(iou: f64) -> Option<usize> {
    iou_thresholds().iter().position(|&t| t == iou)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_match_pycocotools() {
        let t = iou_thresholds();
        assert_eq!(t[0], 0.5);
        assert_eq!(t[9], 0.95);
        // pycocotools finds .75 by equality: the grid must hold that exact double.
        assert_eq!(iou_threshold_index(0.75), Some(5));
        assert_eq!(iou_threshold_index(0.5), Some(0));
        let r = recall_thresholds();
        assert_eq!((r[0], r[100]), (0.0, 1.0));
        assert_eq!(r[1], 0.01);
    }
}

//! Bounding boxes: pixel `x1,y1,x2,y2` inside the project, and the other
//! spellings we meet at the edges (COCO `[x, y, w, h]`, Labelbox
//! `{top, left, height, width}`, coordinates normalised to the image size).

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// An axis-aligned box in pixels of the original image, origin top-left,
/// `x2 >= x1` and `y2 >= y1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

/// Labelbox's box: pixels, origin top-left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelboxBox {
    pub top: f64,
    pub left: f64,
    pub height: f64,
    pub width: f64,
}

/// A box with every coordinate divided by the image width or height (0..1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NormalizedBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BBox {
    /// A checked box: finite coordinates, not inverted.
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Result<Self, CoreError> {
        let b = Self { x1, y1, x2, y2 };
        b.validate()?;
        Ok(b)
    }

    /// Checks a box that came from outside (a record, a label, a request).
    pub fn validate(&self) -> Result<(), CoreError> {
        let all_finite = [self.x1, self.y1, self.x2, self.y2]
            .iter()
            .all(|v| v.is_finite());
        if !all_finite {
            return Err(CoreError::InvalidBox(format!(
                "coordinates must be finite numbers, got {self:?}"
            )));
        }
        if self.x2 < self.x1 || self.y2 < self.y1 {
            return Err(CoreError::InvalidBox(format!(
                "x2/y2 must not be smaller than x1/y1, got {self:?}"
            )));
        }
        Ok(())
    }

    /// From COCO `[x, y, width, height]`; negative sizes are an error.
    pub fn from_xywh(xywh: [f64; 4]) -> Result<Self, CoreError> {
        let [x, y, w, h] = xywh;
        Self::new(x, y, x + w, y + h)
    }

    /// COCO `[x, y, width, height]`.
    pub fn to_xywh(&self) -> [f64; 4] {
        [self.x1, self.y1, self.width(), self.height()]
    }

    pub fn from_labelbox(b: LabelboxBox) -> Result<Self, CoreError> {
        Self::from_xywh([b.left, b.top, b.width, b.height])
    }

    pub fn to_labelbox(&self) -> LabelboxBox {
        LabelboxBox {
            top: self.y1,
            left: self.x1,
            height: self.height(),
            width: self.width(),
        }
    }

    pub fn to_normalized(&self, image_width: u32, image_height: u32) -> NormalizedBox {
        let (w, h) = (f64::from(image_width), f64::from(image_height));
        NormalizedBox {
            x1: self.x1 / w,
            y1: self.y1 / h,
            x2: self.x2 / w,
            y2: self.y2 / h,
        }
    }

    pub fn from_normalized(
        b: NormalizedBox,
        image_width: u32,
        image_height: u32,
    ) -> Result<Self, CoreError> {
        let (w, h) = (f64::from(image_width), f64::from(image_height));
        Self::new(b.x1 * w, b.y1 * h, b.x2 * w, b.y2 * h)
    }

    pub fn width(&self) -> f64 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f64 {
        self.y2 - self.y1
    }

    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// The box cut to the image.
    pub fn clamp(&self, image_width: u32, image_height: u32) -> Self {
        let (w, h) = (f64::from(image_width), f64::from(image_height));
        Self {
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
            x2: self.x2.clamp(0.0, w),
            y2: self.y2.clamp(0.0, h),
        }
    }

    /// Intersection over union, computed exactly as COCO does it.
    pub fn iou(&self, other: &Self) -> f64 {
        coco_iou(&self.to_xywh(), &other.to_xywh(), false)
    }
}

/// IoU of a detection `d` and a ground truth `g`, both COCO `[x, y, w, h]`,
/// in the same operation order as pycocotools' `bbIou` (maskApi.c) so that
/// thresholds compare bit for bit. For a crowd ground truth the union is the
/// detection's own area.
#[inline]
pub fn coco_iou(d: &[f64; 4], g: &[f64; 4], g_is_crowd: bool) -> f64 {
    let w = (d[2] + d[0]).min(g[2] + g[0]) - d[0].max(g[0]);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (d[3] + d[1]).min(g[3] + g[1]) - d[1].max(g[1]);
    if h <= 0.0 {
        return 0.0;
    }
    let da = d[2] * d[3];
    let i = w * h;
    let u = if g_is_crowd { da } else { da + g[2] * g[3] - i };
    i / u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let b = BBox::new(10.0, 20.0, 110.0, 70.0).unwrap();
        assert_eq!(b.to_xywh(), [10.0, 20.0, 100.0, 50.0]);
        assert_eq!(BBox::from_xywh(b.to_xywh()).unwrap(), b);
        let lb = b.to_labelbox();
        assert_eq!(
            lb,
            LabelboxBox {
                top: 20.0,
                left: 10.0,
                height: 50.0,
                width: 100.0
            }
        );
        assert_eq!(BBox::from_labelbox(lb).unwrap(), b);
        let n = b.to_normalized(200, 100);
        assert_eq!(
            n,
            NormalizedBox {
                x1: 0.05,
                y1: 0.2,
                x2: 0.55,
                y2: 0.7
            }
        );
        let back = BBox::from_normalized(n, 200, 100).unwrap();
        assert!(back.iou(&b) > 1.0 - 1e-12, "{back:?}");
    }

    #[test]
    fn rejects_inverted_and_non_finite_boxes() {
        assert!(BBox::new(10.0, 0.0, 5.0, 1.0).is_err());
        assert!(BBox::new(0.0, 0.0, f64::NAN, 1.0).is_err());
        assert!(BBox::from_xywh([0.0, 0.0, -1.0, 1.0]).is_err());
    }

    #[test]
    fn iou_of_known_pairs() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0).unwrap();
        let b = BBox::new(5.0, 0.0, 15.0, 10.0).unwrap();
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-15);
        assert_eq!(a.iou(&a), 1.0);
        let far = BBox::new(20.0, 20.0, 30.0, 30.0).unwrap();
        assert_eq!(a.iou(&far), 0.0);
        // touching edges do not overlap
        let touching = BBox::new(10.0, 0.0, 20.0, 10.0).unwrap();
        assert_eq!(a.iou(&touching), 0.0);
    }

    #[test]
    fn crowd_iou_divides_by_the_detection_area() {
        let d = [0.0, 0.0, 10.0, 10.0];
        let g = [0.0, 0.0, 100.0, 100.0];
        assert_eq!(coco_iou(&d, &g, true), 1.0);
        assert!((coco_iou(&d, &g, false) - 0.01).abs() < 1e-15);
    }

    #[test]
    fn clamp_cuts_to_the_image() {
        let b = BBox {
            x1: -5.0,
            y1: 3.0,
            x2: 700.0,
            y2: 500.0,
        };
        assert_eq!(
            b.clamp(640, 480),
            BBox {
                x1: 0.0,
                y1: 3.0,
                x2: 640.0,
                y2: 480.0
            }
        );
    }
}

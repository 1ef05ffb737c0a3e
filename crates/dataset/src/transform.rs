//! Image transforms that carry the ground-truth boxes with them.
//!
//! Box coordinates are continuous pixels: pixel `(i, j)` covers
//! `[i, i+1) x [j, j+1)`, so a flip maps `x` to `width - x` and a clockwise
//! quarter turn maps `(x, y)` to `(height - y, x)` with no half-pixel fudge.
//! Sizes that must be whole pixels (crop, pad, scale) are rounded once and
//! the boxes follow the rounded geometry, not the requested fractions.

use std::fmt;
use std::str::FromStr;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use modelobs_core::BBox;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dataset::Sample;
use crate::error::DatasetError;

/// Labelled objects: COCO-80 class name and box in pixels.
pub type Boxes = Vec<(String, BBox)>;

/// The quality of the JPEG [`apply`] returns, unless the chain ends in `jpeg=Q`.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

/// A box narrower or lower than this after a geometric transform is dropped:
/// nobody labels a 1-pixel sliver of an animal cut off by a crop.
pub const MIN_BOX_SIDE_PX: f64 = 2.0;

/// The border colour of `pad`: the mid grey detectors letterbox with.
const PAD_GREY: Rgb<u8> = Rgb([114, 114, 114]);

/// Larger outputs are refused rather than allocated (a typo like `scale=80`).
const MAX_OUTPUT_PIXELS: u64 = 64 << 20;

/// One step of a chain. Geometric steps move the boxes; photometric ones
/// keep them. Written as in a spec: `flip`, `rot90`, `crop=x:y:w:h`,
/// `scale=f`, `pad=f` or `pad=l:t:r:b`, `bright=f`, `contrast=f`,
/// `blur=sigma`, `noise=sigma`, `jpeg=q`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transform {
    /// Mirror left-right.
    FlipHorizontal,
    /// A quarter turn clockwise.
    Rotate90,
    /// Keep a rectangle given as fractions of the image's width and height.
    Crop {
        x: f64,
        y: f64,
        width: f64,
        height: f64,
    },
    /// Resize by this factor (bilinear, antialiased when shrinking).
    Scale(f64),
    /// Grey borders, each a fraction of the image's width (left, right) or
    /// height (top, bottom).
    Pad {
        left: f64,
        top: f64,
        right: f64,
        bottom: f64,
    },
    /// Multiply every channel: 0.5 is one stop darker.
    Brightness(f64),
    /// Scale each channel's distance from the image's mean grey.
    Contrast(f64),
    /// Gaussian blur with this sigma in pixels.
    Blur(f64),
    /// Additive Gaussian noise with this standard deviation in grey levels,
    /// drawn from the chain's seed.
    Noise(f64),
    /// Encode at this JPEG quality (1–100) and decode again.
    Jpeg(u8),
}

impl Transform {
    pub fn is_geometric(&self) -> bool {
        matches!(
            self,
            Self::FlipHorizontal
                | Self::Rotate90
                | Self::Crop { .. }
                | Self::Scale(_)
                | Self::Pad { .. }
        )
    }

    /// Where a step belongs when conditions are combined: the scene
    /// (geometry), then the optics (light, contrast, focus), then the sensor
    /// (noise), then the encoder.
    pub(crate) fn stage(&self) -> u8 {
        match self {
            t if t.is_geometric() => 0,
            Self::Brightness(_) | Self::Contrast(_) | Self::Blur(_) => 1,
            Self::Noise(_) => 2,
            _ => 3,
        }
    }

    fn validate(&self) -> Result<(), String> {
        fn within(name: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name}: {v} is not in [{lo}, {hi}]"))
            }
        }
        match *self {
            Self::FlipHorizontal | Self::Rotate90 => Ok(()),
            Self::Crop {
                x,
                y,
                width,
                height,
            } => {
                within("crop x", x, 0.0, 1.0)?;
                within("crop y", y, 0.0, 1.0)?;
                within("crop width", width, f64::MIN_POSITIVE, 1.0)?;
                within("crop height", height, f64::MIN_POSITIVE, 1.0)?;
                if x + width > 1.0 + 1e-9 || y + height > 1.0 + 1e-9 {
                    return Err(format!(
                        "crop {x}:{y}:{width}:{height} reaches outside the image (x + w and y + h must be <= 1)"
                    ));
                }
                Ok(())
            }
            Self::Scale(f) => within("scale", f, f64::MIN_POSITIVE, 8.0),
            Self::Pad {
                left,
                top,
                right,
                bottom,
            } => {
                for v in [left, top, right, bottom] {
                    within("pad", v, 0.0, 4.0)?;
                }
                Ok(())
            }
            Self::Brightness(f) => within("bright", f, 0.0, 8.0),
            Self::Contrast(f) => within("contrast", f, 0.0, 8.0),
            Self::Blur(s) => within("blur", s, 0.0, 50.0),
            Self::Noise(s) => within("noise", s, 0.0, 255.0),
            Self::Jpeg(q) => {
                if (1..=100).contains(&q) {
                    Ok(())
                } else {
                    Err(format!("jpeg: quality {q} is not in [1, 100]"))
                }
            }
        }
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{}` of an f64 is the shortest text that parses back to the same value.
        match *self {
            Self::FlipHorizontal => write!(f, "flip"),
            Self::Rotate90 => write!(f, "rot90"),
            Self::Crop {
                x,
                y,
                width,
                height,
            } => write!(f, "crop={x}:{y}:{width}:{height}"),
            Self::Scale(s) => write!(f, "scale={s}"),
            Self::Pad {
                left,
                top,
                right,
                bottom,
            } => {
                if left == top && top == right && right == bottom {
                    write!(f, "pad={left}")
                } else {
                    write!(f, "pad={left}:{top}:{right}:{bottom}")
                }
            }
            Self::Brightness(v) => write!(f, "bright={v}"),
            Self::Contrast(v) => write!(f, "contrast={v}"),
            Self::Blur(v) => write!(f, "blur={v}"),
            Self::Noise(v) => write!(f, "noise={v}"),
            Self::Jpeg(q) => write!(f, "jpeg={q}"),
        }
    }
}

impl FromStr for Transform {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let spec = |problem: String| DatasetError::Spec(format!("transform {s:?}: {problem}"));
        let (name, arg) = match s.trim().split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s.trim(), None),
        };
        let numbers = |want: &[usize]| -> Result<Vec<f64>, DatasetError> {
            let arg = arg.ok_or_else(|| spec(format!("{name} needs a value ({name}=...)")))?;
            let values = arg
                .split(':')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| spec(format!("{v:?} is not a number")))
                })
                .collect::<Result<Vec<f64>, _>>()?;
            if !want.contains(&values.len()) {
                let counts: Vec<String> = want.iter().map(usize::to_string).collect();
                return Err(spec(format!(
                    "{name} takes {} value(s), got {}",
                    counts.join(" or "),
                    values.len()
                )));
            }
            Ok(values)
        };
        let no_arg = |t: Transform| {
            if arg.is_some() {
                Err(spec(format!("{name} takes no value")))
            } else {
                Ok(t)
            }
        };
        let t = match name {
            "flip" => no_arg(Self::FlipHorizontal)?,
            "rot90" => no_arg(Self::Rotate90)?,
            "crop" => {
                let v = numbers(&[4])?;
                Self::Crop {
                    x: v[0],
                    y: v[1],
                    width: v[2],
                    height: v[3],
                }
            }
            "scale" => Self::Scale(numbers(&[1])?[0]),
            "pad" => {
                let v = numbers(&[1, 4])?;
                if v.len() == 1 {
                    Self::Pad {
                        left: v[0],
                        top: v[0],
                        right: v[0],
                        bottom: v[0],
                    }
                } else {
                    Self::Pad {
                        left: v[0],
                        top: v[1],
                        right: v[2],
                        bottom: v[3],
                    }
                }
            }
            "bright" => Self::Brightness(numbers(&[1])?[0]),
            "contrast" => Self::Contrast(numbers(&[1])?[0]),
            "blur" => Self::Blur(numbers(&[1])?[0]),
            "noise" => Self::Noise(numbers(&[1])?[0]),
            "jpeg" => {
                let q = numbers(&[1])?[0];
                if q.fract() != 0.0 || !(1.0..=100.0).contains(&q) {
                    return Err(spec(format!(
                        "quality {q} is not a whole number in [1, 100]"
                    )));
                }
                Self::Jpeg(q as u8)
            }
            "" => return Err(spec("empty step".into())),
            other => {
                return Err(spec(format!(
                    "unknown transform {other:?} (flip, rot90, crop, scale, pad, bright, contrast, blur, noise, jpeg)"
                )));
            }
        };
        t.validate().map_err(spec)?;
        Ok(t)
    }
}

impl Serialize for Transform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Transform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A chain written as a spec: `flip,scale=0.5,bright=0.6,blur=2,jpeg=40`.
/// The empty string is the empty chain.
pub fn parse_chain(spec: &str) -> Result<Vec<Transform>, DatasetError> {
    if spec.trim().is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',').map(str::parse).collect()
}

/// The spec of a chain; [`parse_chain`] reads it back to the same chain.
pub fn format_chain(chain: &[Transform]) -> String {
    chain
        .iter()
        .map(Transform::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `transforms` on a sample: the JPEG the simulator sends and the
/// boxes a perfect labeler would draw on it. `seed` drives the noise: the
/// same sample, chain and seed give the same bytes.
pub fn apply(
    sample: &Sample,
    transforms: &[Transform],
    seed: u64,
) -> Result<(Vec<u8>, Boxes), DatasetError> {
    let (image, boxes, last_jpeg) = run(&sample.image, &sample.boxes, transforms, seed)?;
    let bytes = match last_jpeg {
        Some(bytes) => bytes,
        None => encode_jpeg(&image, DEFAULT_JPEG_QUALITY)?,
    };
    Ok((bytes, boxes))
}

/// [`apply`] without the final encoding: the transformed pixels.
pub fn apply_image(
    image: &RgbImage,
    boxes: &[(String, BBox)],
    transforms: &[Transform],
    seed: u64,
) -> Result<(RgbImage, Boxes), DatasetError> {
    let (image, boxes, _) = run(image, boxes, transforms, seed)?;
    Ok((image, boxes))
}

pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, DatasetError> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100)).encode_image(image)?;
    Ok(bytes)
}

type Run = (RgbImage, Boxes, Option<Vec<u8>>);

fn run(
    image: &RgbImage,
    boxes: &[(String, BBox)],
    transforms: &[Transform],
    seed: u64,
) -> Result<Run, DatasetError> {
    for t in transforms {
        t.validate()
            .map_err(|p| DatasetError::Spec(format!("transform {t}: {p}")))?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut image = image.clone();
    let mut boxes = boxes.to_vec();
    let mut last_jpeg = None;
    for t in transforms {
        last_jpeg = None;
        match *t {
            Transform::Jpeg(q) => {
                let bytes = encode_jpeg(&image, q)?;
                image = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)?
                    .to_rgb8();
                last_jpeg = Some(bytes);
            }
            Transform::Noise(sigma) => add_noise(&mut image, sigma, &mut rng),
            t if t.is_geometric() => {
                let (next, map) = geometric(&image, t)?;
                let (w, h) = next.dimensions();
                boxes = boxes
                    .into_iter()
                    .filter_map(|(class, b)| {
                        let b = map(b).clamp(w, h);
                        (b.width() >= MIN_BOX_SIDE_PX && b.height() >= MIN_BOX_SIDE_PX)
                            .then_some((class, b))
                    })
                    .collect();
                image = next;
            }
            t => photometric(&mut image, t),
        }
    }
    Ok((image, boxes, last_jpeg))
}

type BoxMap = Box<dyn Fn(BBox) -> BBox>;

/// The transformed image and where a box of the input goes (unclipped).
fn geometric(image: &RgbImage, t: Transform) -> Result<(RgbImage, BoxMap), DatasetError> {
    let (w, h) = image.dimensions();
    let (wf, hf) = (f64::from(w), f64::from(h));
    let out_size = |nw: u64, nh: u64| {
        if nw * nh > MAX_OUTPUT_PIXELS {
            Err(DatasetError::Spec(format!(
                "transform {t}: {w}x{h} would become {nw}x{nh}, over {MAX_OUTPUT_PIXELS} pixels"
            )))
        } else {
            Ok(())
        }
    };
    Ok(match t {
        Transform::FlipHorizontal => (
            imageops::flip_horizontal(image),
            Box::new(move |b: BBox| BBox {
                x1: wf - b.x2,
                y1: b.y1,
                x2: wf - b.x1,
                y2: b.y2,
            }),
        ),
        Transform::Rotate90 => (
            imageops::rotate90(image),
            Box::new(move |b: BBox| BBox {
                x1: hf - b.y2,
                y1: b.x1,
                x2: hf - b.y1,
                y2: b.x2,
            }),
        ),
        Transform::Crop {
            x,
            y,
            width,
            height,
        } => {
            let x0 = round_px(x * wf).min(w - 1);
            let y0 = round_px(y * hf).min(h - 1);
            let cw = round_px(width * wf).clamp(1, w - x0);
            let ch = round_px(height * hf).clamp(1, h - y0);
            let (dx, dy) = (f64::from(x0), f64::from(y0));
            (
                imageops::crop_imm(image, x0, y0, cw, ch).to_image(),
                Box::new(move |b: BBox| BBox {
                    x1: b.x1 - dx,
                    y1: b.y1 - dy,
                    x2: b.x2 - dx,
                    y2: b.y2 - dy,
                }),
            )
        }
        Transform::Scale(f) => {
            let nw = round_px(f * wf).max(1);
            let nh = round_px(f * hf).max(1);
            out_size(u64::from(nw), u64::from(nh))?;
            // The boxes follow the rounded size, which is what the pixels did.
            let (sx, sy) = (f64::from(nw) / wf, f64::from(nh) / hf);
            (
                imageops::resize(image, nw, nh, FilterType::Triangle),
                Box::new(move |b: BBox| BBox {
                    x1: b.x1 * sx,
                    y1: b.y1 * sy,
                    x2: b.x2 * sx,
                    y2: b.y2 * sy,
                }),
            )
        }
        Transform::Pad {
            left,
            top,
            right,
            bottom,
        } => {
            let (l, t_, r, b_) = (
                round_px(left * wf),
                round_px(top * hf),
                round_px(right * wf),
                round_px(bottom * hf),
            );
            let (nw, nh) = (
                u64::from(w) + u64::from(l) + u64::from(r),
                u64::from(h) + u64::from(t_) + u64::from(b_),
            );
            out_size(nw, nh)?;
            let mut canvas = RgbImage::from_pixel(nw as u32, nh as u32, PAD_GREY);
            imageops::replace(&mut canvas, image, i64::from(l), i64::from(t_));
            let (dx, dy) = (f64::from(l), f64::from(t_));
            (
                canvas,
                Box::new(move |b: BBox| BBox {
                    x1: b.x1 + dx,
                    y1: b.y1 + dy,
                    x2: b.x2 + dx,
                    y2: b.y2 + dy,
                }),
            )
        }
        _ => unreachable!("{t} is photometric"),
    })
}

/// Pixels from a non-negative length, rounded half away from zero.
fn round_px(v: f64) -> u32 {
    v.round().clamp(0.0, f64::from(u32::MAX)) as u32
}

fn photometric(image: &mut RgbImage, t: Transform) {
    match t {
        Transform::Brightness(f) => map_subpixels(image, |v| v * f),
        Transform::Contrast(f) => {
            let n = image.as_raw().len().max(1) as f64;
            let mean = image.as_raw().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            map_subpixels(image, |v| mean + (v - mean) * f);
        }
        // The image crate reads sigma 0 as 0.8; here 0 means no blur.
        Transform::Blur(sigma) if sigma > 0.0 => *image = imageops::blur(image, sigma as f32),
        _ => {}
    }
}

fn add_noise(image: &mut RgbImage, sigma: f64, rng: &mut ChaCha8Rng) {
    if sigma <= 0.0 {
        return;
    }
    let normal = Normal::new(0.0, sigma).expect("sigma is validated finite and positive");
    for v in image.iter_mut() {
        *v = to_u8(f64::from(*v) + normal.sample(rng));
    }
}

fn map_subpixels(image: &mut RgbImage, f: impl Fn(f64) -> f64) {
    for v in image.iter_mut() {
        *v = to_u8(f(f64::from(*v)));
    }
}

fn to_u8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transform_round_trips_through_its_spec() {
        let chain = [
            Transform::FlipHorizontal,
            Transform::Rotate90,
            Transform::Crop {
                x: 0.1,
                y: 0.2,
                width: 0.5,
                height: 0.75,
            },
            Transform::Scale(0.5),
            Transform::Pad {
                left: 0.25,
                top: 0.25,
                right: 0.25,
                bottom: 0.25,
            },
            Transform::Pad {
                left: 0.1,
                top: 0.0,
                right: 0.3,
                bottom: 1.5,
            },
            Transform::Brightness(0.6),
            Transform::Contrast(1.3),
            Transform::Blur(2.0),
            Transform::Noise(7.5),
            Transform::Jpeg(40),
        ];
        let spec = format_chain(&chain);
        assert_eq!(
            spec,
            "flip,rot90,crop=0.1:0.2:0.5:0.75,scale=0.5,pad=0.25,pad=0.1:0:0.3:1.5,\
             bright=0.6,contrast=1.3,blur=2,noise=7.5,jpeg=40"
        );
        assert_eq!(parse_chain(&spec).unwrap(), chain);
        // Awkward floats survive too.
        let t = Transform::Scale(1.0 / 3.0);
        assert_eq!(t.to_string().parse::<Transform>().unwrap(), t);
        // And serde uses the same text.
        let json = serde_json::to_string(&chain[..2]).unwrap();
        assert_eq!(json, r#"["flip","rot90"]"#);
        let back: Vec<Transform> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, chain[..2]);
    }

    #[test]
    fn the_spec_tolerates_spaces_and_the_empty_chain() {
        assert_eq!(parse_chain("").unwrap(), vec![]);
        assert_eq!(
            parse_chain(" flip , blur = 2 ").unwrap(),
            vec![Transform::FlipHorizontal, Transform::Blur(2.0)]
        );
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let cases = [
            ("wobble", "unknown transform"),
            ("flip=1", "takes no value"),
            ("scale", "needs a value"),
            ("scale=abc", "is not a number"),
            ("scale=0", "not in"),
            ("scale=-1", "not in"),
            ("scale=NaN", "not in"),
            ("scale=inf", "not in"),
            ("scale=0.5:2", "takes 1 value"),
            ("crop=0.5:0.5:0.6:0.2", "outside the image"),
            ("crop=0.1:0.1:0.5", "takes 4 value"),
            ("pad=0.1:0.2", "takes 1 or 4 value"),
            ("pad=-0.1", "not in"),
            ("bright=-1", "not in"),
            ("blur=-2", "not in"),
            ("noise=1000", "not in"),
            ("jpeg=0", "not a whole number"),
            ("jpeg=101", "not a whole number"),
            ("jpeg=40.5", "not a whole number"),
            ("flip,,blur=1", "empty step"),
        ];
        for (spec, want) in cases {
            let err = parse_chain(spec).expect_err(spec).to_string();
            assert!(err.contains(want), "{spec}: {err}");
            assert!(matches!(
                parse_chain(spec).unwrap_err(),
                DatasetError::Spec(_)
            ));
        }
    }

    #[test]
    fn apply_refuses_an_out_of_range_transform_built_in_code() {
        let img = RgbImage::new(4, 4);
        let err = apply_image(&img, &[], &[Transform::Scale(-1.0)], 0).unwrap_err();
        assert!(err.to_string().contains("scale"), "{err}");
        let err = apply_image(
            &img,
            &[],
            &[Transform::Scale(8.0), Transform::Scale(8.0)],
            0,
        );
        assert!(err.is_ok(), "4x4 * 64 stays small");
        let big = RgbImage::new(2000, 2000);
        let err = apply_image(&big, &[], &[Transform::Scale(8.0)], 0).unwrap_err();
        assert!(err.to_string().contains("pixels"), "{err}");
    }
}

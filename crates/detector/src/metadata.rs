//! `model.json`: everything the detector knows about a model (models/README.md
//! explains each field). No model constant lives in code; this module reads
//! the file into typed structs and refuses anything inconsistent before a
//! session is built.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::LoadError;

/// The `schema_version` this build understands.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Deserialize)]
pub struct ModelMetadata {
    pub schema_version: u32,
    pub name: String,
    pub version: String,
    /// The ONNX file, relative to `model.json`.
    pub file: String,
    /// Hex SHA-256 of the ONNX file.
    pub sha256: String,
    pub size_bytes: u64,
    pub input: InputSpec,
    /// Output levels in candidate order.
    pub outputs: Vec<OutputLevel>,
    pub decode: DecodeSpec,
    pub postprocess: PostprocessSpec,
    /// Class names in model order: index = `class_id`.
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InputSpec {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub layout: String,
    pub dtype: String,
    /// Order of the three planes in the tensor, e.g. `BGR`.
    pub channel_order: String,
    pub resize: ResizeSpec,
    pub normalize: NormalizeSpec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Keep the aspect ratio, pad the rest.
    Letterbox,
    /// Scale x and y independently to the input size.
    Stretch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    Center,
    TopLeft,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ResizeSpec {
    pub mode: ResizeMode,
    #[serde(default = "default_align")]
    pub align: Align,
    #[serde(default)]
    pub pad_rgb: [u8; 3],
    pub filter: String,
    pub antialias: bool,
}

fn default_align() -> Align {
    Align::Center
}

#[derive(Debug, Clone, Deserialize)]
pub struct NormalizeSpec {
    /// Per tensor channel, in `channel_order`, for pixels in 0..255.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Deserialize)]
pub struct OutputLevel {
    pub stride: u32,
    pub grid_width: u32,
    pub grid_height: u32,
    /// Tensor names of this level's class scores `[1, cells, classes]` and box
    /// distributions `[1, cells, 4 * bins]`.
    pub cls: String,
    pub reg: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClsActivation {
    /// The graph already outputs probabilities.
    None,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Left,
    Top,
    Right,
    Bottom,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DecodeSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub num_classes: usize,
    pub cls_activation: ClsActivation,
    pub reg_bins: usize,
    pub reg_side_order: [Side; 4],
    pub cell_order: String,
    pub cell_offset: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PostprocessSpec {
    pub score_threshold: f64,
    pub nms: String,
    pub nms_iou: f64,
    pub max_detections: usize,
}

impl ModelMetadata {
    /// Reads and validates `model.json`. `path` may also be the directory
    /// holding it.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), LoadError> {
        let json_path = if path.is_dir() {
            path.join("model.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read(&json_path).map_err(|e| LoadError::Metadata {
            path: json_path.clone(),
            problem: e.to_string(),
        })?;
        let meta = Self::from_json(&text).map_err(|problem| LoadError::Metadata {
            path: json_path.clone(),
            problem,
        })?;
        Ok((meta, json_path))
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let meta: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        meta.validate()?;
        Ok(meta)
    }

    /// The ONNX file next to `model.json`.
    pub fn model_path(&self, json_path: &Path) -> PathBuf {
        json_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&self.file)
    }

    /// Index of each tensor plane's colour in an RGB pixel, e.g. BGR → [2, 1, 0].
    pub fn channel_source(&self) -> [usize; 3] {
        let mut out = [0; 3];
        for (plane, c) in self.input.channel_order.bytes().enumerate() {
            out[plane] = match c {
                b'R' => 0,
                b'G' => 1,
                _ => 2,
            };
        }
        out
    }

    /// Where each of left, top, right, bottom sits in the model's side order.
    pub fn side_index(&self) -> [usize; 4] {
        let find = |s| {
            self.decode
                .reg_side_order
                .iter()
                .position(|&x| x == s)
                .expect("validated: every side once")
        };
        [
            find(Side::Left),
            find(Side::Top),
            find(Side::Right),
            find(Side::Bottom),
        ]
    }

    fn validate(&self) -> Result<(), String> {
        let fail = |msg: String| Err(msg);
        if self.schema_version != SCHEMA_VERSION {
            return fail(format!(
                "schema_version {} is not supported (this build reads {SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail(format!("sha256 {:?} is not 64 hex digits", self.sha256));
        }
        let inp = &self.input;
        if inp.layout != "NCHW" {
            return fail(format!("input.layout {:?}: only NCHW", inp.layout));
        }
        if inp.dtype != "float32" {
            return fail(format!("input.dtype {:?}: only float32", inp.dtype));
        }
        let mut order: Vec<u8> = inp.channel_order.bytes().collect();
        order.sort_unstable();
        if order != b"BGR" {
            return fail(format!(
                "input.channel_order {:?} is not an order of R, G, B",
                inp.channel_order
            ));
        }
        if inp.width == 0 || inp.height == 0 {
            return fail("input.width and input.height must be positive".into());
        }
        if inp.resize.filter != "bilinear" || !inp.resize.antialias {
            return fail(format!(
                "input.resize: only antialiased bilinear (Pillow) resizing is implemented, got {:?} antialias={}",
                inp.resize.filter, inp.resize.antialias
            ));
        }
        if inp
            .normalize
            .std
            .iter()
            .any(|s| !s.is_finite() || *s == 0.0)
            || inp.normalize.mean.iter().any(|m| !m.is_finite())
        {
            return fail("input.normalize: mean must be finite and std finite and non-zero".into());
        }
        if self.outputs.is_empty() {
            return fail("outputs is empty".into());
        }
        for lvl in &self.outputs {
            if lvl.stride == 0
                || lvl.grid_width.checked_mul(lvl.stride) != Some(inp.width)
                || lvl.grid_height.checked_mul(lvl.stride) != Some(inp.height)
            {
                return fail(format!(
                    "outputs: grid {}x{} at stride {} does not cover the {}x{} input",
                    lvl.grid_width, lvl.grid_height, lvl.stride, inp.width, inp.height
                ));
            }
        }
        let dec = &self.decode;
        if dec.kind != "gfl" {
            return fail(format!("decode.type {:?}: only gfl", dec.kind));
        }
        if dec.num_classes == 0 || dec.num_classes != self.labels.len() {
            return fail(format!(
                "decode.num_classes {} and {} labels disagree",
                dec.num_classes,
                self.labels.len()
            ));
        }
        if dec.num_classes > usize::from(u16::MAX) {
            return fail("more classes than a u16 class_id can hold".into());
        }
        if dec.reg_bins < 2 {
            return fail(format!("decode.reg_bins {} < 2", dec.reg_bins));
        }
        let mut sides = dec.reg_side_order.to_vec();
        sides.sort_by_key(|s| *s as u8);
        sides.dedup();
        if sides.len() != 4 {
            return fail("decode.reg_side_order must name each side once".into());
        }
        if dec.cell_order != "row_major" {
            return fail(format!(
                "decode.cell_order {:?}: only row_major",
                dec.cell_order
            ));
        }
        if !dec.cell_offset.is_finite() {
            return fail("decode.cell_offset must be finite".into());
        }
        let pp = &self.postprocess;
        if pp.nms != "class_aware" {
            return fail(format!("postprocess.nms {:?}: only class_aware", pp.nms));
        }
        check_unit("postprocess.score_threshold", pp.score_threshold)?;
        check_unit("postprocess.nms_iou", pp.nms_iou)?;
        if pp.max_detections == 0 {
            return fail("postprocess.max_detections must be positive".into());
        }
        Ok(())
    }
}

pub(crate) fn check_unit(what: &str, v: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("{what} {v} is outside 0..1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/nanodet/model.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn parse(v: &serde_json::Value) -> Result<ModelMetadata, String> {
        ModelMetadata::from_json(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn the_shipped_model_json_is_valid() {
        let meta = parse(&shipped()).unwrap();
        assert_eq!(
            meta.channel_source(),
            [2, 1, 0],
            "BGR planes from RGB pixels"
        );
        assert_eq!(meta.side_index(), [0, 1, 2, 3]);
        assert_eq!(meta.labels.len(), meta.decode.num_classes);
    }

    #[test]
    fn inconsistent_metadata_is_refused_with_the_field_named() {
        type Mutation = fn(&mut serde_json::Value);
        let cases: [(&str, Mutation); 6] = [
            ("schema_version", |v| v["schema_version"] = 2.into()),
            ("channel_order", |v| {
                v["input"]["channel_order"] = "BGA".into()
            }),
            ("grid", |v| v["outputs"][0]["grid_width"] = 51.into()),
            ("num_classes", |v| v["decode"]["num_classes"] = 79.into()),
            ("reg_side_order", |v| {
                v["decode"]["reg_side_order"] =
                    serde_json::json!(["left", "left", "right", "bottom"])
            }),
            ("nms_iou", |v| v["postprocess"]["nms_iou"] = 1.5.into()),
        ];
        for (field, mutate) in cases {
            let mut v = shipped();
            mutate(&mut v);
            let err = parse(&v).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}

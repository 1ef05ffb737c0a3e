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
    /// `gfl`: output levels in candidate order; every other family: its
    /// tensors, each with the role it plays.
    pub outputs: Vec<OutputSpec>,
    pub decode: DecodeSpec,
    pub postprocess: PostprocessSpec,
    /// Class names in model order: index = `class_id`. May be left out only
    /// for `yolov8`, whose ONNX files carry their own (`names`); the detector
    /// fills it in from there at load.
    #[serde(default)]
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

/// One entry of `outputs`: a GFL level (it has `stride`) or a named tensor
/// (it has `role`).
#[derive(Debug, Clone)]
pub enum OutputSpec {
    Level(OutputLevel),
    Tensor(OutputTensor),
}

/// By hand rather than `#[serde(untagged)]`, which would answer every typo
/// with "did not match any variant" instead of the field that is wrong.
impl<'de> Deserialize<'de> for OutputSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        if v.get("role").is_some() {
            serde_json::from_value(v).map(Self::Tensor)
        } else {
            serde_json::from_value(v).map(Self::Level)
        }
        .map_err(D::Error::custom)
    }
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputTensor {
    /// The graph's output name.
    pub name: String,
    pub role: OutputRole,
}

/// What a named output holds; each family needs its own set (models/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputRole {
    /// YOLO: every anchor's box and scores in one tensor.
    Predictions,
    /// TF OD API `detection_boxes`, DETR `pred_boxes`.
    Boxes,
    /// TF OD API `detection_scores`.
    Scores,
    /// TF OD API `detection_classes`.
    Classes,
    /// TF OD API `num_detections`.
    NumDetections,
    /// DETR `pred_logits`.
    Logits,
}

impl OutputRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Predictions => "predictions",
            Self::Boxes => "boxes",
            Self::Scores => "scores",
            Self::Classes => "classes",
            Self::NumDetections => "num_detections",
            Self::Logits => "logits",
        }
    }
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

/// `decode`: the family, chosen by `decode.type`, and its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DecodeSpec {
    /// NanoDet's Generalized Focal Loss heads, one `cls`/`reg` pair per level.
    Gfl(GflSpec),
    /// One `[1, N, 5 + C]` output: cx, cy, w, h (input pixels), objectness,
    /// class probabilities.
    Yolov5(YoloSpec),
    /// One `[1, 4 + C, N]` output (Ultralytics v8/11 export): cx, cy, w, h
    /// (input pixels), class probabilities, no objectness.
    Yolov8(YoloSpec),
    /// TF Object Detection API: post-NMS boxes, scores, classes, count.
    TfOd(TfOdSpec),
    /// DETR / RT-DETR: one box per query, no NMS.
    Detr(DetrSpec),
}

impl DecodeSpec {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Gfl(_) => "gfl",
            Self::Yolov5(_) => "yolov5",
            Self::Yolov8(_) => "yolov8",
            Self::TfOd(_) => "tf_od",
            Self::Detr(_) => "detr",
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            Self::Gfl(g) => g.num_classes,
            Self::Yolov5(y) | Self::Yolov8(y) => y.num_classes,
            Self::TfOd(t) => t.num_classes,
            Self::Detr(d) => d.num_classes,
        }
    }

    /// The output roles the family reads, in the order `outputs` lists them
    /// in the docs; `None` for `gfl`, whose outputs are levels. The flag
    /// says whether the role may be left out.
    pub fn roles(&self) -> Option<&'static [(OutputRole, bool)]> {
        use OutputRole::*;
        match self {
            Self::Gfl(_) => None,
            Self::Yolov5(_) | Self::Yolov8(_) => Some(&[(Predictions, false)]),
            Self::TfOd(_) => Some(&[
                (Boxes, false),
                (Scores, false),
                (Classes, false),
                (NumDetections, true),
            ]),
            Self::Detr(_) => Some(&[(Logits, false), (Boxes, false)]),
        }
    }

    /// Whether the family's outputs still need NMS (the set predictors and
    /// TF OD API graphs have done it, or need none).
    pub fn needs_nms(&self) -> bool {
        matches!(self, Self::Gfl(_) | Self::Yolov5(_) | Self::Yolov8(_))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct GflSpec {
    pub num_classes: usize,
    pub cls_activation: ClsActivation,
    pub reg_bins: usize,
    pub reg_side_order: [Side; 4],
    pub cell_order: String,
    pub cell_offset: f64,
}

impl GflSpec {
    /// Where each of left, top, right, bottom sits in the model's side order.
    pub fn side_index(&self) -> [usize; 4] {
        let find = |s| {
            self.reg_side_order
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YoloSpec {
    pub num_classes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TfOdSpec {
    pub num_classes: usize,
    /// The label-map id the graph emits for each of `labels` (COCO-91 ids
    /// for the TF model zoo); `None`: the id is the index into `labels`.
    /// Ids that are not listed (the label map's gaps) are dropped.
    #[serde(default)]
    pub label_ids: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetrSpec {
    pub num_classes: usize,
    pub class_activation: DetrActivation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetrActivation {
    /// DETR: softmax over `num_classes + 1` logits, the last one "no object";
    /// each query reports its best real class.
    SoftmaxNoObject,
    /// RT-DETR: a sigmoid per class, no "no object"; every (query, class)
    /// over the threshold is a detection.
    Sigmoid,
}

/// `postprocess.nms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NmsMode {
    /// NMS separately per class.
    ClassAware,
    /// The graph's answer is final (TF OD API, DETR).
    None,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PostprocessSpec {
    pub score_threshold: f64,
    pub nms: NmsMode,
    /// Ignored when `nms` is `none`.
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

    /// The GFL levels of `outputs`, in candidate order.
    pub fn levels(&self) -> impl Iterator<Item = &OutputLevel> {
        self.outputs.iter().filter_map(|o| match o {
            OutputSpec::Level(l) => Some(l),
            OutputSpec::Tensor(_) => None,
        })
    }

    /// The output playing `role`, and its index in `outputs`.
    pub fn output(&self, role: OutputRole) -> Option<(usize, &OutputTensor)> {
        self.outputs.iter().enumerate().find_map(|(i, o)| match o {
            OutputSpec::Tensor(t) if t.role == role => Some((i, t)),
            _ => None,
        })
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
        self.validate_outputs()?;
        let dec = &self.decode;
        let nc = dec.num_classes();
        // yolov8 may leave labels to the ONNX file; the detector checks the
        // count against num_classes once it has read them.
        let labels_from_model = matches!(dec, DecodeSpec::Yolov8(_)) && self.labels.is_empty();
        if nc == 0 || (!labels_from_model && nc != self.labels.len()) {
            return fail(format!(
                "decode.num_classes {nc} and {} labels disagree{}",
                self.labels.len(),
                if self.labels.is_empty() {
                    " (only yolov8 may leave labels out, to read them from the ONNX file)"
                } else {
                    ""
                }
            ));
        }
        if nc > usize::from(u16::MAX) {
            return fail("more classes than a u16 class_id can hold".into());
        }
        match dec {
            DecodeSpec::Gfl(g) => validate_gfl(g)?,
            DecodeSpec::TfOd(TfOdSpec {
                label_ids: Some(ids),
                ..
            }) => {
                if ids.len() != nc {
                    return fail(format!(
                        "decode.label_ids has {} ids for {nc} classes: one per label",
                        ids.len()
                    ));
                }
                let mut sorted = ids.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if sorted.len() != ids.len() {
                    return fail("decode.label_ids lists an id twice".into());
                }
            }
            _ => {}
        }
        let pp = &self.postprocess;
        match (dec.needs_nms(), pp.nms) {
            (true, NmsMode::ClassAware) | (false, NmsMode::None) => {}
            (true, NmsMode::None) => {
                return fail(format!(
                    "postprocess.nms \"none\": decode.type {:?} gives overlapping candidates; set it to \"class_aware\"",
                    dec.type_name()
                ));
            }
            (false, NmsMode::ClassAware) => {
                return fail(format!(
                    "postprocess.nms \"class_aware\": decode.type {:?} already gives final boxes; set it to \"none\"",
                    dec.type_name()
                ));
            }
        }
        check_unit("postprocess.score_threshold", pp.score_threshold)?;
        check_unit("postprocess.nms_iou", pp.nms_iou)?;
        if pp.max_detections == 0 {
            return fail("postprocess.max_detections must be positive".into());
        }
        Ok(())
    }
}

impl ModelMetadata {
    /// `gfl` takes levels only, every other family its roles, once each.
    fn validate_outputs(&self) -> Result<(), String> {
        let inp = &self.input;
        let Some(roles) = self.decode.roles() else {
            for (i, out) in self.outputs.iter().enumerate() {
                let OutputSpec::Level(lvl) = out else {
                    return Err(format!(
                        "outputs[{i}]: decode.type \"gfl\" takes levels (stride, grid_width, grid_height, cls, reg), not a role"
                    ));
                };
                if lvl.stride == 0
                    || lvl.grid_width.checked_mul(lvl.stride) != Some(inp.width)
                    || lvl.grid_height.checked_mul(lvl.stride) != Some(inp.height)
                {
                    return Err(format!(
                        "outputs: grid {}x{} at stride {} does not cover the {}x{} input",
                        lvl.grid_width, lvl.grid_height, lvl.stride, inp.width, inp.height
                    ));
                }
            }
            return Ok(());
        };
        let want: Vec<&str> = roles.iter().map(|(r, _)| r.as_str()).collect();
        for (i, out) in self.outputs.iter().enumerate() {
            let OutputSpec::Tensor(t) = out else {
                return Err(format!(
                    "outputs[{i}]: decode.type {:?} takes {{\"name\", \"role\"}} entries with roles {want:?}, not a level",
                    self.decode.type_name()
                ));
            };
            if !roles.iter().any(|(r, _)| *r == t.role) {
                return Err(format!(
                    "outputs[{i}].role {:?}: decode.type {:?} reads roles {want:?}",
                    t.role.as_str(),
                    self.decode.type_name()
                ));
            }
            if self.output(t.role).map(|(j, _)| j) != Some(i) {
                return Err(format!(
                    "outputs[{i}].role {:?} is listed twice",
                    t.role.as_str()
                ));
            }
        }
        for (role, optional) in roles {
            if !optional && self.output(*role).is_none() {
                return Err(format!(
                    "outputs: decode.type {:?} needs an output with role {:?}",
                    self.decode.type_name(),
                    role.as_str()
                ));
            }
        }
        Ok(())
    }
}

fn validate_gfl(dec: &GflSpec) -> Result<(), String> {
    if dec.reg_bins < 2 {
        return Err(format!("decode.reg_bins {} < 2", dec.reg_bins));
    }
    let mut sides = dec.reg_side_order.to_vec();
    sides.sort_by_key(|s| *s as u8);
    sides.dedup();
    if sides.len() != 4 {
        return Err("decode.reg_side_order must name each side once".into());
    }
    if dec.cell_order != "row_major" {
        return Err(format!(
            "decode.cell_order {:?}: only row_major",
            dec.cell_order
        ));
    }
    if !dec.cell_offset.is_finite() {
        return Err("decode.cell_offset must be finite".into());
    }
    Ok(())
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
        let DecodeSpec::Gfl(gfl) = &meta.decode else {
            panic!("NanoDet decodes GFL heads")
        };
        assert_eq!(gfl.side_index(), [0, 1, 2, 3]);
        assert_eq!(meta.labels.len(), meta.decode.num_classes());
        assert_eq!(meta.levels().count(), 3);
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

    #[test]
    fn other_families_need_their_roles_and_nms_setting() {
        // GIVEN the shipped model.json turned into a yolov8 one
        let yolov8 = || {
            let mut v = shipped();
            v["outputs"] = serde_json::json!([{"name": "output0", "role": "predictions"}]);
            v["decode"] = serde_json::json!({"type": "yolov8", "num_classes": 80});
            v
        };
        // THEN it reads, labels included or left to the ONNX file
        let meta = parse(&yolov8()).unwrap();
        assert_eq!(
            meta.output(OutputRole::Predictions).unwrap().1.name,
            "output0"
        );
        let mut no_labels = yolov8();
        no_labels.as_object_mut().unwrap().remove("labels");
        assert!(parse(&no_labels).unwrap().labels.is_empty());
        // AND each inconsistency names its field
        type Mutation = fn(&mut serde_json::Value);
        let cases: [(&str, Mutation); 5] = [
            ("labels disagree", |v| {
                v["decode"]["type"] = "yolov5".into();
                v.as_object_mut().unwrap().remove("labels");
            }),
            ("outputs[0].role", |v| {
                v["outputs"][0]["role"] = "logits".into()
            }),
            ("postprocess.nms", |v| {
                v["postprocess"]["nms"] = "none".into()
            }),
            ("needs an output with role \"boxes\"", |v| {
                v["decode"] = serde_json::json!({"type": "detr", "num_classes": 80,
                                                 "class_activation": "sigmoid"});
                v["outputs"] = serde_json::json!([{"name": "l", "role": "logits"}]);
                v["postprocess"]["nms"] = "none".into();
            }),
            ("decode.label_ids", |v| {
                v["decode"] = serde_json::json!({"type": "tf_od", "num_classes": 80,
                                                 "label_ids": [1, 2, 3]});
                v["outputs"] = serde_json::json!([{"name": "b", "role": "boxes"},
                    {"name": "s", "role": "scores"}, {"name": "c", "role": "classes"}]);
                v["postprocess"]["nms"] = "none".into();
            }),
        ];
        for (field, mutate) in cases {
            let mut v = yolov8();
            mutate(&mut v);
            let err = parse(&v).unwrap_err();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}

//! Does `model.json` describe its ONNX file? The tensors' names, dtypes and
//! shapes against what the decode family reads, each problem as a
//! [`SignatureError`] naming the model.json field and the fix.
//! [`crate::OnnxDetector::load`] refuses a model that fails it;
//! [`check_model`] (`modelobs model check`) reports on one in full.

use std::path::{Path, PathBuf};
use std::time::Instant;

use thiserror::Error;

use crate::metadata::{DecodeSpec, DetrActivation, ModelMetadata, OutputRole, OutputSpec};
use crate::{DetectError, Detector, DetectorConfig, LoadError, OnnxDetector};

/// One graph input or output as ONNX Runtime describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// `float32`, or ONNX Runtime's name of another element type.
    pub dtype: String,
    /// Negative: a dynamic dimension.
    pub shape: Vec<i64>,
}

impl std::fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {} {:?}", self.name, self.dtype, self.shape)
    }
}

/// The graph's inputs and outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// A way `model.json` and its ONNX file disagree.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("input.name {name:?}: the model has no such input; it has: {have:?}")]
    NoSuchInput { name: String, have: Vec<String> },
    #[error("outputs[{index}].{key} {name:?}: the model has no such output; it has: {have:?}")]
    NoSuchOutput {
        index: usize,
        /// `name`, or a GFL level's `cls` / `reg`.
        key: &'static str,
        name: String,
        have: Vec<String>,
    },
    /// A tensor is there but not what `field` implies.
    #[error("{field}: {problem}; {fix}")]
    Mismatch {
        field: String,
        problem: String,
        fix: String,
    },
}

impl SignatureError {
    /// The model.json field that is wrong (or that the fix changes).
    pub fn field(&self) -> String {
        match self {
            Self::NoSuchInput { .. } => "input.name".into(),
            Self::NoSuchOutput { index, key, .. } => format!("outputs[{index}].{key}"),
            Self::Mismatch { field, .. } => field.clone(),
        }
    }
}

fn mismatch(field: impl Into<String>, problem: String, fix: impl Into<String>) -> SignatureError {
    SignatureError::Mismatch {
        field: field.into(),
        problem,
        fix: fix.into(),
    }
}

/// `got` fits `want` where `want` is known (`None`: any size) and `got` is
/// not dynamic.
fn fits(got: &[i64], want: &[Option<i64>]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(&g, w)| g < 0 || w.is_none_or(|w| g == w))
}

fn show(want: &[Option<i64>]) -> String {
    let dims: Vec<String> = want
        .iter()
        .map(|d| d.map_or("N".to_string(), |d| d.to_string()))
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Checks the graph against `meta`, the first problem found.
pub fn check_signature(sig: &Signature, meta: &ModelMetadata) -> Result<(), SignatureError> {
    let inp = &meta.input;
    let Some(input) = sig.inputs.iter().find(|t| t.name == inp.name) else {
        return Err(SignatureError::NoSuchInput {
            name: inp.name.clone(),
            have: sig.inputs.iter().map(|t| t.name.clone()).collect(),
        });
    };
    let want_in = [
        Some(1),
        Some(3),
        Some(i64::from(inp.height)),
        Some(i64::from(inp.width)),
    ];
    if input.dtype != "float32" {
        return Err(mismatch(
            "input.dtype",
            format!("the model's input is {input}"),
            "only float32 inputs are supported: export the model with a float32 input",
        ));
    }
    if !fits(&input.shape, &want_in) {
        return Err(mismatch(
            "input.width/input.height",
            format!(
                "the model's input is {input}, model.json implies {}",
                show(&want_in)
            ),
            "set input.width and input.height to the model's (NCHW, 3 channels)",
        ));
    }
    let have: Vec<String> = sig.outputs.iter().map(|t| t.name.clone()).collect();
    let find = |index: usize, key: &'static str, name: &str| {
        sig.outputs
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| SignatureError::NoSuchOutput {
                index,
                key,
                name: name.to_string(),
                have: have.clone(),
            })
    };
    // Every named tensor is there and float32 before any shape is looked at.
    let mut found = Vec::new();
    for (index, out) in meta.outputs.iter().enumerate() {
        let named: Vec<(&'static str, &str)> = match out {
            OutputSpec::Level(l) => vec![("cls", l.cls.as_str()), ("reg", l.reg.as_str())],
            OutputSpec::Tensor(t) => vec![("name", t.name.as_str())],
        };
        for (key, name) in named {
            let t = find(index, key, name)?;
            if t.dtype != "float32" {
                return Err(mismatch(
                    format!("outputs[{index}].{key}"),
                    format!("the model's output is {t}, the decoder reads float32"),
                    "export the model with float32 outputs",
                ));
            }
            found.push((index, t));
        }
    }
    let nc = meta.decode.num_classes() as i64;
    let tensor = |role: OutputRole| {
        let (index, spec) = meta
            .output(role)
            .expect("validated: the family's roles are there");
        let t = found
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, t)| *t)
            .expect("found above");
        (
            format!("outputs[{index}] ({:?}, {})", spec.name, role.as_str()),
            t,
        )
    };
    let family = meta.decode.type_name();
    match &meta.decode {
        DecodeSpec::Gfl(g) => {
            let mut pairs = found.iter();
            for lvl in meta.levels() {
                let cells = i64::from(lvl.grid_width) * i64::from(lvl.grid_height);
                for want in [[1, cells, nc], [1, cells, 4 * g.reg_bins as i64]] {
                    let (index, t) = pairs.next().expect("two tensors per level");
                    let want = want.map(Some);
                    if !fits(&t.shape, &want) {
                        return Err(mismatch(
                            format!("outputs[{index}]"),
                            format!(
                                "the model's output is {t}, model.json implies {}",
                                show(&want)
                            ),
                            "fix the level's grid and stride, decode.num_classes or decode.reg_bins",
                        ));
                    }
                }
            }
        }
        DecodeSpec::Yolov5(_) | DecodeSpec::Yolov8(_) => {
            let (what, t) = tensor(OutputRole::Predictions);
            let v5 = matches!(meta.decode, DecodeSpec::Yolov5(_));
            let want = if v5 {
                [Some(1), None, Some(5 + nc)]
            } else {
                [Some(1), Some(4 + nc), None]
            };
            if !fits(&t.shape, &want) {
                let problem = format!(
                    "{what} is {t}, decode.type {family:?} with {nc} classes reads {}",
                    show(&want)
                );
                let dims = &t.shape;
                return Err(if dims.len() != 3 {
                    mismatch(
                        "decode.type",
                        problem,
                        "a YOLO output has 3 dimensions: is this the right model?",
                    )
                } else if v5 && dims[1] == 4 + nc {
                    mismatch(
                        "decode.type",
                        problem,
                        "[1, 4 + C, N] is the yolov8 layout: set decode.type to \"yolov8\"",
                    )
                } else if !v5 && dims[2] == 5 + nc {
                    mismatch(
                        "decode.type",
                        problem,
                        "[1, N, 5 + C] is the yolov5 layout: set decode.type to \"yolov5\"",
                    )
                } else if v5 && dims[2] > 5 {
                    mismatch(
                        "decode.num_classes",
                        problem,
                        format!(
                            "the output holds {} classes: set decode.num_classes (and labels) to match",
                            dims[2] - 5
                        ),
                    )
                } else if !v5 && dims[1] > 4 {
                    mismatch(
                        "decode.num_classes",
                        problem,
                        format!(
                            "the output holds {} classes: set decode.num_classes (and labels) to match",
                            dims[1] - 4
                        ),
                    )
                } else {
                    mismatch("decode.type", problem, "this is not a YOLO output")
                });
            }
        }
        DecodeSpec::TfOd(_) => {
            let (bw, boxes) = tensor(OutputRole::Boxes);
            let (sw, scores) = tensor(OutputRole::Scores);
            let (cw, classes) = tensor(OutputRole::Classes);
            for (what, t, want) in [
                (&bw, boxes, vec![Some(1), None, Some(4)]),
                (&sw, scores, vec![Some(1), None]),
                (&cw, classes, vec![Some(1), None]),
            ] {
                if !fits(&t.shape, &want) {
                    return Err(mismatch(
                        "decode.type",
                        format!("{what} is {t}, decode.type \"tf_od\" reads {}", show(&want)),
                        "check each output's role (boxes [1, N, 4], scores and classes [1, N], num_detections [1])",
                    ));
                }
            }
            if meta.output(OutputRole::NumDetections).is_some() {
                let (what, t) = tensor(OutputRole::NumDetections);
                if t.shape.iter().filter(|&&d| d != 1).count() > 0 {
                    return Err(mismatch(
                        "decode.type",
                        format!("{what} is {t}, decode.type \"tf_od\" reads one count [1]"),
                        "check each output's role",
                    ));
                }
            }
        }
        DecodeSpec::Detr(d) => {
            let (lw, logits) = tensor(OutputRole::Logits);
            let (bw, boxes) = tensor(OutputRole::Boxes);
            let k = match d.class_activation {
                DetrActivation::SoftmaxNoObject => nc + 1,
                DetrActivation::Sigmoid => nc,
            };
            let want = [Some(1), None, Some(k)];
            if !fits(&logits.shape, &want) {
                let problem = format!(
                    "{lw} is {logits}, decode.class_activation {:?} with {nc} classes reads {}",
                    match d.class_activation {
                        DetrActivation::SoftmaxNoObject => "softmax_no_object",
                        DetrActivation::Sigmoid => "sigmoid",
                    },
                    show(&want)
                );
                let last = logits.shape.last().copied().unwrap_or(-1);
                return Err(match d.class_activation {
                    DetrActivation::SoftmaxNoObject if last == nc => mismatch(
                        "decode.class_activation",
                        problem,
                        "no \"no object\" logit: an RT-DETR-style graph, set it to \"sigmoid\"",
                    ),
                    DetrActivation::Sigmoid if last == nc + 1 => mismatch(
                        "decode.class_activation",
                        problem,
                        "one logit more than classes: a DETR-style graph with \"no object\", set it to \"softmax_no_object\"",
                    ),
                    _ => mismatch(
                        "decode.num_classes",
                        problem,
                        "set decode.num_classes (and labels) to the model's classes",
                    ),
                });
            }
            let want = [
                Some(1),
                logits.shape.get(1).copied().filter(|q| *q >= 0),
                Some(4),
            ];
            if !fits(&boxes.shape, &want) {
                return Err(mismatch(
                    "decode.type",
                    format!(
                        "{bw} is {boxes}, decode.type \"detr\" reads {}",
                        show(&want)
                    ),
                    "check each output's role (logits [1, Q, K], boxes [1, Q, 4])",
                ));
            }
        }
    }
    Ok(())
}

/// Class names the ONNX file carries (Ultralytics' `names` metadata), if any.
pub(crate) fn model_names(names: Option<String>) -> Result<Option<Vec<String>>, String> {
    names
        .map(|text| {
            crate::decode::names::parse_python_names(&text)
                .map_err(|e| format!("its metadata \"names\": {e}"))
        })
        .transpose()
}

/// What `modelobs model check` found.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    pub model_json: PathBuf,
    pub name: String,
    pub version: String,
    /// `decode.type`.
    pub family: &'static str,
    pub signature: Signature,
    pub num_classes: usize,
    /// Where the class names came from: `model.json` or the ONNX file.
    pub labels_from: &'static str,
    /// The test image: its size, and what the model found in it.
    pub image: (u32, u32),
    pub detections: usize,
    pub candidates_before_nms: Option<u32>,
    pub inference_ms: f64,
    pub load_ms: f64,
}

/// Why [`check_model`] failed.
#[derive(Debug, Error)]
pub enum CheckError {
    /// model.json unreadable or inconsistent, the file's checksum, ONNX
    /// Runtime, or anything else loading refuses.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// model.json and the ONNX file disagree.
    /// (`problem`, not `source`: the message carries it already, and error
    /// chains printed with `{:#}` would say it twice.)
    #[error("{}: {problem}", path.display())]
    Signature {
        path: PathBuf,
        problem: SignatureError,
    },
    /// The model failed on a plain grey image.
    #[error("running the model on a grey {}x{} JPEG: {problem}", TEST_IMAGE.0, TEST_IMAGE.1)]
    Run { problem: DetectError },
}

/// The generated image [`check_model`] runs: landscape, so that a letterbox
/// has a border to place.
pub const TEST_IMAGE: (u32, u32) = (640, 480);

/// Loads `dir`'s (or the file's) model.json, checks it against its ONNX file
/// and runs one generated image through the whole pipeline.
pub fn check_model(model: &Path, ort_dylib_path: Option<&Path>) -> Result<CheckReport, CheckError> {
    let (meta, json_path) = ModelMetadata::load(model)?;
    let started = Instant::now();
    let config = DetectorConfig {
        ort_dylib_path: ort_dylib_path.map(Path::to_path_buf),
        classes: Some(vec!["all".into()]),
        ..DetectorConfig::new(&json_path)
    };
    let detector = OnnxDetector::load_checked(&config).map_err(|e| match e {
        crate::onnx::LoadFailure::Signature(problem) => CheckError::Signature {
            path: json_path.clone(),
            problem,
        },
        crate::onnx::LoadFailure::Other(e) => CheckError::Load(e),
    })?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let grey = image::RgbImage::from_pixel(TEST_IMAGE.0, TEST_IMAGE.1, image::Rgb([128, 128, 128]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    grey.write_to(&mut jpeg, image::ImageFormat::Jpeg)
        .map_err(|e| CheckError::Run {
            problem: DetectError::Decode(e.to_string()),
        })?;
    let prediction = detector
        .detect(jpeg.get_ref())
        .map_err(|problem| CheckError::Run { problem })?;
    Ok(CheckReport {
        model_json: json_path,
        name: meta.name.clone(),
        version: meta.version.clone(),
        family: meta.decode.type_name(),
        signature: detector.signature().clone(),
        num_classes: detector.metadata().labels.len(),
        labels_from: if meta.labels.is_empty() {
            "the ONNX file's names metadata"
        } else {
            "model.json"
        },
        image: TEST_IMAGE,
        detections: prediction.detections.len(),
        candidates_before_nms: meta
            .decode
            .needs_nms()
            .then(|| prediction.profile.as_ref().map_or(0, |p| p.nms.candidates)),
        inference_ms: prediction.timings_ms.inference,
        load_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yolov8_meta() -> ModelMetadata {
        let json = serde_json::json!({
            "schema_version": 1, "name": "t", "version": "1", "file": "t.onnx",
            "sha256": "0".repeat(64), "size_bytes": 1,
            "input": {"name": "images", "width": 64, "height": 64, "layout": "NCHW",
                      "dtype": "float32", "channel_order": "RGB",
                      "resize": {"mode": "letterbox", "pad_rgb": [114, 114, 114],
                                 "filter": "bilinear", "antialias": true},
                      "normalize": {"mean": [0, 0, 0], "std": [255, 255, 255]}},
            "outputs": [{"name": "output0", "role": "predictions"}],
            "decode": {"type": "yolov8", "num_classes": 2},
            "postprocess": {"score_threshold": 0.25, "nms": "class_aware", "nms_iou": 0.7,
                            "max_detections": 10}
        });
        ModelMetadata::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
    }

    fn sig(input: &str, out_dtype: &str, out_shape: Vec<i64>) -> Signature {
        Signature {
            inputs: vec![TensorInfo {
                name: input.into(),
                dtype: "float32".into(),
                shape: vec![1, 3, 64, 64],
            }],
            outputs: vec![TensorInfo {
                name: "output0".into(),
                dtype: out_dtype.into(),
                shape: out_shape,
            }],
        }
    }

    #[test]
    fn a_matching_graph_passes_dynamic_dimensions_included() {
        let meta = yolov8_meta();
        check_signature(&sig("images", "float32", vec![1, 6, 84]), &meta).unwrap();
        check_signature(&sig("images", "float32", vec![-1, 6, -1]), &meta).unwrap();
    }

    #[test]
    fn each_mismatch_names_its_field() {
        let meta = yolov8_meta();
        let field = |s: Signature| check_signature(&s, &meta).unwrap_err().field();
        assert_eq!(field(sig("x", "float32", vec![1, 6, 84])), "input.name");
        assert_eq!(
            field(sig("images", "i64", vec![1, 6, 84])),
            "outputs[0].name"
        );
        assert_eq!(
            field(sig("images", "float32", vec![1, 84, 7])),
            "decode.type"
        );
        assert_eq!(
            field(sig("images", "float32", vec![1, 9, 84])),
            "decode.num_classes"
        );
        let err = check_signature(&sig("images", "float32", vec![1, 84, 7]), &meta).unwrap_err();
        assert!(
            err.to_string().contains("set decode.type to \"yolov5\""),
            "{err}"
        );
    }
}

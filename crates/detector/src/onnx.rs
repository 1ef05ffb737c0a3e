//! [`OnnxDetector`]: the real [`Detector`], a model of any family
//! `model.json`'s `decode.type` names (NanoDet's GFL heads, YOLOv5, YOLOv8/11,
//! TF OD API, DETR / RT-DETR) on ONNX Runtime, configured entirely by its
//! `model.json`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use modelobs_core::BBox;
use modelobs_core::classes;
use modelobs_core::profile::{CaptureProfile, NmsSignals};
use modelobs_core::records::{Detection, ModelRef, StageTimings};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};
use sha2::{Digest, Sha256};

use crate::check::{Signature, SignatureError, TensorInfo, check_signature, model_names};
use crate::decode::{Decoder, Tensor};
use crate::metadata::{ModelMetadata, check_unit};
use crate::postprocess::{Candidate, rank, select};
use crate::preprocess::{Preprocessor, Scratch};
use crate::signals::{self, LumaScratch};
use crate::{DetectError, Detector, ImageInfo, LoadError, Prediction, image_input};

/// The environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";

/// How to build an [`OnnxDetector`]. `None` means "what `model.json` says".
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorConfig {
    /// `model.json`, or the directory holding it.
    pub model: PathBuf,
    /// `libonnxruntime.so`; `None` reads [`ORT_DYLIB_PATH`].
    pub ort_dylib_path: Option<PathBuf>,
    /// Keep detections scoring over this (0..1).
    pub score_threshold: Option<f64>,
    /// Drop a box overlapping a better one of its class by more than this.
    pub nms_iou: Option<f64>,
    pub max_detections: Option<usize>,
    /// Class names to report. `None`: the ten animal classes; empty or
    /// `["all"]`: every class the model knows.
    pub classes: Option<Vec<String>>,
    /// ONNX Runtime intra-op threads (one Lambda vCPU → 1).
    pub intra_op_threads: usize,
    /// Images with more pixels are refused before decoding.
    pub max_pixels: u64,
}

impl DetectorConfig {
    pub const DEFAULT_MAX_PIXELS: u64 = 40_000_000;

    pub fn new(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            ort_dylib_path: None,
            score_threshold: None,
            nms_iou: None,
            max_detections: None,
            classes: None,
            intra_op_threads: 1,
            max_pixels: Self::DEFAULT_MAX_PIXELS,
        }
    }
}

/// What one request needs exclusively: the session (`run` takes `&mut`) and
/// buffers reused from request to request.
struct Worker {
    session: Session,
    input: Vec<f32>,
    scratch: Scratch,
    luma: LumaScratch,
    candidates: Vec<Candidate>,
    suppressed: Vec<bool>,
}

/// A loaded model, ready to answer. Build it once per process.
pub struct OnnxDetector {
    model: ModelRef,
    meta: ModelMetadata,
    pre: Preprocessor,
    decoder: Decoder,
    /// The outputs the decoder reads, in its order.
    tensor_names: Vec<String>,
    signature: Signature,
    score_threshold: f64,
    nms_iou: f64,
    max_detections: usize,
    /// Indexed by model class.
    allowed: Vec<bool>,
    max_pixels: u64,
    input_shape: [usize; 4],
    worker: Mutex<Worker>,
}

impl std::fmt::Debug for OnnxDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxDetector")
            .field("model", &self.model)
            .field("score_threshold", &self.score_threshold)
            .field("nms_iou", &self.nms_iou)
            .field("max_detections", &self.max_detections)
            .field("classes", &self.classes())
            .finish_non_exhaustive()
    }
}

impl OnnxDetector {
    /// Reads and checks `model.json`, verifies the model file's SHA-256,
    /// loads ONNX Runtime and builds the session.
    pub fn load(config: &DetectorConfig) -> Result<Self, LoadError> {
        Self::load_checked(config).map_err(|e| match e {
            LoadFailure::Other(e) => e,
            LoadFailure::Signature(e) => {
                let path = ModelMetadata::load(&config.model)
                    .map(|(meta, json)| meta.model_path(&json))
                    .unwrap_or_else(|_| config.model.clone());
                LoadError::ModelFile {
                    path,
                    problem: e.to_string(),
                }
            }
        })
    }

    /// [`Self::load`], keeping a signature mismatch typed for
    /// [`crate::check::check_model`].
    pub(crate) fn load_checked(config: &DetectorConfig) -> Result<Self, LoadFailure> {
        let (mut meta, json_path) = ModelMetadata::load(&config.model)?;
        // Settings are checked before the slow part when the class names are
        // known already; a yolov8 model.json may leave them to the ONNX file.
        let early = (!meta.labels.is_empty())
            .then(|| Settings::resolve(config, &meta))
            .transpose()?;
        let model_path = meta.model_path(&json_path);
        // Reading and hashing the model (~20 ms) overlaps loading the ONNX
        // Runtime library (~40 ms) when a second core is there: cold start.
        let (model_bytes, env) = std::thread::scope(|s| {
            let model = s.spawn(|| read_verified(&model_path, &meta));
            let env = environment(config.ort_dylib_path.as_deref());
            (model.join().expect("model reader thread"), env)
        });
        let model_bytes = model_bytes?;
        let env = env?;
        let session = build_session(&env, &model_bytes, config.intra_op_threads)?;
        drop(model_bytes);
        let file_problem = |problem: String| LoadError::ModelFile {
            path: model_path.clone(),
            problem,
        };
        let signature = describe(&session);
        check_signature(&signature, &meta).map_err(LoadFailure::Signature)?;
        let names = session
            .metadata()
            .map_err(|e| file_problem(format!("cannot read its metadata: {e}")))?
            .custom("names");
        if let Some(names) = model_names(names).map_err(file_problem)? {
            adopt_names(&mut meta, names).map_err(LoadFailure::Signature)?;
        }
        let settings = match early {
            Some(settings) => settings,
            None => Settings::resolve(config, &meta)?,
        };

        let pre = Preprocessor::new(&meta.input, meta.channel_source());
        let input = vec![0f32; pre.tensor_len()];
        Ok(Self {
            model: ModelRef {
                name: meta.name.clone(),
                version: meta.version.clone(),
            },
            decoder: Decoder::new(&meta),
            tensor_names: Decoder::tensor_names(&meta),
            signature,
            input_shape: [1, 3, meta.input.height as usize, meta.input.width as usize],
            pre,
            score_threshold: settings.score_threshold,
            nms_iou: settings.nms_iou,
            max_detections: settings.max_detections,
            allowed: settings.allowed,
            max_pixels: config.max_pixels,
            meta,
            worker: Mutex::new(Worker {
                session,
                input,
                scratch: Scratch::default(),
                luma: LumaScratch::default(),
                candidates: Vec::new(),
                suppressed: Vec::new(),
            }),
        })
    }

    /// The graph's inputs and outputs, as ONNX Runtime describes them.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    /// The class names reported, in model order.
    pub fn classes(&self) -> Vec<&str> {
        self.meta
            .labels
            .iter()
            .zip(&self.allowed)
            .filter(|(_, ok)| **ok)
            .map(|(l, _)| l.as_str())
            .collect()
    }

    pub fn nms_iou(&self) -> f64 {
        self.nms_iou
    }

    pub fn max_detections(&self) -> usize {
        self.max_detections
    }

    /// Benchmark hook: runs the model once more on the tensor of the last
    /// [`Detector::detect`] call and returns the milliseconds it took.
    #[doc(hidden)]
    pub fn time_model_run(&self) -> Result<f64, DetectError> {
        let mut guard = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        let Worker { session, input, .. } = &mut *guard;
        let t = Instant::now();
        let tensor =
            TensorRef::from_array_view((self.input_shape, &input[..])).map_err(model_error)?;
        let outputs = session
            .run(ort::inputs![self.meta.input.name.as_str() => tensor])
            .map_err(model_error)?;
        drop(outputs);
        Ok(ms(t))
    }
}

impl Detector for OnnxDetector {
    fn model(&self) -> &ModelRef {
        &self.model
    }

    fn score_threshold(&self) -> f64 {
        self.score_threshold
    }

    fn reported_classes(&self) -> Option<Vec<u16>> {
        if self.allowed.iter().all(|ok| *ok) {
            return None;
        }
        Some(
            self.allowed
                .iter()
                .enumerate()
                .filter(|(_, ok)| **ok)
                .map(|(i, _)| i as u16)
                .collect(),
        )
    }

    fn detect(&self, image: &[u8]) -> Result<Prediction, DetectError> {
        let t0 = Instant::now();
        let decoded = image_input::decode(image, self.max_pixels)?;
        let (width, height) = decoded.rgb.dimensions();
        let info = ImageInfo {
            width,
            height,
            content_type: decoded.format.content_type(),
            extension: decoded.format.extension(),
        };
        let decode_ms = ms(t0);

        // Decoding above runs outside the lock; everything below needs the
        // session or the reused buffers.
        let mut guard = self.worker.lock().unwrap_or_else(PoisonError::into_inner);
        let Worker {
            session,
            input,
            scratch,
            luma,
            candidates,
            suppressed,
        } = &mut *guard;

        let t1 = Instant::now();
        let place = self
            .pre
            .run(decoded.rgb.as_raw(), width, height, scratch, input);
        let preprocess_ms = ms(t1);
        let t_signals = Instant::now();
        let image_signals = signals::measure(
            scratch.scaled(decoded.rgb.as_raw(), &place),
            place.scaled_w,
            place.scaled_h,
            luma,
        );
        let mut profile_ms = ms(t_signals);
        drop(decoded);

        let t2 = Instant::now();
        let tensor =
            TensorRef::from_array_view((self.input_shape, &input[..])).map_err(model_error)?;
        let outputs = session
            .run(ort::inputs![self.meta.input.name.as_str() => tensor])
            .map_err(model_error)?;
        let inference_ms = ms(t2);

        let t3 = Instant::now();
        candidates.clear();
        let mut tensors = Vec::with_capacity(self.tensor_names.len());
        for name in &self.tensor_names {
            tensors.push(output_tensor(&outputs, name)?);
        }
        self.decoder
            .decode(
                &self.tensor_names,
                &tensors,
                self.score_threshold as f32,
                &self.allowed,
                candidates,
            )
            .map_err(model_error)?;
        drop(tensors);
        drop(outputs);
        // Back to original pixels first: boxes left empty by clamping go
        // before NMS, as in the reference.
        candidates.retain_mut(|c| match place.to_original(c.bbox) {
            Some(b) => {
                c.bbox = b;
                true
            }
            None => false,
        });
        let (n, nms) = if self.meta.decode.needs_nms() {
            select(candidates, self.nms_iou, self.max_detections, suppressed)
        } else {
            // TF OD API graphs have run NMS themselves and set predictors
            // (DETR) need none: the NMS-consistency signals stay zero, the
            // profile's way of saying "no NMS here" (nothing was folded).
            (rank(candidates, self.max_detections), NmsSignals::default())
        };
        let detections: Vec<Detection> =
            candidates[..n].iter().map(|c| self.detection(c)).collect();
        let postprocess_ms = ms(t3);

        let t4 = Instant::now();
        let profile = CaptureProfile::new(
            &detections,
            width,
            height,
            info.content_type,
            image_signals,
            nms,
        );
        profile_ms += ms(t4);

        Ok(Prediction {
            image: info,
            detections,
            timings_ms: StageTimings {
                decode: decode_ms,
                preprocess: preprocess_ms,
                inference: inference_ms,
                postprocess: postprocess_ms,
                profile: profile_ms,
                total: ms(t0),
            },
            profile: Some(profile),
        })
    }
}

impl OnnxDetector {
    fn detection(&self, c: &Candidate) -> Detection {
        // Reported to the reference's precision: scores 1e-6, boxes 1e-3 px
        // (the model computes in f32; more digits are noise in the records).
        let r3 = |v: f64| (v * 1e3).round() / 1e3;
        Detection {
            label: self.meta.labels[usize::from(c.class)].clone(),
            class_id: c.class,
            score: (f64::from(c.score) * 1e6).round() / 1e6,
            bbox: BBox {
                x1: r3(c.bbox[0]),
                y1: r3(c.bbox[1]),
                x2: r3(c.bbox[2]),
                y2: r3(c.bbox[3]),
            },
        }
    }
}

/// Overrides checked against the metadata.
struct Settings {
    score_threshold: f64,
    nms_iou: f64,
    max_detections: usize,
    allowed: Vec<bool>,
}

impl Settings {
    fn resolve(config: &DetectorConfig, meta: &ModelMetadata) -> Result<Self, LoadError> {
        let pp = &meta.postprocess;
        let score_threshold = config.score_threshold.unwrap_or(pp.score_threshold);
        check_unit("score threshold", score_threshold).map_err(LoadError::Config)?;
        let nms_iou = config.nms_iou.unwrap_or(pp.nms_iou);
        check_unit("NMS IoU threshold", nms_iou).map_err(LoadError::Config)?;
        let max_detections = config.max_detections.unwrap_or(pp.max_detections);
        if max_detections == 0 {
            return Err(LoadError::Config("max_detections must be positive".into()));
        }
        if config.intra_op_threads == 0 {
            return Err(LoadError::Config(
                "intra_op_threads must be positive".into(),
            ));
        }
        if config.max_pixels == 0 {
            return Err(LoadError::Config("max_pixels must be positive".into()));
        }
        let names: Vec<String> = match &config.classes {
            None => classes::animals().map(|c| c.name.to_string()).collect(),
            Some(list) => list.iter().map(|s| s.trim().to_string()).collect(),
        };
        let every = names.is_empty() || names.iter().any(|n| n == "all");
        let mut allowed = vec![every; meta.labels.len()];
        if !every {
            for name in &names {
                let index = meta.labels.iter().position(|l| l == name).ok_or_else(|| {
                    LoadError::Config(format!(
                        "unknown class {name:?}: model {} knows {}",
                        meta.name,
                        meta.labels.join(", ")
                    ))
                })?;
                allowed[index] = true;
            }
        }
        Ok(Self {
            score_threshold,
            nms_iou,
            max_detections,
            allowed,
        })
    }
}

fn read_verified(path: &Path, meta: &ModelMetadata) -> Result<Vec<u8>, LoadError> {
    let problem = |problem: String| LoadError::ModelFile {
        path: path.to_path_buf(),
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    if bytes.len() as u64 != meta.size_bytes {
        return Err(problem(format!(
            "{} bytes, model.json says {}",
            bytes.len(),
            meta.size_bytes
        )));
    }
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    if !hex.eq_ignore_ascii_case(&meta.sha256) {
        return Err(problem(format!(
            "sha256 {hex}, model.json says {}",
            meta.sha256
        )));
    }
    Ok(bytes)
}

/// ONNX Runtime allows one environment per process, and loads its library
/// once: every detector shares both, and only the first library path counts.
fn environment(dylib: Option<&Path>) -> Result<Environment, LoadError> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    let dylib = match dylib {
        Some(path) => path.to_path_buf(),
        None => match std::env::var_os(ORT_DYLIB_PATH) {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => {
                return Err(LoadError::Runtime(format!(
                    "{ORT_DYLIB_PATH} is not set: point it at libonnxruntime.so.1.32.0 \
                     (`make ort` downloads it and prints the path)"
                )));
            }
        },
    };
    if !dylib.is_file() {
        return Err(LoadError::Runtime(format!(
            "{}: no such file (ONNX Runtime library, from {ORT_DYLIB_PATH} or the config; \
             `make ort` downloads it)",
            dylib.display()
        )));
    }
    ENV.get_or_init(|| {
        ort::init_from(&dylib)
            .map_err(|e| e.to_string())?
            .with_name("modelobs-detector")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    })
    .clone()
    .map_err(LoadError::Runtime)
}

/// All graph optimisations: measured with this model and ONNX Runtime 1.32
/// on one core, they cost ~14 ms more at load (27 vs 13 ms) and save ~17 ms
/// on every run (33 vs 50 ms). Loading a pre-optimised copy would win the
/// 14 ms back, but the saved graph is specific to the CPU it was optimised
/// on (NCHWc layouts), so it would have to be made where it runs.
fn build_session(env: &Environment, model: &[u8], threads: usize) -> Result<Session, LoadError> {
    let runtime = |e: ort::Error<_>| LoadError::Runtime(e.to_string());
    Session::builder(env)
        .map_err(|e| LoadError::Runtime(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(runtime)?
        .with_intra_threads(threads)
        .map_err(runtime)?
        .with_inter_threads(1)
        .map_err(runtime)?
        .with_parallel_execution(false)
        .map_err(runtime)?
        .commit_from_memory(model)
        .map_err(|e| LoadError::Runtime(format!("cannot load the model: {e}")))
}

/// Why [`OnnxDetector::load_checked`] failed.
#[derive(Debug)]
pub(crate) enum LoadFailure {
    Signature(SignatureError),
    Other(LoadError),
}

impl From<LoadError> for LoadFailure {
    fn from(e: LoadError) -> Self {
        Self::Other(e)
    }
}

fn describe(session: &Session) -> Signature {
    let info = |name: &str, ty: &ValueType| TensorInfo {
        name: name.to_string(),
        dtype: match ty.tensor_type() {
            Some(TensorElementType::Float32) => "float32".to_string(),
            Some(other) => other.to_string(),
            None => format!("{ty:?}"),
        },
        shape: ty.tensor_shape().map(|s| s.to_vec()).unwrap_or_default(),
    };
    Signature {
        inputs: session
            .inputs()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect(),
        outputs: session
            .outputs()
            .iter()
            .map(|o| info(o.name(), o.dtype()))
            .collect(),
    }
}

/// The ONNX file's own class names win over model.json's (they travel with
/// the weights), and a model.json that lists different ones is wrong.
fn adopt_names(meta: &mut ModelMetadata, names: Vec<String>) -> Result<(), SignatureError> {
    let nc = meta.decode.num_classes();
    if names.len() != nc {
        return Err(SignatureError::Mismatch {
            field: "decode.num_classes".into(),
            problem: format!(
                "{nc} classes, the model's \"names\" metadata lists {}",
                names.len()
            ),
            fix: format!("set decode.num_classes to {}", names.len()),
        });
    }
    if !meta.labels.is_empty() && meta.labels != names {
        let first = meta
            .labels
            .iter()
            .zip(&names)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(SignatureError::Mismatch {
            field: format!("labels[{first}]"),
            problem: format!(
                "{:?}, the model's \"names\" metadata says {:?}",
                meta.labels[first], names[first]
            ),
            fix: "leave labels out to use the model's names, or copy them".into(),
        });
    }
    meta.labels = names;
    Ok(())
}

fn output_tensor<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    name: &str,
) -> Result<Tensor<'a>, DetectError> {
    let value = outputs
        .get(name)
        .ok_or_else(|| DetectError::Model(format!("the model returned no {name:?}")))?;
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(model_error)?;
    Ok(Tensor { shape, data })
}

fn model_error(e: impl std::fmt::Display) -> DetectError {
    DetectError::Model(e.to_string())
}

/// Milliseconds to the microsecond: finer digits are noise.
fn ms(since: Instant) -> f64 {
    (since.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

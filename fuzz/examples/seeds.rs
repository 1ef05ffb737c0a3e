//! Writes the seed corpus (`corpus/<target>/`) from the repository's event
//! fixtures and from tiny images and records made by the real code:
//! `cargo run --example seeds` (`make fuzz-seeds`). Seeds are small on
//! purpose: the fuzzer mutates them, it doesn't need real photos.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{TimeZone, Utc};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use modelobs_core::records::{
    self, CaptureRecord, Granularity, GroundTruth, ImageEval, LabelingTask, ModelRef, Promotion,
    SampleReason, SampleState, SamplingDecision, Window, WindowMetrics,
};
use modelobs_fuzz::{events, request_body, webhook};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn fixture(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join("..").join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A Lambda HTTP event's body as the function sees it.
fn http_body(event: &Value) -> Vec<u8> {
    let body = event["body"].as_str().unwrap_or("");
    if event["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    } else {
        body.as_bytes().to_vec()
    }
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 16) as u8, (y * 16) as u8, 128]))
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 80)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn png(raw: &[u8], w: u32, h: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(raw, w, h, color)
        .unwrap();
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[&kind[..], data].concat()).to_be_bytes());
    out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// A TIFF-structured EXIF block holding only Orientation = `value`.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&value.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

fn images() {
    let img = gradient(12, 8);
    let plain = jpeg(&img);
    write("images", "gradient.jpg", &plain);
    // EXIF orientation 6 in an APP1 segment before the frame.
    let exif = exif_orientation(6);
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + exif.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&exif);
    write(
        "images",
        "exif-rotated.jpg",
        &[&plain[..2], &app1[..], &plain[2..]].concat(),
    );
    let grey = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * y * 4) as u8]));
    let mut grey_jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut grey_jpeg, 80)
        .write_image(grey.as_raw(), 8, 8, ExtendedColorType::L8)
        .unwrap();
    write("images", "grey.jpg", &grey_jpeg);
    write("images", "truncated.jpg", &plain[..plain.len() / 2]);

    let rgb = png(img.as_raw(), 12, 8, ExtendedColorType::Rgb8);
    write("images", "gradient.png", &rgb);
    let rgba: Vec<u8> = (0..8 * 8 * 4).map(|i| (i * 7) as u8).collect();
    write(
        "images",
        "rgba.png",
        &png(&rgba, 8, 8, ExtendedColorType::Rgba8),
    );
    let grey16: Vec<u8> = (0..4 * 4)
        .flat_map(|i: u16| (i * 0x1111).to_be_bytes())
        .collect();
    write(
        "images",
        "grey16.png",
        &png(&grey16, 4, 4, ExtendedColorType::L16),
    );
    // Compressed metadata (iCCP, zTXt, iTXt) and an eXIf orientation, before IDAT.
    let ihdr_end = 8 + 25;
    let mut iccp = b"icc\0\0".to_vec();
    iccp.extend(zlib(&[0u8; 512]));
    let mut ztxt = b"Comment\0\0".to_vec();
    ztxt.extend(zlib(b"a compressed comment"));
    let mut itxt = b"Title\0\x01\0en\0Titel\0".to_vec();
    itxt.extend(zlib(b"a compressed international title"));
    let mut meta = rgb[..ihdr_end].to_vec();
    meta.extend(png_chunk(b"iCCP", &iccp));
    meta.extend(png_chunk(b"zTXt", &ztxt));
    meta.extend(png_chunk(b"iTXt", &itxt));
    meta.extend(png_chunk(b"eXIf", &exif_orientation(8)));
    meta.extend_from_slice(&rgb[ihdr_end..]);
    write("images", "metadata.png", &meta);

    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp)
        .write_image(img.as_raw(), 12, 8, ExtendedColorType::Rgb8)
        .unwrap();
    write("images", "gradient-lossless.webp", &webp);

    // The inference fixtures' images: a real PNG, a huge header, a cut-off file, a GIF.
    for name in [
        "predict-png",
        "predict-huge-png",
        "predict-truncated-png",
        "predict-gif",
    ] {
        let body = http_body(&fixture(&format!("events/inference/{name}.json")));
        write("images", &format!("{name}.bin"), &body);
    }
}

fn request_bodies() {
    for name in [
        "predict-png",
        "predict-multipart",
        "predict-multipart-no-image",
        "predict-json-base64",
        "predict-json-bad-base64",
        "predict-json-malformed",
        "predict-text-plain",
        "predict-empty",
    ] {
        let event = fixture(&format!("events/inference/{name}.json"));
        let content_type = event["headers"]["content-type"].as_str();
        let body = http_body(&event);
        write(
            "request_body",
            name,
            &request_body::input(false, content_type, &body),
        );
    }
    let event = fixture("events/inference/predict-multipart.json");
    let content_type = event["headers"]["content-type"].as_str();
    let body = http_body(&event);
    write(
        "request_body",
        "multipart-over-limit",
        &request_body::input(true, content_type, &body),
    );
    write(
        "request_body",
        "no-content-type",
        &request_body::input(false, None, b"\x89PNG"),
    );
    write(
        "request_body",
        "data-url",
        &request_body::input(
            false,
            Some("application/json"),
            br#"{"image_base64": "data:image/png;base64,iVBORw0KGgo="}"#,
        ),
    );
}

fn webhooks() {
    for name in [
        "label-created",
        "label-updated",
        "label-deleted",
        "label-created-without-label",
        "review-created",
        "topic-in-payload",
        "malformed-json",
        "missing-global-key",
        "unknown-topic",
    ] {
        let event = fixture(&format!("events/webhook/{name}.json"));
        let h = |k: &str| event["headers"][k].as_str();
        let body = http_body(&event);
        write(
            "webhook",
            name,
            &webhook::input(
                h("x-labelbox-event"),
                h("x-hub-signature"),
                h("x-hub-signature-256"),
                &body,
            ),
        );
    }
    // Signed with the target's own secret: the accepted path.
    let body = http_body(&fixture("events/webhook/label-created.json"));
    let (s1, s256) = modelobs_labelbox::webhook::signature::sign(b"fuzz-webhook-secret", &body);
    write(
        "webhook",
        "signed",
        &webhook::input(Some("LABEL_CREATED"), Some(&s1), Some(&s256), &body),
    );
}

fn event_seeds() {
    for (name, path) in [
        ("s3-capture-created", "events/sampler/capture-created.json"),
        ("s3-image-created", "events/sampler/image-created.json"),
        (
            "s3-incoming-image",
            "events/inference/s3-incoming-image.json",
        ),
    ] {
        let text = std::fs::read(root().join("..").join(path)).unwrap();
        write("events", name, &events::input(events::S3_EVENT, &text));
    }
    for (name, path) in [
        ("sqs-label-arrived", "events/metrics/label-arrived.json"),
        (
            "sqs-label-arrived-batch",
            "events/metrics/label-arrived-batch.json",
        ),
    ] {
        let text = std::fs::read(root().join("..").join(path)).unwrap();
        write("events", name, &events::input(events::SQS_EVENT, &text));
    }
    for (name, key) in [
        (
            "key-capture-record",
            "captures/predictions/dt%3D2026-11-26/hr%3D07/01a216ce-1102-7c4e-9a52-4d8e2f6a1b90.json",
        ),
        (
            "key-window-touch",
            "windows/touched/hour/2026-11-26T07/nanodet-coco.v1/0001795678933000-m-good",
        ),
        (
            "key-window-touch-day",
            "windows/touched/day/2026-11-26/ft-1a2b-s1/0001795678933000-m%2Bx",
        ),
        ("key-incoming", "incoming/some+photo%20%E2%9C%93.jpg"),
    ] {
        write(
            "events",
            name,
            &events::input(events::EVENT_KEY, key.as_bytes()),
        );
    }
    write(
        "events",
        "message-body",
        &events::input(
            events::MESSAGE_BODY,
            br#"{"id": "01a216ce-1102-7c4e-9a52-4d8e2f6a1b90", "label_version": 1795684500000}"#,
        ),
    );
}

fn record_seeds() {
    let read = |path: &str| std::fs::read(root().join("..").join(path)).unwrap();
    let capture_bytes = read("events/records/capture-record.json");
    let truth_bytes = read("events/records/ground-truth.json");
    write("records", "capture-record.json", &capture_bytes);
    write("records", "ground-truth.json", &truth_bytes);
    let capture: CaptureRecord = records::from_json(&capture_bytes).unwrap();
    let truth: GroundTruth = records::from_json(&truth_bytes).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 11, 26, 9, 20, 0).unwrap();

    let eval = ImageEval::evaluate(&capture, &truth, at).unwrap();
    write("records", "image-eval.json", &records::to_json(&eval));
    let window = Window::containing(Granularity::Hour, capture.captured_at);
    let metrics = WindowMetrics::compute(
        window,
        capture.model.clone(),
        std::slice::from_ref(&eval),
        3,
        capture.score_threshold,
        at,
    )
    .unwrap();
    write(
        "records",
        "window-metrics.json",
        &records::to_json(&metrics),
    );
    let decision = SamplingDecision {
        id: capture.id,
        capture_key: modelobs_core::keys::capture_record(capture.id, capture.captured_at),
        decided_at: at,
        policy: "default".into(),
        sampled: true,
        reason: SampleReason::Uncertain,
        detail: Some("top score 0.35 below 0.4".into()),
        backend: Some("local".into()),
        external_ref: None,
        state: SampleState::Pending,
    };
    write(
        "records",
        "sampling-decision.json",
        &records::to_json(&decision),
    );
    let task = LabelingTask {
        id: capture.id,
        capture_key: decision.capture_key.clone(),
        image_key: capture.image.key.clone(),
        width: capture.image.width,
        height: capture.image.height,
        captured_at: capture.captured_at,
        created_at: at,
        prelabels: capture.detections.clone(),
    };
    write("records", "labeling-task.json", &records::to_json(&task));
    let promotion = Promotion {
        model: ModelRef {
            name: "nanodet".into(),
            version: "ft-1a2b-s1".into(),
        },
        previous: Some(capture.model.clone()),
        promoted_at: at,
        reason: Some("backtest: better".into()),
    };
    write("records", "promotion.json", &records::to_json(&promotion));
}

fn main() {
    images();
    request_bodies();
    webhooks();
    event_seeds();
    record_seeds();
    let mut total = 0;
    for (name, _) in modelobs_fuzz::TARGETS {
        let dir = root().join("corpus").join(name);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        let bytes: u64 = files
            .iter()
            .map(|f| f.as_ref().unwrap().metadata().unwrap().len())
            .sum();
        total += bytes;
        println!("corpus/{name}: {} files, {bytes} bytes", files.len());
    }
    println!("total {total} bytes");
}

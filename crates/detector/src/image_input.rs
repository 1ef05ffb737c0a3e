//! Image bytes → 8-bit RGB pixels in display orientation.
//!
//! The format is sniffed from the bytes, never trusted from the client; the
//! size is read from the header and refused before any pixel is decoded.

use std::io::Cursor;

use image::codecs::jpeg::JpegDecoder;
use image::codecs::png::PngDecoder;
use image::codecs::webp::WebPDecoder;
use image::error::LimitErrorKind;
use image::{DynamicImage, ImageDecoder, ImageError, Limits, RgbImage};

use crate::DetectError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    WebP,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The format by magic bytes.
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, DetectError> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(ImageFormat::Jpeg)
    } else if bytes.starts_with(PNG_MAGIC) {
        Ok(ImageFormat::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Ok(ImageFormat::WebP)
    } else if bytes.is_empty() {
        Err(DetectError::Decode("empty image".into()))
    } else {
        Err(DetectError::UnsupportedFormat(describe_unknown(bytes)))
    }
}

fn describe_unknown(bytes: &[u8]) -> String {
    let known = [
        (&b"GIF8"[..], "GIF"),
        (&b"BM"[..], "BMP"),
        (&b"II*\0"[..], "TIFF"),
        (&b"MM\0*"[..], "TIFF"),
        (&b"%PDF"[..], "PDF"),
    ];
    if let Some((_, name)) = known.iter().find(|(m, _)| bytes.starts_with(m)) {
        return format!("{name} (only JPEG, PNG and WebP are accepted)");
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return "HEIF/AVIF/MP4 container (only JPEG, PNG and WebP are accepted)".into();
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("not JPEG, PNG or WebP (starts with {})", head.join(" "))
}

/// A decoded image, 8-bit RGB, EXIF orientation applied.
pub struct DecodedImage {
    pub format: ImageFormat,
    pub rgb: RgbImage,
}

/// What a decoder may allocate beside the pixel buffer: ICC profiles, text and
/// EXIF chunks (PNG inflates them: a 2 MB iCCP chunk can claim 2 GiB), chunk
/// and line buffers. Real photos carry well under 1 MiB of metadata.
pub const METADATA_BUDGET: u64 = 16 << 20;

/// Refuses an image whose header claims more than `max_pixels`, then decodes
/// it, applies its EXIF orientation and converts it to 8-bit RGB.
///
/// Memory is bounded before anything the input controls is allocated: the
/// pixel count from the header, and for PNG (the one format whose metadata
/// is compressed) a decoder allocation limit of [`METADATA_BUDGET`] plus a
/// few rows, so the whole decode needs at most the pixels (8 bytes each at
/// 16-bit RGBA) and 16 MiB. JPEG and WebP metadata is stored raw, so it is
/// bounded by the bytes received.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<DecodedImage, DetectError> {
    // A decoder's bug must not take the invocation down with the image: a
    // panic is this image's decode error. (zune-jpeg 0.5.15, the newest
    // release, panics in its AVX2 IDCT on JPEGs with unusual sampling
    // factors: fuzz/artifacts-found/fixed/images/.)
    std::panic::catch_unwind(|| decode_unguarded(bytes, max_pixels)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(DetectError::Decode(format!(
            "the decoder failed on this image: {why}"
        )))
    })
}

fn decode_unguarded(bytes: &[u8], max_pixels: u64) -> Result<DecodedImage, DetectError> {
    let format = sniff(bytes)?;
    let mut png_limits = None;
    if format == ImageFormat::Png {
        // The IHDR chunk sits at a fixed offset: check it before the decoder
        // reads further (a crafted header needs no valid data after it).
        if let Some((w, h)) = png_ihdr_dimensions(bytes) {
            check_pixels(w, h, max_pixels)?;
            png_limits = Some(png_limits_for(w));
        }
        // The png crate drops an ICC profile over its limit and decodes on;
        // a file built to inflate that far is refused instead.
        check_png_metadata(bytes)?;
    }
    if format == ImageFormat::Jpeg && !jpeg_has_end(bytes) {
        // zune-jpeg pads a cut-off scan with grey and calls it decoded; Pillow
        // (the reference) refuses it, and so do we: a partial upload is an error.
        return Err(DetectError::Decode(
            "truncated JPEG: no end-of-image marker after the image data".into(),
        ));
    }
    let cursor = Cursor::new(bytes);
    let image = match format {
        ImageFormat::Jpeg => decode_with(JpegDecoder::new(cursor), max_pixels)?,
        ImageFormat::Png => decode_with(
            // No IHDR where it belongs: the decoder refuses it before allocating.
            PngDecoder::with_limits(cursor, png_limits.unwrap_or_else(|| png_limits_for(0))),
            max_pixels,
        )?,
        ImageFormat::WebP => decode_with(WebPDecoder::new(cursor), max_pixels)?,
    };
    Ok(DecodedImage {
        format,
        rgb: to_rgb8(image),
    })
}

fn decode_with(
    decoder: Result<impl ImageDecoder, ImageError>,
    max_pixels: u64,
) -> Result<DynamicImage, DetectError> {
    let mut decoder = decoder.map_err(decode_error)?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, max_pixels)?;
    // A broken EXIF block should not cost the client its answer: treat it
    // as "no orientation", as Pillow's exif_transpose does.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Refuses a PNG whose compressed metadata (iCCP, zTXt, compressed iTXt)
/// inflates to more than [`METADATA_BUDGET`] in all, counted by streaming
/// into nothing: at most the budget is ever inflated, none of it kept.
/// Chunks are walked by their lengths; a malformed one ends the walk and is
/// left to the decoder to refuse.
pub fn check_png_metadata(bytes: &[u8]) -> Result<(), DetectError> {
    let mut left = METADATA_BUDGET;
    let mut i = PNG_MAGIC.len();
    while let Some(header) = bytes.get(i..i + 8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let Some(data) = bytes.get(i + 8..(i + 8).saturating_add(len)) else {
            break;
        };
        if let Some(stream) = compressed_metadata(kind, data) {
            let inflated = std::io::copy(
                &mut std::io::Read::take(flate2::read::ZlibDecoder::new(stream), left + 1),
                &mut std::io::sink(),
            )
            .unwrap_or(0); // corrupt: the decoder's to judge
            if inflated > left {
                return Err(DetectError::OverMemoryBudget(format!(
                    "its {} chunks inflate to more than {} MiB",
                    String::from_utf8_lossy(kind),
                    METADATA_BUDGET >> 20
                )));
            }
            left -= inflated;
        }
        if kind == b"IEND" {
            break;
        }
        i += 12 + len; // length, type, data, CRC
    }
    Ok(())
}

/// The zlib stream inside an iCCP, zTXt or compressed iTXt chunk's data.
fn compressed_metadata<'a>(kind: &[u8], data: &'a [u8]) -> Option<&'a [u8]> {
    let after_nul = |d: &'a [u8]| d.iter().position(|&b| b == 0).map(|p| &d[p + 1..]);
    match kind {
        // keyword \0, method, stream
        b"iCCP" | b"zTXt" => after_nul(data)?.get(1..),
        // keyword \0, compressed flag, method, language \0, translated keyword \0, text
        b"iTXt" => {
            let rest = after_nul(data)?;
            if *rest.first()? != 1 {
                return None;
            }
            after_nul(after_nul(rest.get(2..)?)?)
        }
        _ => None,
    }
}

/// The png crate's own allocations (not the output image): metadata, chunk
/// buffers and a few rows of up to 8 bytes a pixel.
fn png_limits_for(width: u32) -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(METADATA_BUDGET + 4 * 8 * u64::from(width));
    limits
}

fn decode_error(e: ImageError) -> DetectError {
    match e {
        ImageError::Limits(ref l) if matches!(l.kind(), LimitErrorKind::InsufficientMemory) => {
            DetectError::OverMemoryBudget(format!(
                "decoding needs more than the {} MiB allowed beside the pixels \
                 (compressed metadata or chunks that inflate too far)",
                METADATA_BUDGET >> 20
            ))
        }
        e => DetectError::Decode(e.to_string()),
    }
}

pub fn check_pixels(width: u32, height: u32, limit: u64) -> Result<(), DetectError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limit {
        return Err(DetectError::TooManyPixels {
            width,
            height,
            pixels,
            limit,
        });
    }
    if pixels == 0 {
        return Err(DetectError::Decode(format!(
            "image has no pixels ({width}x{height})"
        )));
    }
    Ok(())
}

/// Whether a JPEG has its end-of-image marker after the first scan. Inside
/// entropy-coded data a 0xFF byte is always followed by 0x00 or a restart
/// marker, so FF D9 there can only be the real end; markers before the scan
/// (an EXIF thumbnail carries its own FF D9) are skipped by segment length.
pub fn jpeg_has_end(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            i += 1; // garbage between segments: tolerated, as decoders do
            continue;
        }
        match bytes[i + 1] {
            0xFF => i += 1, // fill byte
            0xDA => return bytes[i + 2..].windows(2).any(|w| w == [0xFF, 0xD9]),
            0x01 | 0xD0..=0xD8 => i += 2, // markers without a length
            _ => {
                let Some(len) = bytes.get(i + 2..i + 4) else {
                    return false;
                };
                i += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
    false
}

/// Width and height from a PNG's IHDR chunk (bytes 8..33), if it is there.
pub fn png_ihdr_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || !bytes.starts_with(PNG_MAGIC) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Some((be(16), be(20)))
}

/// 8-bit RGB the way the Python reference (Pillow) gets it: alpha dropped,
/// grey replicated, 16-bit samples keep their top 8 bits (the `image` crate
/// would round instead).
fn to_rgb8(image: DynamicImage) -> RgbImage {
    fn top8(v: u16) -> u8 {
        (v >> 8) as u8
    }
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma16(img) => {
            let (w, h) = img.dimensions();
            let raw = img.into_raw();
            RgbImage::from_fn(w, h, |x, y| {
                let v = top8(raw[(y * w + x) as usize]);
                image::Rgb([v, v, v])
            })
        }
        DynamicImage::ImageLumaA16(img) => RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let v = top8(img.get_pixel(x, y).0[0]);
            image::Rgb([v, v, v])
        }),
        DynamicImage::ImageRgb16(img) => RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let p = img.get_pixel(x, y).0;
            image::Rgb([top8(p[0]), top8(p[1]), top8(p[2])])
        }),
        DynamicImage::ImageRgba16(img) => RgbImage::from_fn(img.width(), img.height(), |x, y| {
            let p = img.get_pixel(x, y).0;
            image::Rgb([top8(p[0]), top8(p[1]), top8(p[2])])
        }),
        // L8 / La8 / Rgba8: replicate grey, drop alpha (no compositing).
        other => other.into_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::codecs::png::PngEncoder;
    use image::codecs::webp::WebPEncoder;
    use image::{ImageEncoder, Rgb};

    fn jpeg(img: &RgbImage) -> Vec<u8> {
        let mut buf = Vec::new();
        JpegEncoder::new_with_quality(&mut buf, 95)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        buf
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 4) as u8, (y * 4) as u8, 128]))
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
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }

    /// A TIFF-structured EXIF block holding only Orientation = `value`.
    fn exif_orientation(value: u16) -> Vec<u8> {
        let mut t = b"II*\0".to_vec();
        t.extend_from_slice(&8u32.to_le_bytes()); // first IFD at 8
        t.extend_from_slice(&1u16.to_le_bytes()); // one entry
        t.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        t.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        t.extend_from_slice(&1u32.to_le_bytes()); // count
        t.extend_from_slice(&value.to_le_bytes());
        t.extend_from_slice(&[0, 0]); // value padding
        t.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        t
    }

    #[test]
    fn a_jpeg_that_panics_the_decoder_is_a_decode_error() {
        // Found by `make fuzz`: zune-jpeg panics (an unwrap in its AVX2 IDCT)
        // on this 534-byte JPEG; it was a failed invocation, not an answer.
        let jpeg = include_bytes!(
            "../../../fuzz/artifacts-found/fixed/images/zune-jpeg-idct-avx2-unwrap.min.jpg"
        );
        match decode(jpeg, 40_000_000) {
            Err(DetectError::Decode(m)) => assert!(m.contains("decoder failed"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(d) => assert!(
                d.rgb.width() > 0,
                "decoded: also fine, if a later zune-jpeg is fixed"
            ),
        }
    }

    #[test]
    fn formats_are_sniffed_from_magic_bytes() {
        assert_eq!(sniff(&jpeg(&gradient(8, 8))).unwrap(), ImageFormat::Jpeg);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").unwrap(), ImageFormat::Png);
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 ").unwrap(), ImageFormat::WebP);
        for (bytes, mention) in [
            (&b"GIF89a\x01\0\x01\0"[..], "GIF"),
            (b"BM\x36\0\0\0", "BMP"),
            (b"\0\0\0\x1cftypavif\0\0\0\0", "HEIF"),
            (b"hello world", "68 65 6c 6c"),
            (b"RIFF\x10\0\0\0WAVEfmt ", "52 49 46 46"),
        ] {
            match sniff(bytes) {
                Err(DetectError::UnsupportedFormat(m)) => assert!(m.contains(mention), "{m}"),
                other => panic!("{mention}: {other:?}"),
            }
        }
        assert!(matches!(sniff(b""), Err(DetectError::Decode(_))));
    }

    #[test]
    fn a_huge_png_is_refused_from_its_header_alone() {
        // GIVEN 33 bytes: signature + an IHDR claiming 10000x10000 RGB, no data
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&10_000u32.to_be_bytes());
        ihdr.extend_from_slice(&10_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = PNG_MAGIC.to_vec();
        png.extend(png_chunk(b"IHDR", &ihdr));
        assert_eq!(png_ihdr_dimensions(&png), Some((10_000, 10_000)));
        // WHEN decoded under the default 40 MP limit THEN refused at once
        let t = Instant::now();
        match decode(&png, 40_000_000) {
            Err(DetectError::TooManyPixels {
                width: 10_000,
                height: 10_000,
                pixels: 100_000_000,
                limit: 40_000_000,
            }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("decoded"),
        }
        assert!(t.elapsed().as_millis() < 50, "no decoding happened");
        // and under a higher limit the same bytes are just corrupt
        assert!(matches!(
            decode(&png, 200_000_000),
            Err(DetectError::Decode(_))
        ));
    }

    #[test]
    fn jpeg_and_webp_limits_come_from_their_headers() {
        let img = gradient(40, 30);
        assert!(matches!(
            decode(&jpeg(&img), 1199),
            Err(DetectError::TooManyPixels {
                width: 40,
                height: 30,
                pixels: 1200,
                ..
            })
        ));
        let mut webp = Vec::new();
        WebPEncoder::new_lossless(&mut webp)
            .write_image(img.as_raw(), 40, 30, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(matches!(
            decode(&webp, 1199),
            Err(DetectError::TooManyPixels { pixels: 1200, .. })
        ));
        let decoded = decode(&webp, 1200).unwrap();
        assert_eq!(decoded.format, ImageFormat::WebP);
        assert_eq!(decoded.rgb, img, "lossless WebP round trip");
    }

    #[test]
    fn truncated_or_corrupt_images_are_decode_errors() {
        let full = jpeg(&gradient(64, 64));
        assert!(decode(&full, 1 << 20).is_ok());
        assert!(jpeg_has_end(&full));
        for cut in [
            full.len() - 2,
            full.len() * 3 / 4,
            full.len() / 2,
            300,
            100,
            3,
        ] {
            match decode(&full[..cut], 1 << 20) {
                Err(DetectError::Decode(_)) => {}
                other => panic!("cut at {cut}/{}: {:?}", full.len(), other.map(|d| d.format)),
            }
        }
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                gradient(64, 64).as_raw(),
                64,
                64,
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        assert!(decode(&png, 1 << 20).is_ok());
        assert!(matches!(
            decode(&png[..png.len() / 2], 1 << 20),
            Err(DetectError::Decode(_))
        ));
        let mut corrupt = png.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid..mid + 16].fill(0x55);
        assert!(matches!(
            decode(&corrupt, 1 << 20),
            Err(DetectError::Decode(_))
        ));
    }

    #[test]
    fn exif_orientation_is_applied() {
        // GIVEN a 32x16 JPEG, left half red, right half blue, whose EXIF says
        // "rotate 90° clockwise to display" (orientation 6)
        let img = RgbImage::from_fn(32, 16, |x, _| {
            if x < 16 {
                Rgb([255, 0, 0])
            } else {
                Rgb([0, 0, 255])
            }
        });
        let plain = jpeg(&img);
        let exif = exif_orientation(6);
        let mut app1 = vec![0xFF, 0xE1];
        app1.extend_from_slice(&((2 + 6 + exif.len()) as u16).to_be_bytes());
        app1.extend_from_slice(b"Exif\0\0");
        app1.extend_from_slice(&exif);
        let mut rotated = plain[..2].to_vec();
        rotated.extend_from_slice(&app1);
        rotated.extend_from_slice(&plain[2..]);
        // WHEN decoded
        let d = decode(&rotated, 1 << 20).unwrap();
        // THEN it is 16 wide, 32 high, red on top (the left side turned up)
        assert_eq!(d.rgb.dimensions(), (16, 32));
        let top = d.rgb.get_pixel(8, 4).0;
        let bottom = d.rgb.get_pixel(8, 28).0;
        assert!(top[0] > 200 && top[2] < 60, "top {top:?}");
        assert!(bottom[2] > 200 && bottom[0] < 60, "bottom {bottom:?}");
        assert_eq!(decode(&plain, 1 << 20).unwrap().rgb.dimensions(), (32, 16));
    }

    #[test]
    fn sixteen_bit_and_alpha_become_8_bit_rgb_like_pillow() {
        // 16-bit grey: top 8 bits (0x12ff → 0x12, where rounding would give 0x13)
        let grey =
            image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(2, 2, image::Luma([0x12ff]));
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(
                &grey
                    .as_raw()
                    .iter()
                    .flat_map(|v| v.to_ne_bytes())
                    .collect::<Vec<_>>(),
                2,
                2,
                image::ExtendedColorType::L16,
            )
            .unwrap();
        assert_eq!(decode(&png, 100).unwrap().rgb.get_pixel(1, 1).0, [0x12; 3]);
        // RGBA: alpha dropped, colour kept as is
        let rgba = image::RgbaImage::from_pixel(2, 2, image::Rgba([10, 20, 30, 0]));
        let mut png = Vec::new();
        PngEncoder::new(&mut png)
            .write_image(rgba.as_raw(), 2, 2, image::ExtendedColorType::Rgba8)
            .unwrap();
        assert_eq!(
            decode(&png, 100).unwrap().rgb.get_pixel(0, 0).0,
            [10, 20, 30]
        );
    }
}

//! Image sniffing, header reading and decoding (`modelobs_detector::image_input`).
//! The input is the image file's bytes.

use modelobs_detector::DetectError;
use modelobs_detector::image_input::{
    self, ImageFormat, check_png_metadata, decode, jpeg_has_end, png_ihdr_dimensions, sniff,
};

/// Small, so a crafted header cannot make the fuzzer allocate a huge image;
/// the limit's logic is the same at 40 MP.
pub const MAX_PIXELS: u64 = 1 << 16;

pub fn run(data: &[u8]) {
    let sniffed = sniff(data);
    if let Err(e) = &sniffed {
        let _ = (e.to_string(), e.code());
    }
    let ihdr = png_ihdr_dimensions(data);
    if ihdr.is_some() {
        assert_eq!(
            sniffed.as_ref().ok(),
            Some(&ImageFormat::Png),
            "IHDR read from a non-PNG"
        );
    }
    let has_end = jpeg_has_end(data);
    let metadata = check_png_metadata(data);
    if let Err(e) = &metadata {
        assert!(matches!(e, DetectError::OverMemoryBudget(_)), "{e:?}");
    }

    match decode(data, MAX_PIXELS) {
        Ok(image) => {
            assert_eq!(
                sniffed.as_ref().ok(),
                Some(&image.format),
                "decoded as another format than sniffed"
            );
            let (w, h) = image.rgb.dimensions();
            let pixels = u64::from(w) * u64::from(h);
            assert!(
                pixels > 0 && pixels <= MAX_PIXELS,
                "{w}x{h} passed the limit"
            );
            assert_eq!(image.rgb.as_raw().len() as u64, 3 * pixels, "not 8-bit RGB");
            match image.format {
                ImageFormat::Jpeg => assert!(has_end, "a JPEG without its end marker decoded"),
                ImageFormat::Png => {
                    assert!(metadata.is_ok(), "a PNG over the metadata budget decoded");
                    // EXIF orientation may have turned the image a quarter.
                    if let Some((iw, ih)) = ihdr {
                        assert!(
                            (iw, ih) == (w, h) || (ih, iw) == (w, h),
                            "IHDR {iw}x{ih}, decoded {w}x{h}"
                        );
                    }
                }
                ImageFormat::WebP => {}
            }
        }
        Err(e) => {
            let _ = (e.to_string(), e.code());
            match e {
                DetectError::TooManyPixels {
                    width,
                    height,
                    pixels,
                    limit,
                } => {
                    assert_eq!(limit, MAX_PIXELS);
                    assert_eq!(pixels, u64::from(width) * u64::from(height));
                    assert!(pixels > limit);
                }
                DetectError::Model(m) => panic!("decoding reported a model error: {m}"),
                _ => {}
            }
        }
    }
    // The 40 MP production limit refuses from the header alone what it must:
    // nothing over it is ever decoded.
    if let Some((w, h)) = ihdr
        && u64::from(w) * u64::from(h) > 40_000_000
    {
        assert!(matches!(
            image_input::check_pixels(w, h, 40_000_000),
            Err(DetectError::TooManyPixels { .. })
        ));
    }
}

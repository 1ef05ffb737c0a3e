//! Decompression bombs in every accepted format are refused before their
//! memory is taken: from the header (pixels), or by the decoder's allocation
//! limit (PNG's compressed metadata). No model needed: this is the decoder.
//! Peak memory is measured on the whole process in `cli/tests/predict_cli.rs`.

use modelobs_detector::DetectError;
use modelobs_detector::image_input::{METADATA_BUDGET, decode};
use modelobs_testkit::bombs;

const MAX_PIXELS: u64 = 40_000_000; // the inference function's default

#[test]
fn every_bomb_is_refused_as_too_large() {
    // GIVEN bombs whose metadata inflates to 64x the budget, or whose header
    // claims 100x the pixel limit
    for bomb in bombs::all(64 * METADATA_BUDGET as usize) {
        // WHEN decoded under the default pixel limit
        let result = decode(&bomb.bytes, MAX_PIXELS);
        // THEN refused with the client's "image too large", never decoded
        match result {
            Err(e @ (DetectError::TooManyPixels { .. } | DetectError::OverMemoryBudget(_))) => {
                assert_eq!(e.code(), "image_too_large", "{}", bomb.name);
            }
            Err(e) => panic!("{}: refused for the wrong reason: {e}", bomb.name),
            Ok(d) => panic!("{}: decoded {:?}", bomb.name, d.rgb.dimensions()),
        }
    }
}

#[test]
fn metadata_within_the_budget_still_decodes() {
    // GIVEN 1x1 PNGs whose iCCP / zTXt chunks inflate to 1 MiB (a large but
    // real ICC profile or comment)
    for kind in [b"iCCP", b"zTXt"] {
        let mut body = if kind == b"iCCP" {
            b"icc".to_vec()
        } else {
            b"Comment".to_vec()
        };
        body.extend_from_slice(&[0, 0]);
        body.extend(bombs::zlib_zeros(1 << 20));
        let png = bombs::png_with_chunk(kind, &body);
        // WHEN decoded THEN the one pixel comes out
        let d = decode(&png, MAX_PIXELS).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(d.rgb.get_pixel(0, 0).0, [200, 100, 50]);
    }
}

#[test]
fn the_crafted_headers_are_what_they_claim() {
    // The bombs are only proof if a decoder reads their headers as intended
    // (zune-jpeg would decode the 64-byte JPEG to 3.6 G grey pixels if the
    // limit allowed it): the refusal names the dimensions claimed.
    for (bytes, name, claim) in [
        (bombs::png_claiming(60_000, 60_000), "png", (60_000, 60_000)),
        (
            bombs::jpeg_claiming(60_000, 60_000),
            "jpeg",
            (60_000, 60_000),
        ),
        (
            bombs::webp_lossless_claiming(16_383, 16_383),
            "webp",
            (16_383, 16_383),
        ),
    ] {
        match decode(&bytes, MAX_PIXELS) {
            Err(DetectError::TooManyPixels { width, height, .. }) => {
                assert_eq!((width, height), claim, "{name}")
            }
            other => panic!("{name}: {:?}", other.map(|d| d.rgb.dimensions())),
        }
    }
}

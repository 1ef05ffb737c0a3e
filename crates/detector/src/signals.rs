//! Image signals of a capture's profile (`modelobs_core::profile`), measured
//! on the picture at the model's input size: the resized RGB the tensor is
//! written from, without the letterbox border.

use modelobs_core::profile::ImageSignals;

/// Reused between calls: the luma plane.
#[derive(Debug, Default)]
pub struct LumaScratch {
    luma: Vec<u8>,
}

/// Mean luma, RMS contrast and the variance of the 4-neighbour Laplacian of
/// `rgb` (`w`×`h`, 3 bytes a pixel), all in `[0, 1]` units of luma.
pub fn measure(rgb: &[u8], w: u32, h: u32, scratch: &mut LumaScratch) -> ImageSignals {
    let (w, h) = (w as usize, h as usize);
    let n = w * h;
    let mut out = ImageSignals {
        measured_width: w as u32,
        measured_height: h as u32,
        ..ImageSignals::default()
    };
    if n == 0 || rgb.len() < n * 3 {
        return out;
    }
    let luma = &mut scratch.luma;
    luma.clear();
    // Rec. 601 luma in 8 bits, rounded: (77 R + 150 G + 29 B + 128) / 256.
    luma.extend(rgb[..n * 3].chunks_exact(3).map(|p| {
        ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]) + 128) >> 8) as u8
    }));
    let (mut sum, mut sum_sq) = (0u64, 0u64);
    for &v in luma.iter() {
        let v = u64::from(v);
        sum += v;
        sum_sq += v * v;
    }
    let nf = n as f64;
    let mean = sum as f64 / nf;
    let var = (sum_sq as f64 / nf - mean * mean).max(0.0);
    out.luminance = mean / 255.0;
    out.contrast = var.sqrt() / 255.0;

    if w >= 3 && h >= 3 {
        let (mut lsum, mut lsum_sq) = (0i64, 0i64);
        for y in 1..h - 1 {
            let up = &luma[(y - 1) * w..y * w];
            let row = &luma[y * w..(y + 1) * w];
            let down = &luma[(y + 1) * w..(y + 2) * w];
            let (mut s, mut sq) = (0i64, 0i64);
            for x in 1..w - 1 {
                let l = 4 * i32::from(row[x])
                    - i32::from(row[x - 1])
                    - i32::from(row[x + 1])
                    - i32::from(up[x])
                    - i32::from(down[x]);
                s += i64::from(l);
                sq += i64::from(l * l);
            }
            lsum += s;
            lsum_sq += sq;
        }
        let m = ((w - 2) * (h - 2)) as f64;
        let lmean = lsum as f64 / m;
        out.sharpness = ((lsum_sq as f64 / m - lmean * lmean) / (255.0 * 255.0)).max(0.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        (0..w * h).flat_map(|_| rgb).collect()
    }

    #[test]
    fn a_flat_picture_has_its_luma_and_no_contrast_or_edges() {
        let mut s = LumaScratch::default();
        let m = measure(&flat(8, 6, [255, 255, 255]), 8, 6, &mut s);
        assert_eq!(m.luminance, 1.0);
        assert_eq!((m.contrast, m.sharpness), (0.0, 0.0));
        assert_eq!((m.measured_width, m.measured_height), (8, 6));
        let m = measure(&flat(8, 6, [0, 0, 0]), 8, 6, &mut s);
        assert_eq!(m.luminance, 0.0);
    }

    #[test]
    fn a_checkerboard_is_sharper_than_its_blur_and_darkening_lowers_luma() {
        // GIVEN a black/white checkerboard, the same with 2-pixel squares, and
        // the checkerboard at a quarter of the light
        let board = |cell: u32, hi: u8| -> Vec<u8> {
            (0..16 * 16)
                .flat_map(|i| {
                    let (x, y) = (i % 16, i / 16);
                    let v = if (x / cell + y / cell).is_multiple_of(2) {
                        hi
                    } else {
                        0
                    };
                    [v, v, v]
                })
                .collect()
        };
        let mut s = LumaScratch::default();
        let fine = measure(&board(1, 255), 16, 16, &mut s);
        let coarse = measure(&board(2, 255), 16, 16, &mut s);
        let dark = measure(&board(1, 64), 16, 16, &mut s);
        assert!((fine.luminance - 0.5).abs() < 1e-12);
        assert!((fine.contrast - 0.5).abs() < 1e-12, "{}", fine.contrast);
        assert!(fine.sharpness > coarse.sharpness, "{fine:?} {coarse:?}");
        assert!(dark.luminance < 0.2 && dark.sharpness < fine.sharpness / 10.0);
        // The Laplacian of a 1-pixel checkerboard is ±(4·255)/255 = ±4 → variance 16.
        assert!((fine.sharpness - 16.0).abs() < 1e-9, "{}", fine.sharpness);
    }

    #[test]
    fn tiny_or_short_buffers_do_not_panic() {
        let mut s = LumaScratch::default();
        assert_eq!(measure(&[], 0, 0, &mut s).luminance, 0.0);
        let m = measure(&[10, 20, 30, 40, 50, 60], 2, 1, &mut s);
        assert_eq!(m.sharpness, 0.0);
        assert!(m.luminance > 0.0);
        assert_eq!(
            measure(&[1, 2], 4, 4, &mut s).luminance,
            0.0,
            "short buffer"
        );
    }
}

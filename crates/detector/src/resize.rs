//! Pillow's antialiased resampling (`Image.resize`, libImaging/Resample.c),
//! bit for bit, for 8-bit RGB.
//!
//! `fast_image_resize`'s `Convolution(Bilinear)` comes close but is not exact
//! (16-bit coefficients: ±1 in ~9 % of values), and on this small model one
//! grey level here and there moves low-confidence boxes by up to 5 px. The
//! integer arithmetic below is Pillow's, so the order of the additions does
//! not matter and the loops are free to vectorise.

/// Pillow's fixed point for 8-bit images: `32 - 8 - 2` fractional bits.
const PRECISION_BITS: u32 = 22;
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// A separable filter: its kernel and its support at scale 1.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    pub kernel: fn(f64) -> f64,
    pub support: f64,
}

/// Pillow's `BILINEAR` (a triangle).
pub const BILINEAR: Filter = Filter {
    kernel: |x| {
        let x = x.abs();
        if x < 1.0 { 1.0 - x } else { 0.0 }
    },
    support: 1.0,
};

/// Per output pixel: the first source pixel and how many contribute, and the
/// fixed-point weights (`ksize` slots each).
#[derive(Debug, Default)]
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
    ksize: usize,
}

impl Coeffs {
    /// `precompute_coeffs` + `normalize_coeffs_8bpc`, for the whole source
    /// range `0..in_size`.
    fn new(in_size: u32, out_size: u32, filter: Filter) -> Self {
        // Pillow takes the box as C floats; whole numbers convert exactly.
        let scale = f64::from(in_size) / f64::from(out_size);
        let filterscale = scale.max(1.0);
        let support = filter.support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(out_size as usize);
        let mut weights = vec![0i32; out_size as usize * ksize];
        let mut k = vec![0f64; ksize];
        for (xx, slots) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) - xmin;
            let n = xmax.max(0) as usize;
            let mut ww = 0.0;
            for (x, w) in k[..n].iter_mut().enumerate() {
                *w = (filter.kernel)(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                ww += *w;
            }
            for (slot, &w) in slots.iter_mut().zip(&k[..n]) {
                let w = if ww != 0.0 { w / ww } else { w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                *slot = if w < 0.0 {
                    (-0.5 + fixed) as i32
                } else {
                    (0.5 + fixed) as i32
                };
            }
            bounds.push((xmin as usize, n));
        }
        Self {
            bounds,
            weights,
            ksize,
        }
    }

    fn taps(&self, out: usize) -> (usize, &[i32]) {
        let (min, n) = self.bounds[out];
        (min, &self.weights[out * self.ksize..out * self.ksize + n])
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// Buffers reused from call to call.
#[derive(Debug, Default)]
pub struct Resampler {
    /// The horizontal pass's output: rows `first_row..` of the source,
    /// already at the output width.
    horizontal: Vec<u8>,
    accumulator: Vec<i32>,
}

impl Resampler {
    /// Resizes `src` (`w`×`h` RGB, 3 bytes a pixel, rows packed) to
    /// `ow`×`oh` into `dst` (`ow * oh * 3` bytes), as Pillow's
    /// `Image.resize((ow, oh), filter, reducing_gap=None)` does.
    #[allow(clippy::too_many_arguments)]
    pub fn resize_rgb(
        &mut self,
        src: &[u8],
        w: u32,
        h: u32,
        dst: &mut [u8],
        ow: u32,
        oh: u32,
        filter: Filter,
    ) {
        let (wu, hu, owu, ohu) = (w as usize, h as usize, ow as usize, oh as usize);
        assert_eq!(src.len(), wu * hu * 3, "source size");
        assert_eq!(dst.len(), owu * ohu * 3, "destination size");
        if (w, h) == (ow, oh) {
            dst.copy_from_slice(src);
            return;
        }
        let vertical = Coeffs::new(h, oh, filter);
        if w == ow {
            vertical_pass(src, owu, &vertical, 0, dst, &mut self.accumulator);
            return;
        }
        // Only the source rows the vertical pass reads go through the
        // horizontal one (Pillow's ybox_first / ybox_last).
        let first_row = vertical.bounds[0].0;
        let last_row = vertical.bounds[ohu - 1].0 + vertical.bounds[ohu - 1].1;
        let horizontal = Coeffs::new(w, ow, filter);
        let rows = last_row - first_row;
        let out = if h == oh {
            &mut *dst
        } else {
            self.horizontal.resize(rows * owu * 3, 0);
            &mut self.horizontal[..]
        };
        horizontal_pass(
            &src[first_row * wu * 3..last_row * wu * 3],
            wu,
            &horizontal,
            owu,
            out,
        );
        if h != oh {
            vertical_pass(
                &self.horizontal,
                owu,
                &vertical,
                first_row,
                dst,
                &mut self.accumulator,
            );
        }
    }
}

fn horizontal_pass(src: &[u8], w: usize, coeffs: &Coeffs, ow: usize, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { horizontal_pass_avx2(src, w, coeffs, ow, dst) };
    }
    horizontal_pass_generic(src, w, coeffs, ow, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn horizontal_pass_avx2(src: &[u8], w: usize, coeffs: &Coeffs, ow: usize, dst: &mut [u8]) {
    horizontal_pass_generic(src, w, coeffs, ow, dst);
}

/// Every output pixel gets the same number of taps, `K`: windows shorter than
/// that are moved to fit inside the row and padded with zero weights (which
/// add nothing, so the sums stay Pillow's). A fixed `K` lets the compiler
/// unroll the taps.
#[inline(always)]
fn horizontal_pass_generic(src: &[u8], w: usize, coeffs: &Coeffs, ow: usize, dst: &mut [u8]) {
    // ksize = 2·ceil(scale)+1: 3 up to 2x, 9 up to 4x, 25 up to 12x
    // (a 5000-pixel-wide photo to 416); wider windows take the generic loop.
    match coeffs.ksize.min(w) {
        1 => horizontal_fixed::<1>(src, w, coeffs, ow, dst),
        2 => horizontal_fixed::<2>(src, w, coeffs, ow, dst),
        3 => horizontal_fixed::<3>(src, w, coeffs, ow, dst),
        5 => horizontal_fixed::<5>(src, w, coeffs, ow, dst),
        7 => horizontal_fixed::<7>(src, w, coeffs, ow, dst),
        9 => horizontal_fixed::<9>(src, w, coeffs, ow, dst),
        11 => horizontal_fixed::<11>(src, w, coeffs, ow, dst),
        13 => horizontal_fixed::<13>(src, w, coeffs, ow, dst),
        15 => horizontal_fixed::<15>(src, w, coeffs, ow, dst),
        17 => horizontal_fixed::<17>(src, w, coeffs, ow, dst),
        19 => horizontal_fixed::<19>(src, w, coeffs, ow, dst),
        21 => horizontal_fixed::<21>(src, w, coeffs, ow, dst),
        23 => horizontal_fixed::<23>(src, w, coeffs, ow, dst),
        25 => horizontal_fixed::<25>(src, w, coeffs, ow, dst),
        _ => horizontal_any(src, w, coeffs, ow, dst),
    }
}

/// The taps of every output pixel as (first source pixel, K weights).
fn fixed_taps<const K: usize>(coeffs: &Coeffs, w: usize) -> Vec<(usize, [i32; K])> {
    coeffs
        .bounds
        .iter()
        .enumerate()
        .map(|(xx, &(xmin, n))| {
            let start = xmin.min(w - K);
            let mut k = [0i32; K];
            let weights = &coeffs.weights[xx * coeffs.ksize..xx * coeffs.ksize + n];
            k[xmin - start..xmin - start + n].copy_from_slice(weights);
            (start, k)
        })
        .collect()
}

#[inline(always)]
fn horizontal_fixed<const K: usize>(
    src: &[u8],
    w: usize,
    coeffs: &Coeffs,
    ow: usize,
    dst: &mut [u8],
) {
    let taps = fixed_taps::<K>(coeffs, w);
    for (row_in, row_out) in src.chunks_exact(w * 3).zip(dst.chunks_exact_mut(ow * 3)) {
        for (&(start, k), px_out) in taps.iter().zip(row_out.chunks_exact_mut(3)) {
            let window = &row_in[start * 3..start * 3 + K * 3];
            let mut s = [HALF; 3];
            for t in 0..K {
                for c in 0..3 {
                    s[c] += i32::from(window[t * 3 + c]) * k[t];
                }
            }
            for c in 0..3 {
                px_out[c] = clip8(s[c]);
            }
        }
    }
}

fn horizontal_any(src: &[u8], w: usize, coeffs: &Coeffs, ow: usize, dst: &mut [u8]) {
    for (row_in, row_out) in src.chunks_exact(w * 3).zip(dst.chunks_exact_mut(ow * 3)) {
        for (xx, px_out) in row_out.chunks_exact_mut(3).enumerate() {
            let (xmin, k) = coeffs.taps(xx);
            let mut s = [HALF; 3];
            for (px, &kk) in row_in[xmin * 3..].chunks_exact(3).zip(k) {
                for c in 0..3 {
                    s[c] += i32::from(px[c]) * kk;
                }
            }
            px_out[0] = clip8(s[0]);
            px_out[1] = clip8(s[1]);
            px_out[2] = clip8(s[2]);
        }
    }
}

/// `src` holds rows `row_offset..` of the image being resized vertically.
fn vertical_pass(
    src: &[u8],
    w: usize,
    coeffs: &Coeffs,
    row_offset: usize,
    dst: &mut [u8],
    acc: &mut Vec<i32>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { vertical_pass_avx2(src, w, coeffs, row_offset, dst, acc) };
    }
    vertical_pass_generic(src, w, coeffs, row_offset, dst, acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_pass_avx2(
    src: &[u8],
    w: usize,
    coeffs: &Coeffs,
    row_offset: usize,
    dst: &mut [u8],
    acc: &mut Vec<i32>,
) {
    vertical_pass_generic(src, w, coeffs, row_offset, dst, acc);
}

#[inline(always)]
fn vertical_pass_generic(
    src: &[u8],
    w: usize,
    coeffs: &Coeffs,
    row_offset: usize,
    dst: &mut [u8],
    acc: &mut Vec<i32>,
) {
    let stride = w * 3;
    acc.resize(stride, 0);
    for (yy, row_out) in dst.chunks_exact_mut(stride).enumerate() {
        let (ymin, k) = coeffs.taps(yy);
        acc.fill(HALF);
        for (y, &kk) in (ymin - row_offset..).zip(k) {
            let row = &src[y * stride..(y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += i32::from(p) * kk;
            }
        }
        for (o, &a) in row_out.iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same pseudo-random 37x23 image tests/fixtures/pillow_resize.py builds.
    fn source() -> Vec<u8> {
        let mut state: u32 = 12345;
        (0..37 * 23 * 3)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn matches_pillow_bit_for_bit() {
        // Sizes and expected bytes from tests/fixtures/pillow_resize.py (Pillow 13).
        let expected = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pillow_resize.bin"),
        )
        .unwrap();
        let src = source();
        let mut r = Resampler::default();
        let mut at = 0;
        for (ow, oh) in [
            (16, 10),
            (50, 31),
            (37, 7),
            (5, 23),
            (1, 1),
            (36, 22),
            (90, 56),
        ] {
            let mut out = vec![0u8; ow * oh * 3];
            r.resize_rgb(&src, 37, 23, &mut out, ow as u32, oh as u32, BILINEAR);
            assert_eq!(out, expected[at..at + out.len()], "37x23 → {ow}x{oh}");
            at += out.len();
        }
        assert_eq!(at, expected.len());
    }

    #[test]
    fn downscale_weights_widen_with_the_scale() {
        // 4x1 → 2x1: support 2 px, output 0 weighs sources 0, 1, 2 by 3/7, 3/7, 1/7.
        let src = [0u8, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255];
        let mut out = [0u8; 6];
        Resampler::default().resize_rgb(&src, 4, 1, &mut out, 2, 1, BILINEAR);
        assert_eq!(out, [71, 71, 71, 209, 209, 209]);
    }
}

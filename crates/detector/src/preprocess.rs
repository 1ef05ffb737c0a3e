//! RGB pixels → the model's input tensor: Pillow's antialiased bilinear
//! resize (letterbox or stretch), then channel order and mean/std
//! normalisation written into the NCHW tensor in one pass.

use crate::metadata::{Align, InputSpec, ResizeMode};
use crate::resize::{BILINEAR, Resampler};

/// Where the original image landed inside the model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub orig_w: u32,
    pub orig_h: u32,
    pub offset_x: u32,
    pub offset_y: u32,
    pub scaled_w: u32,
    pub scaled_h: u32,
}

impl Placement {
    /// Geometry of models/README.md "The pipeline, exactly", step 2.
    pub fn new(orig_w: u32, orig_h: u32, input: &InputSpec) -> Self {
        let (iw, ih) = (input.width, input.height);
        match input.resize.mode {
            ResizeMode::Stretch => Self {
                orig_w,
                orig_h,
                offset_x: 0,
                offset_y: 0,
                scaled_w: iw,
                scaled_h: ih,
            },
            ResizeMode::Letterbox => {
                let r = (f64::from(iw) / f64::from(orig_w)).min(f64::from(ih) / f64::from(orig_h));
                // Round half up, as the reference does (not half to even).
                let scale =
                    |v: u32, max: u32| ((f64::from(v) * r + 0.5).floor() as u32).clamp(1, max);
                let (sw, sh) = (scale(orig_w, iw), scale(orig_h, ih));
                let (ox, oy) = match input.resize.align {
                    Align::Center => ((iw - sw) / 2, (ih - sh) / 2),
                    Align::TopLeft => (0, 0),
                };
                Self {
                    orig_w,
                    orig_h,
                    offset_x: ox,
                    offset_y: oy,
                    scaled_w: sw,
                    scaled_h: sh,
                }
            }
        }
    }

    /// A box in model-input pixels → original pixels, clamped to the image.
    /// `None` when nothing of it is left inside the image.
    pub fn to_original(&self, b: [f64; 4]) -> Option<[f64; 4]> {
        let sx = f64::from(self.orig_w) / f64::from(self.scaled_w);
        let sy = f64::from(self.orig_h) / f64::from(self.scaled_h);
        let (ox, oy) = (f64::from(self.offset_x), f64::from(self.offset_y));
        let (w, h) = (f64::from(self.orig_w), f64::from(self.orig_h));
        let x1 = ((b[0] - ox) * sx).clamp(0.0, w);
        let y1 = ((b[1] - oy) * sy).clamp(0.0, h);
        let x2 = ((b[2] - ox) * sx).clamp(0.0, w);
        let y2 = ((b[3] - oy) * sy).clamp(0.0, h);
        (x2 > x1 && y2 > y1).then_some([x1, y1, x2, y2])
    }
}

/// Everything preprocessing needs, computed once per model.
pub struct Preprocessor {
    width: u32,
    height: u32,
    /// Tensor plane `c` takes RGB component `source[c]`.
    source: [usize; 3],
    /// `(v - mean[c]) / std[c]` for every 8-bit value, computed in f32 as the
    /// reference does, so the tensor matches it bit for bit.
    lut: [[f32; 256]; 3],
    /// The normalised border value of each plane.
    pad: [f32; 3],
    spec: InputSpec,
}

/// Reused between calls: the resized image and the resampler's buffers.
#[derive(Debug, Default)]
pub struct Scratch {
    resized: Vec<u8>,
    resampler: Resampler,
}

impl Scratch {
    /// The picture [`Preprocessor::run`] wrote into the tensor for `place`
    /// (scaled, no border): `rgb` itself when it needed no resize.
    pub fn scaled<'a>(&'a self, rgb: &'a [u8], place: &Placement) -> &'a [u8] {
        if (place.scaled_w, place.scaled_h) == (place.orig_w, place.orig_h) {
            rgb
        } else {
            &self.resized[..place.scaled_w as usize * place.scaled_h as usize * 3]
        }
    }
}

impl Preprocessor {
    pub fn new(input: &InputSpec, source: [usize; 3]) -> Self {
        let mut lut = [[0f32; 256]; 3];
        let mut pad = [0f32; 3];
        for c in 0..3 {
            let (mean, std) = (input.normalize.mean[c], input.normalize.std[c]);
            for (v, slot) in lut[c].iter_mut().enumerate() {
                *slot = (v as f32 - mean) / std;
            }
            pad[c] = lut[c][usize::from(input.resize.pad_rgb[source[c]])];
        }
        Self {
            width: input.width,
            height: input.height,
            source,
            lut,
            pad,
            spec: input.clone(),
        }
    }

    pub fn tensor_len(&self) -> usize {
        3 * self.width as usize * self.height as usize
    }

    pub fn placement(&self, w: u32, h: u32) -> Placement {
        Placement::new(w, h, &self.spec)
    }

    /// Resizes `rgb` (w×h, 3 bytes a pixel) and writes the normalised NCHW
    /// tensor into `tensor` (length [`Self::tensor_len`]).
    pub fn run(
        &self,
        rgb: &[u8],
        w: u32,
        h: u32,
        scratch: &mut Scratch,
        tensor: &mut [f32],
    ) -> Placement {
        let place = self.placement(w, h);
        let (sw, sh) = (place.scaled_w, place.scaled_h);
        let pixels: &[u8] = if (sw, sh) == (w, h) {
            // Pillow returns an unchanged copy when the size already fits.
            rgb
        } else {
            let len = sw as usize * sh as usize * 3;
            scratch.resized.resize(len, 0);
            let dst = &mut scratch.resized[..len];
            scratch
                .resampler
                .resize_rgb(rgb, w, h, dst, sw, sh, BILINEAR);
            &scratch.resized[..len]
        };
        self.write_tensor(pixels, &place, tensor);
        place
    }

    /// One pass over the canvas: every output element is written exactly once.
    fn write_tensor(&self, pixels: &[u8], place: &Placement, tensor: &mut [f32]) {
        let (iw, ih) = (self.width as usize, self.height as usize);
        let plane_len = iw * ih;
        let (ox, oy) = (place.offset_x as usize, place.offset_y as usize);
        let (sw, sh) = (place.scaled_w as usize, place.scaled_h as usize);
        let (p0, rest) = tensor.split_at_mut(plane_len);
        let (p1, p2) = rest.split_at_mut(plane_len);
        let [s0, s1, s2] = self.source;
        let [l0, l1, l2] = &self.lut;
        for y in 0..ih {
            let row = y * iw..(y + 1) * iw;
            let (r0, r1, r2) = (&mut p0[row.clone()], &mut p1[row.clone()], &mut p2[row]);
            if y < oy || y >= oy + sh {
                r0.fill(self.pad[0]);
                r1.fill(self.pad[1]);
                r2.fill(self.pad[2]);
                continue;
            }
            r0[..ox].fill(self.pad[0]);
            r1[..ox].fill(self.pad[1]);
            r2[..ox].fill(self.pad[2]);
            r0[ox + sw..].fill(self.pad[0]);
            r1[ox + sw..].fill(self.pad[1]);
            r2[ox + sw..].fill(self.pad[2]);
            let src = &pixels[(y - oy) * sw * 3..(y - oy + 1) * sw * 3];
            let dst = r0[ox..ox + sw]
                .iter_mut()
                .zip(r1[ox..ox + sw].iter_mut())
                .zip(r2[ox..ox + sw].iter_mut());
            for (((d0, d1), d2), px) in dst.zip(src.chunks_exact(3)) {
                *d0 = l0[usize::from(px[s0])];
                *d1 = l1[usize::from(px[s1])];
                *d2 = l2[usize::from(px[s2])];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{NormalizeSpec, ResizeSpec};

    fn input(mode: ResizeMode, align: Align) -> InputSpec {
        InputSpec {
            name: "images".into(),
            width: 416,
            height: 416,
            layout: "NCHW".into(),
            dtype: "float32".into(),
            channel_order: "BGR".into(),
            resize: ResizeSpec {
                mode,
                align,
                pad_rgb: [0, 0, 0],
                filter: "bilinear".into(),
                antialias: true,
            },
            normalize: NormalizeSpec {
                mean: [103.53, 116.28, 123.675],
                std: [57.375, 57.12, 58.395],
            },
        }
    }

    #[test]
    fn letterbox_keeps_aspect_and_centres() {
        let spec = input(ResizeMode::Letterbox, Align::Center);
        // horses.jpg: 773x512 → r = 416/773; 512·r = 275.55 → 276 (half up)
        let p = Placement::new(773, 512, &spec);
        assert_eq!((p.scaled_w, p.scaled_h), (416, 276));
        assert_eq!((p.offset_x, p.offset_y), (0, 70));
        // already fits in height (r = min(2.08, 1) = 1): no scaling, centred in x
        let p = Placement::new(200, 416, &spec);
        assert_eq!(
            (p.scaled_w, p.scaled_h, p.offset_x, p.offset_y),
            (200, 416, 108, 0)
        );
        // a 1-pixel-high strip never scales to zero
        let p = Placement::new(10000, 1, &spec);
        assert_eq!((p.scaled_w, p.scaled_h), (416, 1));
        // round half up: 5x3 → r = 83.2, 3·83.2 = 249.6 → 250
        let p = Placement::new(5, 3, &spec);
        assert_eq!((p.scaled_w, p.scaled_h, p.offset_y), (416, 250, 83));
        let p = Placement::new(773, 512, &input(ResizeMode::Letterbox, Align::TopLeft));
        assert_eq!((p.offset_x, p.offset_y), (0, 0));
        let p = Placement::new(773, 512, &input(ResizeMode::Stretch, Align::Center));
        assert_eq!(
            (p.scaled_w, p.scaled_h, p.offset_x, p.offset_y),
            (416, 416, 0, 0)
        );
    }

    #[test]
    fn boxes_map_back_to_original_pixels_and_clamp() {
        let spec = input(ResizeMode::Letterbox, Align::Center);
        let p = Placement::new(832, 552, &spec); // r = 0.5, 416x276, offset y 70
        assert_eq!(p.scaled_h, 276);
        let b = p.to_original([10.0, 80.0, 110.0, 180.0]).unwrap();
        let sy = 552.0 / 276.0;
        assert_eq!(b, [20.0, 10.0 * sy, 220.0, 110.0 * sy]);
        // sticking out of the image (into the padding) → clamped
        let b = p.to_original([-5.0, 0.0, 500.0, 400.0]).unwrap();
        assert_eq!(b, [0.0, 0.0, 832.0, 552.0]);
        // entirely in the padding → gone
        assert_eq!(p.to_original([10.0, 0.0, 50.0, 60.0]), None);
    }

    #[test]
    fn tensor_is_bgr_normalised_with_padded_border() {
        let spec = input(ResizeMode::Letterbox, Align::Center);
        let pre = Preprocessor::new(&spec, [2, 1, 0]);
        // 416x208 solid colour: no resize, rows 104..312 hold the image
        let (r, g, b) = (200u8, 100u8, 50u8);
        let rgb: Vec<u8> = [r, g, b].repeat(416 * 208);
        let mut tensor = vec![f32::NAN; pre.tensor_len()];
        let place = pre.run(&rgb, 416, 208, &mut Scratch::default(), &mut tensor);
        assert_eq!((place.offset_y, place.scaled_h), (104, 208));
        assert!(
            tensor.iter().all(|v| v.is_finite()),
            "every element written"
        );
        let at = |c: usize, y: usize, x: usize| tensor[c * 416 * 416 + y * 416 + x];
        let norm = |v: u8, c: usize| (v as f32 - spec.normalize.mean[c]) / spec.normalize.std[c];
        assert_eq!(at(0, 200, 3), norm(b, 0));
        assert_eq!(at(1, 200, 3), norm(g, 1));
        assert_eq!(at(2, 200, 3), norm(r, 2));
        assert_eq!(at(0, 10, 10), norm(0, 0), "border is black, normalised");
        assert_eq!(at(2, 415, 415), norm(0, 2));
        assert_eq!(at(1, 103, 0), norm(0, 1));
        assert_eq!(at(1, 104, 0), norm(g, 1));
    }
}

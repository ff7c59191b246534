//! Turning any grayscale picture of a digit into a 28x28 input "as MNIST was
//! made": bright ink on black, the ink's bounding box scaled so its longer
//! side is 20 pixels (aspect ratio kept, antialiased), and the result placed
//! in a 28x28 frame so that its centre of mass lies at the frame's centre.
//!
//! [`preprocess_digit`] is a pure function of a luminance buffer;
//! [`load_digit_image`](crate::load_digit_image) decodes an image file
//! (within [`MAX_IMAGE_PIXELS`](crate::MAX_IMAGE_PIXELS)) and calls it.
//! Besides the input it allocates one byte per input pixel (the ink map) and
//! a few kilobytes.

use crate::error::{DataError, Result};

/// Side of the frame that [`preprocess_digit`] produces, as in MNIST.
pub const DIGIT_FRAME: usize = 28;

/// Longer side of the digit's box inside the frame, as in MNIST.
pub const DIGIT_BOX: usize = 20;

/// Pixels in the frame: `28 * 28 = 784`.
pub const DIGIT_PIXELS: usize = DIGIT_FRAME * DIGIT_FRAME;

/// The least contrast between ink and background, in grey levels out of 255,
/// below which an image counts as blank.
pub const MIN_INK_CONTRAST: u8 = 32;

/// A picture brought into MNIST's form by [`preprocess_digit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preprocessed {
    /// The 28x28 frame, row-major, ink bright (up to 255) on black (0).
    pub pixels: [u8; DIGIT_PIXELS],
    /// Whether the picture had a light background and was inverted.
    pub inverted: bool,
    /// The ink's bounding box in the input, `(x0, y0, x1, y1)` with `x1` and
    /// `y1` exclusive.
    pub ink_box: (usize, usize, usize, usize),
    /// The size `(width, height)` the ink box was scaled to.
    pub scaled: (usize, usize),
}

/// Brings a grayscale picture of one digit into MNIST's form.
///
/// `luma` holds `width * height` luminance bytes, row-major. The steps:
///
/// 1. **Polarity.** The background level is the median of the border pixels
///    (the median, not the mean, so that ink touching the border does not
///    sway it). When it is light (above 127) the picture is inverted, so the
///    ink is always bright.
/// 2. **Background and noise.** The background level is subtracted and the
///    remaining ink stretched so its brightest pixel is 255; pixels below one
///    sixteenth of the brightest ink (paper grain, JPEG ringing) are set to
///    zero. A picture
///    whose ink rises less than [`MIN_INK_CONTRAST`] above the background is
///    [`DataError::BlankImage`].
/// 3. **Crop** to the bounding box of the remaining ink.
/// 4. **Scale** the box so its longer side is [`DIGIT_BOX`] (20) pixels,
///    keeping the aspect ratio (the shorter side rounds, at least 1), with a
///    separable triangle filter whose support widens with the reduction, so
///    downscaling averages every input pixel (antialiased) and upscaling is
///    bilinear. The result is stretched again so its brightest pixel is 255.
/// 5. **Centre** it in a 28x28 black frame, shifted by whole pixels so that
///    its centre of mass lands as close as possible to the frame's centre
///    (14, 14), but never so far that part of the box leaves the frame.
///
/// # Errors
/// [`DataError::EmptyImage`] when `width` or `height` is zero;
/// [`DataError::ImageBufferMismatch`] when `luma.len() != width * height`;
/// [`DataError::BlankImage`] when there is no ink to find.
pub fn preprocess_digit(width: usize, height: usize, luma: &[u8]) -> Result<Preprocessed> {
    if width == 0 || height == 0 {
        return Err(DataError::EmptyImage { width, height });
    }
    if width.checked_mul(height) != Some(luma.len()) {
        return Err(DataError::ImageBufferMismatch {
            width,
            height,
            found: luma.len(),
        });
    }
    let background = border_median(width, height, luma);
    let inverted = background > 127;
    let mut ink: Vec<u8> = if inverted {
        luma.iter().map(|&v| background.saturating_sub(v)).collect()
    } else {
        luma.iter().map(|&v| v.saturating_sub(background)).collect()
    };
    let max = ink.iter().copied().max().unwrap_or(0);
    if max < MIN_INK_CONTRAST {
        return Err(DataError::BlankImage {
            width,
            height,
            contrast: max,
            min_contrast: MIN_INK_CONTRAST,
        });
    }
    let floor = max / 16;
    for v in &mut ink {
        *v = if *v < floor {
            0
        } else {
            ((u32::from(*v) * 255 + u32::from(max) / 2) / u32::from(max)) as u8
        };
    }
    let ink_box = bounding_box(width, height, &ink);
    let (x0, y0, x1, y1) = ink_box;
    let (w, h) = (x1 - x0, y1 - y0);
    let (sw, sh) = if w >= h {
        (DIGIT_BOX, scaled_side(h, w))
    } else {
        (scaled_side(w, h), DIGIT_BOX)
    };
    // The crop is read in place: no copy of the box is made.
    let scaled = resize(&ink[y0 * width + x0..], width, w, h, sw, sh);
    let peak = scaled.iter().copied().fold(0.0f32, f32::max);
    let gain = if peak > 0.0 { 255.0 / peak } else { 0.0 };
    let scaled: Vec<u8> = scaled
        .iter()
        .map(|&v| (v * gain).round().clamp(0.0, 255.0) as u8)
        .collect();
    let pixels = centre_in_frame(&scaled, sw, sh);
    Ok(Preprocessed {
        pixels,
        inverted,
        ink_box,
        scaled: (sw, sh),
    })
}

/// The shorter side scaled with the longer one to [`DIGIT_BOX`], rounded, at
/// least 1.
fn scaled_side(short: usize, long: usize) -> usize {
    ((short * DIGIT_BOX + long / 2) / long).clamp(1, DIGIT_BOX)
}

/// The median of the pixels on the image's outermost rows and columns.
fn border_median(width: usize, height: usize, luma: &[u8]) -> u8 {
    let mut counts = [0usize; 256];
    let mut n = 0usize;
    for y in 0..height {
        for x in 0..width {
            if y == 0 || y + 1 == height || x == 0 || x + 1 == width {
                counts[usize::from(luma[y * width + x])] += 1;
                n += 1;
            }
        }
    }
    let mut seen = 0usize;
    for (level, &count) in counts.iter().enumerate() {
        seen += count;
        if 2 * seen >= n {
            return level as u8;
        }
    }
    255
}

/// The bounding box `(x0, y0, x1, y1)` of the nonzero pixels; the caller
/// guarantees there is at least one.
fn bounding_box(width: usize, height: usize, ink: &[u8]) -> (usize, usize, usize, usize) {
    let (mut x0, mut y0, mut x1, mut y1) = (width, height, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if ink[y * width + x] > 0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    (x0, y0, x1, y1)
}

/// Resamples the `w x h` image whose rows start `stride` bytes apart in `src`
/// to `nw x nh`, separably, with a triangle filter whose support is one input
/// pixel when enlarging (bilinear) and one output pixel's footprint when
/// reducing (antialiased).
///
/// Each output row sums the horizontally filtered input rows under its
/// vertical window, filtering them as it goes (an input row under two
/// windows is filtered twice, identically), so besides the output only one
/// filtered row of `nw` values is held, whatever the input's shape.
fn resize(src: &[u8], stride: usize, w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
    let cols = weights(w, nw);
    let rows = weights(h, nh);
    let mut filtered = vec![0.0f32; nw];
    let mut out = vec![0.0f32; nh * nw];
    for (out_row, (start, ws)) in out.chunks_exact_mut(nw).zip(&rows) {
        for (k, wt) in ws.iter().enumerate() {
            let row = &src[(start + k) * stride..][..w];
            for (f, (col_start, col_ws)) in filtered.iter_mut().zip(&cols) {
                *f = col_ws
                    .iter()
                    .enumerate()
                    .map(|(j, cw)| cw * f32::from(row[col_start + j]))
                    .sum();
            }
            for (o, f) in out_row.iter_mut().zip(&filtered) {
                *o += wt * f;
            }
        }
    }
    out
}

/// For each of `n_out` output positions along an axis of `n_in` input
/// pixels: the first input pixel it draws from and the normalised weights.
fn weights(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = n_in as f64 / n_out as f64;
    let support = scale.max(1.0);
    (0..n_out)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            let lo = ((centre - support).floor().max(0.0) as usize).min(n_in - 1);
            let hi = ((centre + support).ceil() as usize).clamp(lo + 1, n_in);
            let ws: Vec<f64> = (lo..hi)
                .map(|i| (1.0 - ((i as f64 + 0.5 - centre) / support).abs()).max(0.0))
                .collect();
            let total: f64 = ws.iter().sum();
            if total > 0.0 {
                (lo, ws.iter().map(|w| (w / total) as f32).collect())
            } else {
                // Only for degenerate sizes: take the nearest pixel.
                ((centre as usize).min(n_in - 1), vec![1.0])
            }
        })
        .collect()
}

/// Places a `w x h` image (both at most [`DIGIT_BOX`]) into the 28x28 frame,
/// its centre of mass moved to (14, 14) by a whole-pixel shift clamped so the
/// image stays inside.
fn centre_in_frame(img: &[u8], w: usize, h: usize) -> [u8; DIGIT_PIXELS] {
    let (mut mass, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for y in 0..h {
        for x in 0..w {
            let v = f64::from(img[y * w + x]);
            mass += v;
            mx += v * (x as f64 + 0.5);
            my += v * (y as f64 + 0.5);
        }
    }
    let half = DIGIT_FRAME as f64 / 2.0;
    let place = |com: f64, len: usize| -> usize {
        let offset = (half - com).round();
        offset.clamp(0.0, (DIGIT_FRAME - len) as f64) as usize
    };
    let (ox, oy) = if mass > 0.0 {
        (place(mx / mass, w), place(my / mass, h))
    } else {
        ((DIGIT_FRAME - w) / 2, (DIGIT_FRAME - h) / 2)
    };
    let mut frame = [0u8; DIGIT_PIXELS];
    for y in 0..h {
        frame[(oy + y) * DIGIT_FRAME + ox..(oy + y) * DIGIT_FRAME + ox + w].copy_from_slice(&img[y * w..(y + 1) * w]);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w x h` black canvas with a bright "L" of thick strokes at `(x, y)`
    /// spanning `size` pixels.
    fn draw_l(w: usize, h: usize, x: usize, y: usize, size: usize) -> Vec<u8> {
        let mut img = vec![0u8; w * h];
        let t = (size / 5).max(1);
        for yy in y..y + size {
            for xx in x..x + size / 2 {
                let on = xx < x + t || yy >= y + size - t;
                if on {
                    img[yy * w + xx] = 255;
                }
            }
        }
        img
    }

    fn centre_of_mass(frame: &[u8; DIGIT_PIXELS]) -> (f64, f64) {
        let (mut m, mut mx, mut my) = (0.0, 0.0, 0.0);
        for y in 0..DIGIT_FRAME {
            for x in 0..DIGIT_FRAME {
                let v = f64::from(frame[y * DIGIT_FRAME + x]);
                m += v;
                mx += v * (x as f64 + 0.5);
                my += v * (y as f64 + 0.5);
            }
        }
        (mx / m, my / m)
    }

    fn ink_extent(frame: &[u8; DIGIT_PIXELS]) -> (usize, usize) {
        let (x0, y0, x1, y1) = bounding_box(DIGIT_FRAME, DIGIT_FRAME, frame);
        (x1 - x0, y1 - y0)
    }

    #[test]
    fn longer_side_becomes_20_and_centre_of_mass_is_central() {
        let img = draw_l(100, 80, 30, 10, 60);
        let out = preprocess_digit(100, 80, &img).unwrap();
        assert!(!out.inverted);
        assert_eq!(out.ink_box, (30, 10, 60, 70));
        assert_eq!(out.scaled, (10, 20));
        assert_eq!(ink_extent(&out.pixels), (10, 20));
        let (cx, cy) = centre_of_mass(&out.pixels);
        assert!((cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5, "({cx}, {cy})");
        assert_eq!(out.pixels.iter().copied().max(), Some(255));
    }

    #[test]
    fn position_does_not_matter() {
        let a = preprocess_digit(120, 90, &draw_l(120, 90, 5, 7, 50)).unwrap();
        let b = preprocess_digit(120, 90, &draw_l(120, 90, 61, 33, 50)).unwrap();
        assert_eq!(a.pixels, b.pixels);
    }

    #[test]
    fn dark_on_light_gives_the_same_as_light_on_dark() {
        let img = draw_l(64, 64, 10, 3, 40);
        let light: Vec<u8> = img.iter().map(|&v| 255 - v).collect();
        let a = preprocess_digit(64, 64, &img).unwrap();
        let b = preprocess_digit(64, 64, &light).unwrap();
        assert!(b.inverted && !a.inverted);
        assert_eq!(a.pixels, b.pixels);
    }

    #[test]
    fn grey_paper_and_faint_noise_are_removed() {
        let mut img: Vec<u8> = draw_l(64, 64, 10, 3, 40).iter().map(|&v| 255 - v / 2).collect();
        // Paper at 240 with grain, ink at 112.
        for (i, v) in img.iter_mut().enumerate() {
            *v = v.saturating_sub(15 + (i % 7) as u8);
        }
        let out = preprocess_digit(64, 64, &img).unwrap();
        let clean = preprocess_digit(64, 64, &draw_l(64, 64, 10, 3, 40)).unwrap();
        assert!(out.inverted);
        assert_eq!(out.ink_box, clean.ink_box);
        let diff = out.pixels.iter().zip(&clean.pixels).map(|(&a, &b)| a.abs_diff(b)).max();
        assert!(diff <= Some(8), "max difference {diff:?}");
    }

    #[test]
    fn small_images_are_enlarged() {
        let img = draw_l(10, 10, 2, 1, 8);
        let out = preprocess_digit(10, 10, &img).unwrap();
        assert_eq!(out.scaled, (10, 20));
        assert_eq!(ink_extent(&out.pixels), (10, 20));
    }

    #[test]
    fn an_mnist_style_frame_comes_back_less_its_faintest_pixels() {
        let first = preprocess_digit(100, 80, &draw_l(100, 80, 30, 10, 57)).unwrap();
        // A faint speck inside the ink's box (the L's empty upper right).
        let (x0, y0, x1, _) = bounding_box(DIGIT_FRAME, DIGIT_FRAME, &first.pixels);
        let speck = (y0 + 1) * DIGIT_FRAME + x1 - 2;
        assert_eq!(first.pixels[speck], 0);
        let mut input = first.pixels;
        input[speck] = 255 / 16 - 1;
        let again = preprocess_digit(DIGIT_FRAME, DIGIT_FRAME, &input).unwrap();
        assert_eq!(again.ink_box.0, x0);
        assert_eq!(again.scaled, first.scaled);
        assert_eq!(again.pixels, first.pixels);
    }

    #[test]
    fn a_single_dot_fits_without_panicking() {
        let mut img = vec![0u8; 9];
        img[4] = 200;
        let out = preprocess_digit(3, 3, &img).unwrap();
        assert_eq!(out.scaled, (20, 20));
        assert_eq!(out.pixels.iter().filter(|&&v| v == 255).count(), 400);
        // A one-pixel-wide line: the short side rounds to 1.
        let mut line = vec![0u8; 120];
        line[40..80].fill(255);
        let out = preprocess_digit(40, 3, &line).unwrap();
        assert_eq!(out.scaled, (20, 1));
    }

    /// The resampling as it was first written: crop copied to `f32`, then the
    /// whole horizontally filtered image held at once.
    fn resize_reference(src: &[f32], w: usize, h: usize, nw: usize, nh: usize) -> Vec<f32> {
        let cols = weights(w, nw);
        let rows = weights(h, nh);
        let mut tmp = vec![0.0f32; h * nw];
        for y in 0..h {
            for (x, (start, ws)) in cols.iter().enumerate() {
                tmp[y * nw + x] = ws.iter().enumerate().map(|(k, wt)| wt * src[y * w + start + k]).sum();
            }
        }
        let mut out = vec![0.0f32; nh * nw];
        for (y, (start, ws)) in rows.iter().enumerate() {
            for x in 0..nw {
                out[y * nw + x] = ws
                    .iter()
                    .enumerate()
                    .map(|(k, wt)| wt * tmp[(start + k) * nw + x])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn resizing_in_place_gives_exactly_the_reference_values() {
        let mut rng = backprop_tensor::Rng::seed_from_u64(7);
        for _ in 0..200 {
            let (width, height) = (1 + rng.below(90) as usize, 1 + rng.below(90) as usize);
            let img: Vec<u8> = (0..width * height).map(|_| rng.next_u64() as u8).collect();
            let (x0, y0) = (rng.below(width as u64) as usize, rng.below(height as u64) as usize);
            let w = 1 + rng.below((width - x0) as u64) as usize;
            let h = 1 + rng.below((height - y0) as u64) as usize;
            let (nw, nh) = (1 + rng.below(25) as usize, 1 + rng.below(25) as usize);
            let cropped: Vec<f32> = (y0..y0 + h)
                .flat_map(|y| img[y * width + x0..y * width + x0 + w].iter().map(|&v| f32::from(v)))
                .collect();
            let expected = resize_reference(&cropped, w, h, nw, nh);
            let found = resize(&img[y0 * width + x0..], width, w, h, nw, nh);
            assert_eq!(
                found, expected,
                "{width}x{height}, box {w}x{h} at ({x0}, {y0}) to {nw}x{nh}"
            );
        }
    }

    #[test]
    fn blank_and_malformed_inputs_are_errors() {
        let err = preprocess_digit(30, 20, &[255u8; 600]).unwrap_err();
        assert!(matches!(err, DataError::BlankImage { contrast: 0, .. }), "{err}");
        assert!(err.to_string().contains("no ink"), "{err}");
        let faint: Vec<u8> = (0..600).map(|i| (i % 20) as u8).collect();
        assert!(matches!(
            preprocess_digit(30, 20, &faint),
            Err(DataError::BlankImage { .. })
        ));
        let err = preprocess_digit(0, 5, &[]).unwrap_err();
        assert!(matches!(err, DataError::EmptyImage { width: 0, height: 5 }), "{err}");
        let err = preprocess_digit(4, 4, &[0u8; 15]).unwrap_err();
        assert!(matches!(err, DataError::ImageBufferMismatch { found: 15, .. }), "{err}");
        assert!(err.to_string().contains("16"), "{err}");
    }
}

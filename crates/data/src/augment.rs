//! On-the-fly data augmentation for images: random affine warps, elastic
//! distortions, stroke thickening and thinning, and mirroring.
//!
//! [`Augment`] describes how strongly to distort; [`Augment::apply`] draws
//! one random distortion from an [`Rng`] and applies it to one `u8` image;
//! [`Augmented`] wraps a [`Dataset`] as a `backprop_nn::Examples` source
//! whose every example is distorted anew each epoch.
//!
//! # The maths
//!
//! Pixel `(r, c)` has coordinates `p = (x, y) = (c, r)`, `x` to the right and
//! `y` down; the image centre is `o = ((cols - 1) / 2, (rows - 1) / 2)`. A
//! draw picks, each uniformly in its range,
//!
//! - a translation `t = (t_x, t_y)`, each in `[-shift, shift]` pixels;
//! - a rotation angle `theta` in `[-rotate, rotate]` degrees;
//! - a scale factor `s` in `[1 - scale, 1 + scale]`;
//! - a shear angle `phi` in `[-shear, shear]` degrees;
//! - a mirror `F = diag(-1, 1)` with probability 1/2 when `hflip` is set
//!   (`F = I` otherwise);
//! - a stroke radius `k` in `[-thickness, thickness]`;
//!
//! and maps the (mirrored) source image forward by
//!
//! ```text
//! p_out = A F (p_in - o) + o + t,    A = R(theta) H(phi) s,
//! R(theta) = [cos theta, -sin theta; sin theta, cos theta],   H(phi) = [1, tan phi; 0, 1],
//! ```
//!
//! so the shear slides each row sideways in proportion to its height above
//! or below the centre (for `phi > 0` rows above the centre move left,
//! rows below it right), and `theta > 0` turns the image clockwise on screen
//! (`y` points down). Each output pixel is computed by *inverse mapping*:
//!
//! ```text
//! p_in = F A^-1 (p_out - o - t) + o + alpha d(p_out),
//! A^-1 = (1 / s) [1, -tan phi; 0, 1] [cos theta, sin theta; -sin theta, cos theta],
//! ```
//!
//! and the output takes the bilinear interpolation of the source at `p_in`,
//! where pixels outside the image count as 0 (so ink fades out smoothly at
//! the border), rounded to the nearest byte (ties to even). The exact identity (`t = 0`,
//! `theta = phi = 0`, `s = 1`, no mirror, `d = 0`) samples every pixel at
//! its own centre and returns the input bytes exactly.
//!
//! `d` is the *elastic* displacement field of Simard, Steinkraus and Platt,
//! "Best practices for convolutional neural networks applied to visual
//! document analysis" (ICDAR 2003): two fields of independent values
//! uniform in `[-1, 1]`, one per pixel for `d_x` and one for `d_y`, each
//! convolved with a normalised Gaussian of standard deviation `sigma`
//! (separably: a column pass then a row pass, the kernel cut at
//! `ceil(3 sigma)` taps and at the field's size, zero beyond its edge),
//! then scaled by `alpha`. Small `sigma` gives noise-like jitter, large
//! `sigma` nearly a translation; Simard's choice for MNIST is `alpha = 34`,
//! `sigma = 4`, which displaces pixels by about 1.4 pixels (standard
//! deviation `alpha / sqrt(12 pi sigma^2)`) in smooth, locally varying
//! directions.
//!
//! A field smoothed that much holds no detail finer than a few pixels, so
//! it is drawn on a grid of spacing `g = max(1, floor(sigma / 2))` pixels
//! (2 for `sigma = 4`; 1, the construction above, below 4) one step larger
//! than the image: noise uniform in `[-1/g, 1/g]` (which keeps the smoothed
//! variance `1 / (12 pi sigma^2)`), smoothed by a Gaussian of `sigma / g`
//! grid steps, then interpolated bilinearly to every pixel. That takes
//! about `g^2` times fewer draws and `g^3` times less blurring, and the
//! tests check that the field's variance and the variance of its
//! differences between neighbouring pixels match the per-pixel construction
//! (within a few percent for `sigma` 2 to 8). The uniform values are drawn
//! 16 bits at a time (four per 64-bit word of the rng); the smoothing makes
//! the quantisation invisible.
//!
//! Last, when `k != 0`, the warped image `I` goes through a grey-scale
//! morphological *dilation* (`k > 0`: `D_m(I)` makes each pixel the maximum
//! over the disk `dx^2 + dy^2 <= m^2` around it, thickening strokes) or
//! *erosion* (`k < 0`: the minimum, thinning them); neighbours outside the
//! image are ignored. For `m = 1` the disk is the pixel and its four edge
//! neighbours, which widens (or narrows) a stroke by two pixels: too much
//! for a 2-pixel MNIST stroke to take whole. So the radius is continuous:
//! with `m = ceil(|k|)` and `f = |k| - (m - 1)`, the result is the blend
//! `(1 - f) D_{m-1}(I) + f D_m(I)` (`D_0(I) = I`), rounded, a partial
//! thickening for fractional radii.
//!
//! # Determinism and cost
//!
//! [`Augment::apply`] reads randomness only from the `Rng` it is handed, in
//! a fixed order, and uses no thread-dependent state: the same rng state
//! gives the same bytes. [`Augmented`] seeds a fresh `Rng` for every
//! example from the data seed, the epoch and the example index alone, so the
//! augmented data do not depend on batch order, batch size, thread count or
//! the epoch a run resumed at. With a [`Scratch`] made for the image size,
//! `apply` allocates nothing, and gives the same bytes whether it runs the
//! portable code or the AVX2 build of it (chosen at run time; Rust never
//! fuses a multiplication and an addition, so every operation rounds alike).
//!
//! The warp skips chunks of 8 samples that fall wholly outside the image's
//! ink (they read zeros and give exactly 0). On one core of a busy 2-core
//! x86-64 machine (AMD EPYC, AVX2), a 28x28 image takes about 2.2 µs for
//! the affine warp (about 1 µs more with thickness) and about 7.5 µs with
//! the [`Augment::digits`] preset, whose elastic field costs about 3.2 µs;
//! `cargo test --release -p backprop-data -- --ignored --nocapture
//! augment_timing` measures it. MNIST's own digits with the settings of
//! `recipes/mnist-best.toml` take about 7.5 µs an image too.
//!
//! The trainer hands each batch to [`Augmented`]'s `Examples::prepare`
//! with its thread pool before gathering it: the batch is cut into parts
//! of 8 images, each made whole by one task, so the work is shared by the
//! trainer's threads and the bytes are the same on any number of them.
//! `cargo run --release -p backprop-examples --example augment_cost`
//! measures what that adds to an epoch.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use backprop_nn::{Examples, TargetShape, TargetsMut};
use backprop_tensor::{Rng, SparseRows, ThreadPool};
use ndarray::ArrayViewMut2;

use crate::dataset::{Dataset, pixel_to_f32};
use crate::error::{DataError, Result};

/// Elastic distortion settings (Simard et al. 2003): a random displacement
/// field, uniform in `[-1, 1]` per pixel, smoothed by a Gaussian of standard
/// deviation `sigma` pixels and scaled by `alpha` pixels. See the module
/// docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elastic {
    /// The field's scale, in pixels: `0..=1000` (0 makes it the identity).
    pub alpha: f32,
    /// The smoothing Gaussian's standard deviation, in pixels: `0.1..=32`.
    pub sigma: f32,
}

/// How strongly to distort images: each setting is the largest magnitude a
/// random draw may take (see the module docs for the maths).
///
/// Build one from a preset ([`Augment::none`], [`Augment::digits`],
/// [`Augment::fashion`]), by setting fields, or from a spec string
/// ([`Augment::parse`]); check hand-set fields with [`Augment::validate`].
/// [`fmt::Display`] writes the spec string back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// The largest translation along each axis, in pixels: `0..=100`.
    pub shift: f32,
    /// The largest rotation, in degrees: `0..=180`.
    pub rotate: f32,
    /// The largest relative change of size (0.1: a factor in `[0.9, 1.1]`):
    /// `0..=0.9`.
    pub scale: f32,
    /// The largest horizontal shear angle, in degrees: `0..=60`.
    pub shear: f32,
    /// The elastic distortion, if any.
    pub elastic: Option<Elastic>,
    /// The largest radius of random stroke thickening (grey dilation) or
    /// thinning (grey erosion), in pixels: `0..=3`, 0 for none. The radius
    /// drawn is continuous in `[-thickness, thickness]` (fractions blend two
    /// radii; see the module docs).
    pub thickness: u8,
    /// Mirror left to right with probability 1/2. Valid only where a
    /// mirrored example keeps its label (clothing, say); never for digits.
    pub hflip: bool,
}

/// The keys of a spec string, in the order [`fmt::Display`] writes them.
const KEYS: &str = "shift, rotate, scale, shear, elastic, thickness, hflip";

impl Augment {
    /// No distortion at all: [`Augment::apply`] copies the image.
    pub const fn none() -> Self {
        Self {
            shift: 0.0,
            rotate: 0.0,
            scale: 0.0,
            shear: 0.0,
            elastic: None,
            thickness: 0,
            hflip: false,
        }
    }

    /// A preset for handwritten digits (MNIST): shift 2 pixels, rotate 12
    /// degrees, scale 0.1, shear 10 degrees, elastic alpha 34 and sigma 4
    /// (Simard et al.), thickness 1, no mirroring.
    pub const fn digits() -> Self {
        Self {
            shift: 2.0,
            rotate: 12.0,
            scale: 0.1,
            shear: 10.0,
            elastic: Some(Elastic {
                alpha: 34.0,
                sigma: 4.0,
            }),
            thickness: 1,
            hflip: false,
        }
    }

    /// A preset for clothing (Fashion-MNIST): shift 2 pixels, scale 0.05,
    /// and mirroring, which keeps every class of that data set.
    pub const fn fashion() -> Self {
        Self {
            shift: 2.0,
            scale: 0.05,
            hflip: true,
            ..Self::none()
        }
    }

    /// Whether this is [`Augment::none`]: no draw changes any image.
    pub fn is_none(&self) -> bool {
        *self == Self::none()
    }

    /// Checks every setting against its range (in the field docs).
    ///
    /// # Errors
    /// [`DataError::AugmentOutOfRange`] naming the first setting out of
    /// range or not finite.
    pub fn validate(&self) -> Result<()> {
        fn check(key: &'static str, value: f32, lo: f32, hi: f32, expected: &'static str) -> Result<()> {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(DataError::AugmentOutOfRange { key, value, expected })
            }
        }
        check("shift", self.shift, 0.0, 100.0, "0 to 100 pixels")?;
        check("rotate", self.rotate, 0.0, 180.0, "0 to 180 degrees")?;
        check("scale", self.scale, 0.0, 0.9, "a relative change of 0 to 0.9")?;
        check("shear", self.shear, 0.0, 60.0, "0 to 60 degrees")?;
        if let Some(e) = self.elastic {
            check("elastic.alpha", e.alpha, 0.0, 1000.0, "0 to 1000 pixels")?;
            check("elastic.sigma", e.sigma, 0.1, 32.0, "0.1 to 32 pixels")?;
        }
        check(
            "thickness",
            f32::from(self.thickness),
            0.0,
            3.0,
            "a radius of 0 to 3 pixels",
        )
    }

    /// Reads a spec string: comma-separated items, optionally starting with a
    /// preset (`none`, `digits`, `fashion`) that the other items then
    /// change, each other item `key=value` for `shift=PIXELS`,
    /// `rotate=DEGREES`, `scale=FRACTION`, `shear=DEGREES`,
    /// `elastic=ALPHA:SIGMA` (or `elastic=off`), `thickness=RADIUS`, and
    /// `hflip` (or `hflip=true|false`). Keys left out are 0 (or those of
    /// the preset). Example: `shift=2,rotate=12,scale=0.1,shear=10,
    /// elastic=34:4,thickness=1` (without the space), or `digits,rotate=8`.
    /// An empty string is [`Augment::none`]. The result is validated.
    ///
    /// # Errors
    /// [`DataError::AugmentSpec`] naming the key of an item that is unknown,
    /// repeated, a preset after the first item, or has a value that does not
    /// parse; [`DataError::AugmentOutOfRange`] from [`Augment::validate`].
    pub fn parse(spec: &str) -> Result<Self> {
        let mut augment = Self::none();
        let mut seen: Vec<&str> = Vec::new();
        let items = spec.split(',').map(str::trim).filter(|item| !item.is_empty());
        for (position, item) in items.enumerate() {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (item, None),
            };
            let fail = |expected: &str| DataError::AugmentSpec {
                spec: spec.to_owned(),
                key: key.to_owned(),
                item: item.to_owned(),
                expected: expected.to_owned(),
            };
            let preset = match key {
                "none" => Some(Self::none()),
                "digits" => Some(Self::digits()),
                "fashion" => Some(Self::fashion()),
                _ => None,
            };
            if let Some(preset) = preset {
                if position > 0 || value.is_some() {
                    return Err(fail(
                        "a preset (none, digits, fashion) only as the first item, without a value",
                    ));
                }
                augment = preset;
                continue;
            }
            if seen.contains(&key) {
                return Err(fail("each key at most once"));
            }
            let number = |what: &str| -> Result<f32> {
                value
                    .and_then(|v| v.parse::<f32>().ok())
                    .ok_or_else(|| fail(&format!("{key}={what}, a number")))
            };
            match key {
                "shift" => augment.shift = number("PIXELS")?,
                "rotate" => augment.rotate = number("DEGREES")?,
                "scale" => augment.scale = number("FRACTION")?,
                "shear" => augment.shear = number("DEGREES")?,
                "thickness" => {
                    augment.thickness = value
                        .and_then(|v| v.parse::<u8>().ok())
                        .ok_or_else(|| fail("thickness=RADIUS, a whole number of pixels"))?;
                }
                "elastic" => {
                    augment.elastic = match value {
                        Some("off" | "none") => None,
                        _ => {
                            let (alpha, sigma) = value
                                .and_then(|v| v.split_once(':'))
                                .and_then(|(a, s)| Some((a.trim().parse().ok()?, s.trim().parse().ok()?)))
                                .ok_or_else(|| {
                                    fail("elastic=ALPHA:SIGMA (two numbers, such as 34:4) or elastic=off")
                                })?;
                            Some(Elastic { alpha, sigma })
                        }
                    };
                }
                "hflip" => {
                    augment.hflip = match value {
                        None | Some("true" | "on" | "yes") => true,
                        Some("false" | "off" | "no") => false,
                        Some(_) => return Err(fail("hflip, hflip=true or hflip=false")),
                    };
                }
                _ => {
                    return Err(fail(&format!(
                        "a key among {KEYS}, or a preset (none, digits, fashion) first"
                    )));
                }
            }
            seen.push(key);
        }
        augment.validate()?;
        Ok(augment)
    }

    /// Draws one random distortion from `rng` and applies it to the
    /// `rows x cols` image `src` (row-major bytes), writing the result to
    /// `dst` (see the module docs for the maths). The same rng state gives
    /// the same bytes; [`Augment::none`] copies `src` and draws nothing.
    /// Allocates nothing when `scratch` was made for at least this size
    /// ([`Scratch::new`]); otherwise grows it once. Settings are assumed
    /// valid ([`Augment::validate`]).
    ///
    /// # Panics
    /// If `src` or `dst` does not hold `rows * cols` bytes.
    #[track_caller]
    pub fn apply(&self, src: &[u8], dst: &mut [u8], rows: usize, cols: usize, rng: &mut Rng, scratch: &mut Scratch) {
        let n = rows * cols;
        assert!(
            src.len() == n && dst.len() == n,
            "Augment::apply: a {rows}x{cols} image needs {n} bytes, got src of {} and dst of {}",
            src.len(),
            dst.len()
        );
        if self.is_none() || n == 0 {
            dst.copy_from_slice(src);
            return;
        }
        let warp = Warp::draw(self, rng);
        scratch.fit(rows, cols);
        distort(self.elastic, &warp, src, dst, rows, cols, rng, scratch);
    }
}

impl Default for Augment {
    /// [`Augment::none`].
    fn default() -> Self {
        Self::none()
    }
}

impl fmt::Display for Augment {
    /// The spec string [`Augment::parse`] reads back to the same settings:
    /// the non-zero settings in the order shift, rotate, scale, shear,
    /// elastic, thickness, hflip, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        let mut items: Vec<String> = Vec::new();
        for (key, value) in [
            ("shift", self.shift),
            ("rotate", self.rotate),
            ("scale", self.scale),
            ("shear", self.shear),
        ] {
            if value != 0.0 {
                items.push(format!("{key}={value}"));
            }
        }
        if let Some(e) = self.elastic {
            items.push(format!("elastic={}:{}", e.alpha, e.sigma));
        }
        if self.thickness != 0 {
            items.push(format!("thickness={}", self.thickness));
        }
        if self.hflip {
            items.push("hflip".to_owned());
        }
        f.write_str(&items.join(","))
    }
}

impl FromStr for Augment {
    type Err = DataError;

    /// [`Augment::parse`].
    fn from_str(spec: &str) -> Result<Self> {
        Self::parse(spec)
    }
}

/// Working memory for [`Augment::apply`]: the zero-bordered source, the
/// elastic displacement fields and their blur temporary, the warped image
/// before thickening, and the Gaussian kernel (computed once per `sigma`).
#[derive(Clone)]
pub struct Scratch {
    /// The source as `f32`, with a border of one zero pixel all round:
    /// `(rows + 2) x (cols + 2)`.
    padded: Vec<f32>,
    /// The warped image, before thickening or thinning, and the smaller
    /// of the two radii a fractional thickness blends.
    warped: Vec<u8>,
    morphed: Vec<u8>,
    /// The displacement fields (smoothed, not yet scaled by alpha), one
    /// value per pixel.
    dx: Vec<f32>,
    dy: Vec<f32>,
    /// The same on the coarse grid (see `grid_stride`), and the blur's
    /// intermediate: at most `(rows + 2) x (cols + 2)`.
    gx: Vec<f32>,
    gy: Vec<f32>,
    tmp: Vec<f32>,
    /// One grid row between margins of zeros, for the row blur.
    line: Vec<f32>,
    /// One grid row for the upsampling: the line between two grid rows (see `upsample`).
    spread: Vec<f32>,
    /// The normalised Gaussian taps, `2 R + 1` of them, for `kernel_sigma`
    /// and images of at most `kernel_extent` pixels per side.
    kernel: Vec<f32>,
    kernel_sigma: f32,
    kernel_extent: usize,
}

impl Scratch {
    /// Working memory for `rows x cols` images (and any smaller ones):
    /// [`Augment::apply`] then allocates nothing.
    pub fn new(rows: usize, cols: usize) -> Self {
        let n = rows * cols;
        Self {
            padded: vec![0.0; (rows + 2) * (cols + 2)],
            warped: vec![0; n],
            morphed: vec![0; n],
            dx: vec![0.0; n],
            dy: vec![0.0; n],
            gx: vec![0.0; grid_len(rows, cols)],
            gy: vec![0.0; grid_len(rows, cols)],
            tmp: vec![0.0; grid_len(rows, cols)],
            line: vec![0.0; line_len(rows, cols)],
            spread: vec![0.0; (cols + 1).next_multiple_of(LANES)],
            kernel: Vec::with_capacity(2 * rows.max(cols) + 2),
            kernel_sigma: f32::NAN,
            kernel_extent: 0,
        }
    }

    /// Makes room for a `rows x cols` image, growing only if it is larger
    /// than any before.
    fn fit(&mut self, rows: usize, cols: usize) {
        let n = rows * cols;
        let padded = (rows + 2) * (cols + 2);
        if self.padded.len() < padded {
            self.padded.resize(padded, 0.0);
        }
        for buffer in [&mut self.dx, &mut self.dy] {
            if buffer.len() < n {
                buffer.resize(n, 0.0);
            }
        }
        for buffer in [&mut self.gx, &mut self.gy, &mut self.tmp] {
            if buffer.len() < grid_len(rows, cols) {
                buffer.resize(grid_len(rows, cols), 0.0);
            }
        }
        if self.line.len() < line_len(rows, cols) {
            self.line.resize(line_len(rows, cols), 0.0);
        }
        if self.spread.len() < (cols + 1).next_multiple_of(LANES) {
            self.spread.resize((cols + 1).next_multiple_of(LANES), 0.0);
        }
        if self.kernel.capacity() < 2 * rows.max(cols) + 2 {
            self.kernel.reserve(2 * rows.max(cols) + 2 - self.kernel.len());
        }
        for buffer in [&mut self.warped, &mut self.morphed] {
            if buffer.len() < n {
                buffer.resize(n, 0);
            }
        }
    }

    /// Draws the two smoothed displacement fields into `dx` and `dy`
    /// (row-major, `rows x cols`, not yet scaled by alpha): on the coarse
    /// grid of `grid_stride`, then interpolated to every pixel.
    #[inline(always)]
    fn elastic_field(&mut self, rows: usize, cols: usize, elastic: Elastic, rng: &mut Rng) {
        let stride = grid_stride(elastic.sigma);
        let (grid_rows, grid_cols) = ((rows - 1) / stride + 2, (cols - 1) / stride + 2);
        // Grid rows are stored LANES-aligned, zero beyond `grid_cols`.
        let width = grid_cols.next_multiple_of(LANES);
        let g = grid_rows * width;
        let extent = grid_rows.max(grid_cols);
        if self.kernel_sigma.to_bits() != elastic.sigma.to_bits() || self.kernel_extent != extent {
            gaussian_kernel(elastic.sigma / stride as f32, extent, &mut self.kernel);
            self.kernel_sigma = elastic.sigma;
            self.kernel_extent = extent;
        }
        let amplitude = 1.0 / stride as f32;
        for grid in [&mut self.gx, &mut self.gy] {
            for row in grid[..g].chunks_exact_mut(width) {
                uniform_field(&mut row[..grid_cols], amplitude, rng);
                row[grid_cols..].fill(0.0);
            }
        }
        let n = rows * cols;
        let line = &mut self.line[..width + self.kernel.len() - 1];
        for (grid, field) in [(&mut self.gx, &mut self.dx), (&mut self.gy, &mut self.dy)] {
            blur_columns(&grid[..g], &mut self.tmp[..g], grid_rows, width, &self.kernel);
            blur_rows(&self.tmp[..g], &mut grid[..g], width, &self.kernel, line);
            upsample(&grid[..g], width, stride, &mut field[..n], cols, &mut self.spread);
        }
    }
}

/// The most values a grid of the elastic field takes for a `rows x cols`
/// image: `rows + 1` rows (the finest grid) stored `LANES`-aligned.
fn grid_len(rows: usize, cols: usize) -> usize {
    (rows + 1) * (cols + 1).next_multiple_of(LANES)
}

/// The longest row buffer of the row blur for a `rows x cols` image: a
/// grid row and `R <= max(rows, cols)` zeros either side.
fn line_len(rows: usize, cols: usize) -> usize {
    (cols + 1).next_multiple_of(LANES) + 2 * rows.max(cols)
}

/// The spacing, in pixels, of the grid the elastic field is drawn on for a
/// smoothing of `sigma`: `max(1, floor(sigma / 2))`, 2 for Simard's
/// `sigma = 4`.
///
/// A field smoothed that much holds no detail finer than a few pixels, so
/// it is drawn on a grid `s` times coarser (noise uniform in `[-1/s, 1/s]`,
/// which keeps the smoothed field's variance `1 / (3 * 4 pi sigma^2)`,
/// smoothed by a Gaussian of `sigma / s` grid steps) and interpolated
/// bilinearly to every pixel: about `s^2` times fewer draws and `s^3`
/// times less blurring, for a field whose statistics differ from the
/// per-pixel construction by about a percent.
fn grid_stride(sigma: f32) -> usize {
    ((sigma / 2.0) as usize).max(1)
}

/// Bilinear interpolation of a field on a grid of spacing `stride`, `grid`
/// (rows stored `width` apart, a multiple of [`LANES`], with a row and a
/// column beyond the image), to every pixel of `field` (`cols` wide).
/// Pixel `(r, c)` with `r = i stride + l` and `c = j stride + k` is
/// `a + (k / stride) (b - a)` for `a` and `b` the values of grid columns
/// `j` and `j + 1` on the line `l / stride` of the way from grid row `i` to
/// `i + 1`. `spread` (at least `width` long) holds that line, computed
/// `LANES` at a time; each image row is then made from it by
/// [`upsample_row`].
#[inline(always)]
fn upsample(grid: &[f32], width: usize, stride: usize, field: &mut [f32], cols: usize, spread: &mut [f32]) {
    let step = 1.0 / stride as f32;
    let line = &mut spread[..width];
    for (r, out) in field.chunks_exact_mut(cols).enumerate() {
        let (i, fy) = (r / stride, (r % stride) as f32 * step);
        let above = &grid[i * width..(i + 1) * width];
        let below = &grid[(i + 1) * width..(i + 2) * width];
        line.iter_mut()
            .zip(above.iter().zip(below))
            .for_each(|(l, (&a, &b))| *l = a + fy * (b - a));
        // The strides of any sigma below 10 (Simard's 4 among them) with the
        // stride a constant; any other through the general loop.
        match stride {
            1 => upsample_row::<1>(line, out),
            2 => upsample_row::<2>(line, out),
            3 => upsample_row::<3>(line, out),
            4 => upsample_row::<4>(line, out),
            _ => {
                for (c, o) in out.iter_mut().enumerate() {
                    let (j, k) = (c / stride, c % stride);
                    let (a, b) = (line[j], line[j + 1]);
                    *o = a + k as f32 * step * (b - a);
                }
            }
        }
    }
}

/// One image row of [`upsample`] for a stride of `S`: pixel `j S + k` is
/// `a + (k / S) (b - a)`, `a` and `b` being `line[j]` and `line[j + 1]`.
/// With `S` a constant, the `S` pixels of each `j` are one group of stores
/// the compiler interleaves in SIMD registers (no scalar scatter).
#[inline(always)]
fn upsample_row<const S: usize>(line: &[f32], out: &mut [f32]) {
    let step = 1.0 / S as f32;
    let weights: [f32; S] = std::array::from_fn(|k| k as f32 * step);
    let groups = out.len() / S;
    let (whole, rest) = out.split_at_mut(groups * S);
    let line = &line[..groups + 1 + usize::from(!rest.is_empty())];
    for (j, group) in whole.chunks_exact_mut(S).enumerate() {
        let (a, b) = (line[j], line[j + 1]);
        for k in 0..S {
            group[k] = a + weights[k] * (b - a);
        }
    }
    if !rest.is_empty() {
        let (a, b) = (line[groups], line[groups + 1]);
        for (k, o) in rest.iter_mut().enumerate() {
            *o = a + weights[k] * (b - a);
        }
    }
}

/// The normalised Gaussian of standard deviation `sigma`, cut at
/// `R = min(ceil(3 sigma), extent - 1)` taps either side, into `kernel`
/// (`2 R + 1` taps; allocates nothing when its capacity is `2 extent`).
fn gaussian_kernel(sigma: f32, extent: usize, kernel: &mut Vec<f32>) {
    let sigma = f64::from(sigma);
    let radius = ((3.0 * sigma).ceil() as usize).min(extent.saturating_sub(1));
    let taps = (0..=2 * radius).map(|k| {
        let d = k as f64 - radius as f64;
        (-d * d / (2.0 * sigma * sigma)).exp()
    });
    let total: f64 = taps.clone().sum();
    kernel.clear();
    kernel.extend(taps.map(|w| (w / total) as f32));
}

/// Fills `field` with values uniform in `(-amplitude, amplitude)`, four
/// 16-bit draws per 64-bit word of `rng` (each `((k + 1/2) / 32768 - 1)
/// amplitude` for `k` in `0..65536`).
#[inline(always)]
fn uniform_field(field: &mut [f32], amplitude: f32, rng: &mut Rng) {
    const STEP: f32 = 2.0 / 65536.0;
    for chunk in field.chunks_mut(4) {
        let word = rng.next_u64();
        for (j, v) in chunk.iter_mut().enumerate() {
            let k = (word >> (16 * j)) as u16;
            *v = ((f32::from(k) + 0.5) * STEP - 1.0) * amplitude;
        }
    }
}

/// `2^23`: a float in `[0, 256)` plus this has no fraction bits left, so
/// the sum is rounded (ties to even) and its low mantissa byte is the
/// rounded value.
const ROUND: f32 = 8_388_608.0;

/// The low 23 bits of an `f32`: its mantissa's.
const MANTISSA: u32 = (1 << 23) - 1;

/// The lanes the blurs and the warp work in: eight `f32`s, two SSE or one
/// AVX register.
const LANES: usize = 8;

/// `dst = kernel * src` along each column of a field of `rows` rows stored
/// `width` apart (`width` a multiple of [`LANES`]), zero beyond the first
/// and last rows: row `r` of `dst` is `sum_k kernel[k] src[r + k - R]`,
/// computed a whole row at a time by [`weighted_rows`].
#[inline(always)]
fn blur_columns(src: &[f32], dst: &mut [f32], rows: usize, width: usize, kernel: &[f32]) {
    let radius = kernel.len() / 2;
    for (r, out) in dst.chunks_exact_mut(width).enumerate() {
        let first = r.saturating_sub(radius);
        let last = (r + radius).min(rows - 1);
        weighted_rows(src, out, |offset| {
            (first..=last).map(move |i| (kernel[i + radius - r], i * width + offset))
        });
    }
}

/// `dst = kernel * src` along each row of a field whose rows are stored
/// `width` apart (a multiple of [`LANES`]; zero past the field's columns),
/// zero beyond the first column: `dst[c] = sum_k kernel[k] src[c + k - R]`,
/// each row first copied into the middle of `line` (`width + 2 R` long)
/// between margins of zeros, then summed by [`weighted_rows`].
#[inline(always)]
fn blur_rows(src: &[f32], dst: &mut [f32], width: usize, kernel: &[f32], line: &mut [f32]) {
    let radius = kernel.len() / 2;
    line.fill(0.0);
    for (out, row) in dst.chunks_exact_mut(width).zip(src.chunks_exact(width)) {
        line[radius..radius + width].copy_from_slice(row);
        weighted_rows(line, out, |offset| {
            kernel.iter().enumerate().map(move |(k, &w)| (w, offset + k))
        });
    }
}

/// `out[c] = sum_t w_t src[s_t + c]` for the `(w_t, s_t)` that `taps(0)`
/// gives (`taps(o)` gives the same weights with every `s_t` moved by `o`),
/// the terms added in that order, from 0. `out` is a multiple of [`LANES`]
/// long; its values are summed in blocks of four, two or one `LANES`, the
/// sums of a block independent of each other so that their additions
/// overlap instead of each waiting on the one before.
#[inline(always)]
fn weighted_rows<T: Iterator<Item = (f32, usize)>>(src: &[f32], out: &mut [f32], taps: impl Fn(usize) -> T) {
    let mut offset = 0;
    let mut blocks = out.chunks_exact_mut(4 * LANES);
    for block in &mut blocks {
        weighted_block::<4>(src, block, taps(offset));
        offset += 4 * LANES;
    }
    let mut blocks = blocks.into_remainder().chunks_exact_mut(2 * LANES);
    for block in &mut blocks {
        weighted_block::<2>(src, block, taps(offset));
        offset += 2 * LANES;
    }
    for block in blocks.into_remainder().chunks_exact_mut(LANES) {
        weighted_block::<1>(src, block, taps(offset));
        offset += LANES;
    }
}

/// `B` blocks of [`LANES`] sums of [`weighted_rows`], held in registers.
#[inline(always)]
fn weighted_block<const B: usize>(src: &[f32], out: &mut [f32], taps: impl Iterator<Item = (f32, usize)>) {
    let mut acc = [[0.0f32; LANES]; B];
    for (w, start) in taps {
        let s = &src[start..start + B * LANES];
        for (acc, s) in acc.iter_mut().zip(s.chunks_exact(LANES)) {
            let s: &[f32; LANES] = s.try_into().expect("LANES values");
            for j in 0..LANES {
                acc[j] += w * s[j];
            }
        }
    }
    for (o, acc) in out.chunks_exact_mut(LANES).zip(&acc) {
        o.copy_from_slice(acc);
    }
}

/// One drawn distortion, less the elastic field (which lives in the
/// [`Scratch`]): the inverse map's matrix `F A^-1`, the translation, the
/// elastic scale, and the stroke radius.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Warp {
    /// `F A^-1`, row-major: `[m00, m01; m10, m11]`.
    m: [f32; 4],
    /// The translation `t`, in pixels.
    t: [f32; 2],
    /// `alpha`, or 0 without an elastic field (then `dx`, `dy` are unread).
    alpha: f32,
    /// Dilation radius if positive, erosion radius if negative.
    thickness: f32,
}

impl Warp {
    /// A warp from explicit parameters (angles in degrees).
    fn new(theta: f64, scale: f64, phi: f64, t: [f64; 2], flip: bool, alpha: f32, thickness: f32) -> Self {
        let (sin, cos) = theta.to_radians().sin_cos();
        let tan = phi.to_radians().tan();
        // A^-1 = (1/s) [1, -tan; 0, 1] [cos, sin; -sin, cos].
        let mut m = [
            (cos + tan * sin) / scale,
            (sin - tan * cos) / scale,
            -sin / scale,
            cos / scale,
        ];
        if flip {
            m[0] = -m[0];
            m[1] = -m[1];
        }
        Self {
            m: m.map(|v| v as f32),
            t: t.map(|v| v as f32),
            alpha,
            thickness,
        }
    }

    /// Draws the parameters of `augment` from `rng`, always in the same
    /// order: flip, angle, scale, shear, `t_x`, `t_y`, then the stroke
    /// radius when `thickness > 0`.
    fn draw(augment: &Augment, rng: &mut Rng) -> Self {
        let mut symmetric = |max: f32| (2.0 * rng.uniform_f64() - 1.0) * f64::from(max);
        let flip = symmetric(1.0) < 0.0 && augment.hflip;
        let theta = symmetric(augment.rotate);
        let scale = 1.0 + symmetric(augment.scale);
        let phi = symmetric(augment.shear);
        let t = [symmetric(augment.shift), symmetric(augment.shift)];
        let thickness = if augment.thickness > 0 {
            symmetric(f32::from(augment.thickness)) as f32
        } else {
            0.0
        };
        let alpha = augment.elastic.map_or(0.0, |e| e.alpha);
        Self::new(theta, scale, phi, t, flip, alpha, thickness)
    }

    /// Warps `src` into `dst` (bilinear, zero outside), then thickens or
    /// thins. The elastic field, when `alpha != 0`, is in `scratch`.
    #[inline(always)]
    fn apply(&self, src: &[u8], dst: &mut [u8], rows: usize, cols: usize, scratch: &mut Scratch) {
        let n = rows * cols;
        let width = cols + 2;
        let padded = &mut scratch.padded[..(rows + 2) * width];
        padded[..width].fill(0.0);
        padded[(rows + 1) * width..].fill(0.0);
        for (line, row) in padded[width..(rows + 1) * width]
            .chunks_exact_mut(width)
            .zip(src.chunks_exact(cols))
        {
            line[0] = 0.0;
            line[cols + 1] = 0.0;
            line[1..=cols].iter_mut().zip(row).for_each(|(d, &s)| *d = f32::from(s));
        }
        // The ink's bounding box, in padded coordinates: a sample whose four
        // neighbours all lie outside it reads four zeros and gives exactly
        // 0, and a chunk of such samples is written as zeros at once.
        let (mut ink_x, mut ink_y) = ((usize::MAX, 0), (usize::MAX, 0));
        for (r, row) in src.chunks_exact(cols).enumerate() {
            if let Some(first) = row.iter().position(|&p| p != 0) {
                let last = cols - 1 - row.iter().rev().position(|&p| p != 0).unwrap_or(0);
                ink_x = (ink_x.0.min(first + 1), ink_x.1.max(last + 1));
                ink_y = (ink_y.0.min(r + 1), r + 1);
            }
        }
        // Floor(x) reads columns floor(x) and floor(x) + 1: some ink only
        // for x in [first - 1, last + 1) (padded), likewise for y; and no
        // ink at all leaves the box empty (NaN never enters it either).
        let (box_x0, box_x1) = (ink_x.0 as f32 - 1.0, ink_x.1 as f32 + 1.0);
        let (box_y0, box_y1) = (ink_y.0 as f32 - 1.0, ink_y.1 as f32 + 1.0);
        let out: &mut [u8] = if self.thickness == 0.0 {
            dst
        } else {
            &mut scratch.warped[..n]
        };
        let padded = &scratch.padded[..(rows + 2) * width];
        let (ox, oy) = ((cols as f32 - 1.0) * 0.5, (rows as f32 - 1.0) * 0.5);
        // Padded coordinates are one more than image coordinates.
        let (px0, py0) = (ox + 1.0, oy + 1.0);
        let (x_end, y_end) = ((cols + 1) as f32, (rows + 1) as f32);
        let [m00, m01, m10, m11] = self.m;
        let elastic = self.alpha != 0.0;
        // LANES output pixels at a time: the coordinates, tests, weights and
        // blends run over fixed-size arrays (vectorised), only the four
        // loads per pixel are scalar.
        let lane_offsets: [f32; LANES] = std::array::from_fn(|k| k as f32);
        // Below 2^22 padded pixels (any image of up to about 2000 x 2000),
        // indices are computed in floats (see below).
        let float_index = (rows + 2) * width < 1 << 22;
        let width_f = width as f32;
        for (r, out_row) in out.chunks_exact_mut(cols).enumerate() {
            let v = r as f32 - oy - self.t[1];
            let (bx, by) = (m01 * v + px0, m11 * v + py0);
            let row = r * cols..(r + 1) * cols;
            let (ex_row, ey_row) = (&scratch.dx[row.clone()], &scratch.dy[row]);
            for (chunk, out_chunk) in out_row.chunks_mut(LANES).enumerate() {
                let c0 = chunk * LANES;
                let len = out_chunk.len();
                let (mut x, mut y) = ([0.0f32; LANES], [0.0f32; LANES]);
                for k in 0..LANES {
                    let u = (c0 as f32 + lane_offsets[k]) - ox - self.t[0];
                    x[k] = m00 * u + bx;
                    y[k] = m10 * u + by;
                }
                if elastic {
                    let (mut ex, mut ey) = ([0.0f32; LANES], [0.0f32; LANES]);
                    ex[..len].copy_from_slice(&ex_row[c0..c0 + len]);
                    ey[..len].copy_from_slice(&ey_row[c0..c0 + len]);
                    for k in 0..LANES {
                        x[k] += self.alpha * ex[k];
                        y[k] += self.alpha * ey[k];
                    }
                }
                let mut inked = false;
                for k in 0..LANES {
                    inked |= (x[k] >= box_x0) & (x[k] < box_x1) & (y[k] >= box_y0) & (y[k] < box_y1);
                }
                if !inked {
                    out_chunk.fill(0);
                    continue;
                }
                // Inside [0, cols + 1) x [0, rows + 1) of the padded image
                // the four neighbours exist. A point outside (or NaN) is
                // moved to the padded corner (0, 0), whose neighbours are
                // the zero border: it reads as exactly 0.
                let (mut fx, mut fy, mut index) = ([0.0f32; LANES], [0.0f32; LANES], [0u32; LANES]);
                if float_index {
                    // The same, in float arithmetic only, so that it runs
                    // LANES at a time: for v in [0, 2^22), (v + 2^23) - 2^23
                    // is v rounded to an integer, one less if that rounded
                    // up is floor(v), the integer `as` gives; the index,
                    // below 2^22, is read from its float's low mantissa bits
                    // as the warp's result is.
                    for k in 0..LANES {
                        let inside = (x[k] >= 0.0) & (x[k] < x_end) & (y[k] >= 0.0) & (y[k] < y_end);
                        let xk = if inside { x[k] } else { 0.0 };
                        let yk = if inside { y[k] } else { 0.0 };
                        let (xr, yr) = ((xk + ROUND) - ROUND, (yk + ROUND) - ROUND);
                        let x0 = if xr > xk { xr - 1.0 } else { xr };
                        let y0 = if yr > yk { yr - 1.0 } else { yr };
                        fx[k] = xk - x0;
                        fy[k] = yk - y0;
                        index[k] = (y0 * width_f + x0 + ROUND).to_bits() & MANTISSA;
                    }
                } else {
                    for k in 0..LANES {
                        let inside = x[k] >= 0.0 && x[k] < x_end && y[k] >= 0.0 && y[k] < y_end;
                        let (xk, yk) = if inside { (x[k], y[k]) } else { (0.0, 0.0) };
                        let (x0, y0) = (xk as u32, yk as u32);
                        fx[k] = xk - x0 as f32;
                        fy[k] = yk - y0 as f32;
                        index[k] = y0 * width as u32 + x0;
                    }
                }
                let (mut a, mut b, mut c, mut d) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
                for k in 0..LANES {
                    let i = index[k] as usize;
                    // One bounds check for the four neighbours.
                    let quad = &padded[i..i + width + 2];
                    (a[k], b[k], c[k], d[k]) = (quad[0], quad[1], quad[width], quad[width + 1]);
                }
                let mut value = [0u8; LANES];
                for k in 0..LANES {
                    let top = a[k] * (1.0 - fx[k]) + b[k] * fx[k];
                    let bottom = c[k] * (1.0 - fx[k]) + d[k] * fx[k];
                    // Round to nearest: a blend of bytes lies in [0, 255],
                    // and adding 2^23 leaves the float with no fraction
                    // bits, so the addition rounds it (ties to even) and
                    // its low mantissa bits hold the byte: a bit cast, not
                    // a float-to-integer conversion.
                    value[k] = (top * (1.0 - fy[k]) + bottom * fy[k] + ROUND).to_bits() as u8;
                }
                out_chunk.copy_from_slice(&value[..len]);
            }
        }
        if self.thickness != 0.0 {
            let (warped, below) = (&scratch.warped[..n], &mut scratch.morphed[..n]);
            let radius = self.thickness.abs().ceil().min(7.0);
            let f = self.thickness.abs() - (radius - 1.0);
            let dilate = self.thickness > 0.0;
            morph(warped, dst, rows, cols, radius as usize, dilate);
            if f < 1.0 {
                let below: &[u8] = if radius > 1.0 {
                    morph(warped, below, rows, cols, radius as usize - 1, dilate);
                    below
                } else {
                    warped
                };
                // Blend: the same bit-cast rounding as the warp's.
                for (d, &b) in dst.iter_mut().zip(below) {
                    let (lo, hi) = (f32::from(b), f32::from(*d));
                    *d = (lo + f * (hi - lo) + ROUND).to_bits() as u8;
                }
            }
        }
    }
}

/// Draws the elastic field, if any, then warps `src` into `dst`: the work of
/// [`Augment::apply`], compiled for AVX2 as well and run that way where the
/// CPU has it. The instruction set changes no result: Rust never fuses a
/// multiplication and an addition, so every operation rounds as IEEE 754
/// says on any of them (the tests compare both with a plain loop).
#[allow(clippy::too_many_arguments)]
fn distort(
    elastic: Option<Elastic>,
    warp: &Warp,
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports the feature the function is compiled for.
            unsafe { distort_avx2(elastic, warp, src, dst, rows, cols, rng, scratch) };
            return;
        }
    }
    distort_body(elastic, warp, src, dst, rows, cols, rng, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn distort_avx2(
    elastic: Option<Elastic>,
    warp: &Warp,
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    scratch: &mut Scratch,
) {
    distort_body(elastic, warp, src, dst, rows, cols, rng, scratch);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn distort_body(
    elastic: Option<Elastic>,
    warp: &Warp,
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    scratch: &mut Scratch,
) {
    if let Some(elastic) = elastic {
        scratch.elastic_field(rows, cols, elastic, rng);
    }
    warp.apply(src, dst, rows, cols, scratch);
}

/// Grey dilation (`k > 0`) or erosion (`k < 0`) of `src` into `dst` by the
/// disk `dx^2 + dy^2 <= k^2`, ignoring neighbours outside the image: each
/// output row combines, for every `dy`, the row `r + dy` shifted by every
/// `dx` of the disk's run on that row, a whole row at a time.
#[inline(always)]
fn morph(src: &[u8], dst: &mut [u8], rows: usize, cols: usize, radius: usize, dilate: bool) {
    // Valid settings keep the radius at most 3; never index past `half`.
    let radius = radius.min(7);
    // The disk's half-width on the row `dy` away, for |dy| <= radius.
    let mut half = [0usize; 8];
    for (dy, h) in half.iter_mut().enumerate().take(radius + 1) {
        *h = (((radius * radius - dy * dy) as f64).sqrt()) as usize;
    }
    if dilate {
        morph_with(src, dst, rows, cols, radius, &half, u8::max);
    } else {
        morph_with(src, dst, rows, cols, radius, &half, u8::min);
    }
}

/// [`morph`] with the combining operation `op` (`max` or `min`), inlined.
#[inline(always)]
fn morph_with(
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
    radius: usize,
    half: &[usize; 8],
    op: impl Fn(u8, u8) -> u8 + Copy,
) {
    for (r, out) in dst.chunks_exact_mut(cols).enumerate() {
        out.copy_from_slice(&src[r * cols..(r + 1) * cols]);
        for y in r.saturating_sub(radius)..=(r + radius).min(rows - 1) {
            let row = &src[y * cols..(y + 1) * cols];
            let w = half[y.abs_diff(r)].min(cols - 1);
            for shift in 0..=w {
                if shift == 0 && y == r {
                    continue;
                }
                // out[c] = op(out[c], row[c + shift]) and op(out[c], row[c - shift]).
                out[..cols - shift]
                    .iter_mut()
                    .zip(&row[shift..])
                    .for_each(|(o, &p)| *o = op(*o, p));
                out[shift..]
                    .iter_mut()
                    .zip(&row[..cols - shift])
                    .for_each(|(o, &p)| *o = op(*o, p));
            }
        }
    }
}

/// The splitmix64 finaliser: a bijection of 64-bit words whose every output
/// bit depends on every input bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of the rng that augments example `index` in epoch `epoch`:
/// `mix(mix(mix(seed) ^ epoch) ^ index)`, chained so that no two
/// `(epoch, index)` pairs share a seed by symmetry.
fn example_seed(seed: u64, epoch: u64, index: u64) -> u64 {
    mix(mix(mix(seed) ^ epoch) ^ index)
}

/// A [`Dataset`] whose images are distorted by an [`Augment`] as they are
/// gathered, differently each epoch: a `backprop_nn::Examples` source for
/// training.
///
/// Example `i` of epoch `e` (set by [`Examples::start_epoch`], which the
/// trainer calls before each epoch) is the image [`Augment::apply`] makes
/// with an `Rng` seeded from `(seed, e, i)` alone (splitmix64-mixed), so it
/// does not depend on batch order or size, the number of threads, or the
/// epoch a run resumed at. Gathered pixels are scaled exactly like the
/// plain dataset's ([`pixel_to_f32`]), and compressed gathers give the same
/// values as dense ones; [`Examples::density`] reports the plain dataset's
/// density. Labels are unchanged.
///
/// [`Examples::prepare`] (which the trainer calls before each gather, with
/// its threads) distorts the batch on the pool, a part of 8 images
/// per task, each part with its own [`Scratch`]; the gather of the same
/// indices in the same epoch then copies it. A gather that was not prepared
/// distorts its batch itself, on the calling thread: the same bytes.
///
/// Buffers (the distorted bytes of a batch and the scratches) are kept
/// behind a mutex and reused: after the first gather of the largest batch,
/// gathers allocate nothing. A gather that finds them in use by another
/// thread (parallel evaluation) works in buffers of its own.
pub struct Augmented {
    data: Dataset,
    augment: Augment,
    seed: u64,
    density: f32,
    epoch: AtomicU64,
    buffers: Mutex<Buffers>,
}

impl fmt::Debug for Scratch {
    /// The size it holds, not the buffers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch")
            .field("pixels", &self.dx.len())
            .field("kernel_taps", &self.kernel.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Augmented {
    /// The settings and the dataset's shape, not the buffers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Augmented")
            .field("data", &self.data)
            .field("augment", &self.augment)
            .field("seed", &self.seed)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// [`Augmented`]'s reusable memory.
struct Buffers {
    /// For single images ([`Augmented::augmented_image`]).
    scratch: Scratch,
    /// The distorted bytes of a batch, image after image.
    images: Vec<u8>,
    /// The batch `images` holds, when `ready`: its epoch and indices.
    epoch: u64,
    indices: Vec<u32>,
    ready: bool,
    /// One per [`PART`] images of a batch, so that parts can be made on
    /// different threads.
    parts: Vec<Mutex<Vec<u8>>>,
    /// One per thread of the pool that makes the parts, indexed by
    /// [`ThreadPool::thread_index`]: a thread's scratch stays in its core's
    /// caches, whichever parts it claims. (Scratch per part moved from core
    /// to core with the parts, some 20 KB a part: on two vCPUs that traffic
    /// made two threads slower than one.)
    scratches: Vec<Mutex<Scratch>>,
}

/// Where [`Augmented::make_batch`] distorts a batch's parts.
enum Runner<'a> {
    /// On the calling thread.
    Here,
    /// On a pool's threads, now.
    Pool(&'a ThreadPool),
    /// On a pool's idle threads while the step runs on the calling thread.
    Beside(&'a ThreadPool, &'a mut dyn FnMut()),
}

/// The most images one task distorts: a batch of 128 makes 16 tasks, enough
/// to balance two or three threads, each long enough (about 50 to 100 µs)
/// that handing it out costs nothing in comparison.
const PART: usize = 8;

impl Buffers {
    fn new(rows: usize, cols: usize) -> Self {
        Self {
            scratch: Scratch::new(rows, cols),
            images: Vec::new(),
            epoch: 0,
            indices: Vec::new(),
            ready: false,
            parts: Vec::new(),
            scratches: Vec::new(),
        }
    }
}

impl Augmented {
    /// Augments `data` with `augment`, seeding every draw from `seed`; the
    /// epoch starts at 0.
    ///
    /// # Errors
    /// [`DataError::AugmentOutOfRange`] if `augment` is not valid
    /// ([`Augment::validate`]).
    pub fn new(data: Dataset, augment: Augment, seed: u64) -> Result<Self> {
        augment.validate()?;
        let (rows, cols) = data.image_shape();
        Ok(Self {
            density: data.density(),
            buffers: Mutex::new(Buffers::new(rows, cols)),
            data,
            augment,
            seed,
            epoch: AtomicU64::new(0),
        })
    }

    /// The plain dataset.
    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// The plain dataset, giving up the augmentation.
    pub fn into_data(self) -> Dataset {
        self.data
    }

    /// The distortion settings.
    pub fn augment(&self) -> &Augment {
        &self.augment
    }

    /// The seed every draw derives from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The epoch whose distortions gathers give now.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Writes example `index` as epoch `epoch` distorts it into `dst`
    /// (`n_features()` bytes): what a gather converts to `f32`. For
    /// inspecting or saving augmented images.
    ///
    /// # Panics
    /// If `index` is out of range or `dst` has the wrong length.
    #[track_caller]
    pub fn augmented_image(&self, index: usize, epoch: u64, dst: &mut [u8]) {
        let (rows, cols) = self.data.image_shape();
        let src = self.data.image(index);
        self.with_buffers(|buffers| self.augment_one(src, index as u64, epoch, dst, rows, cols, &mut buffers.scratch));
    }

    /// Distorts example `index`'s bytes `src` into `dst`.
    #[allow(clippy::too_many_arguments)]
    fn augment_one(
        &self,
        src: &[u8],
        index: u64,
        epoch: u64,
        dst: &mut [u8],
        rows: usize,
        cols: usize,
        scratch: &mut Scratch,
    ) {
        let mut rng = Rng::seed_from_u64(example_seed(self.seed, epoch, index));
        self.augment.apply(src, dst, rows, cols, &mut rng, scratch);
    }

    /// Runs `f` on the shared buffers, or on fresh ones when another thread
    /// holds them.
    fn with_buffers<T>(&self, f: impl FnOnce(&mut Buffers) -> T) -> T {
        match self.buffers.try_lock() {
            Ok(mut buffers) => f(&mut buffers),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {
                let (rows, cols) = self.data.image_shape();
                f(&mut Buffers::new(rows, cols))
            }
        }
    }

    /// Distorts the examples `indices` into `buffers.images` (grown if
    /// needed), unless it holds them already for this epoch, writes their
    /// labels to `y`, and returns the bytes.
    #[track_caller]
    fn augment_batch<'b>(&self, indices: &[u32], y: &mut [usize], buffers: &'b mut Buffers) -> &'b [u8] {
        assert_eq!(
            y.len(),
            indices.len(),
            "Augmented: {} indices but {} labels",
            indices.len(),
            y.len()
        );
        self.make_batch(indices, buffers, Runner::Here);
        let labels = self.data.labels();
        for (label, &index) in y.iter_mut().zip(indices) {
            *label = usize::from(labels[index as usize]);
        }
        &buffers.images[..indices.len() * self.data.n_features()]
    }

    /// Makes `buffers.images` hold the examples `indices` as this epoch
    /// distorts them, [`PART`] images per task, on `pool`'s threads if
    /// given; does nothing when it holds them already. Every image is made
    /// whole by one task from its own seed, so the bytes do not depend on
    /// the threads.
    #[track_caller]
    fn make_batch(&self, indices: &[u32], buffers: &mut Buffers, runner: Runner<'_>) {
        let epoch = self.epoch();
        if buffers.ready && buffers.epoch == epoch && buffers.indices == indices {
            if let Runner::Beside(_, step) = runner {
                step();
            }
            return;
        }
        buffers.ready = false;
        if let Some(&i) = indices.iter().find(|&&i| i as usize >= self.data.len()) {
            panic!("Augmented: index {i} out of range for {} examples", self.data.len());
        }
        let (rows, cols) = self.data.image_shape();
        let f = rows * cols;
        let n_parts = indices.len().div_ceil(PART);
        while buffers.parts.len() < n_parts {
            buffers.parts.push(Mutex::new(vec![0; PART * f]));
        }
        let n_threads = match &runner {
            Runner::Here => 1,
            Runner::Pool(pool) | Runner::Beside(pool, _) => pool.n_threads(),
        };
        while buffers.scratches.len() < n_threads {
            buffers.scratches.push(Mutex::new(Scratch::new(rows, cols)));
        }
        let (parts, scratches) = (&buffers.parts[..n_parts], &buffers.scratches[..]);
        let make_part = |t: usize| {
            // Each task locks a part of its own, and its thread's scratch:
            // neither is contended (but for a thread of another pool calling
            // in, whose index may be taken; it then waits its turn).
            let mut images = parts[t].lock().unwrap_or_else(|e| e.into_inner());
            let slot = ThreadPool::thread_index() % scratches.len();
            let mut scratch = scratches[slot].lock().unwrap_or_else(|e| e.into_inner());
            let chunk = &indices[t * PART..((t + 1) * PART).min(indices.len())];
            for (dst, &index) in images.chunks_exact_mut(f).zip(chunk) {
                let src = self.data.image(index as usize);
                self.augment_one(src, u64::from(index), epoch, dst, rows, cols, &mut scratch);
            }
        };
        match runner {
            Runner::Here => (0..n_parts).for_each(make_part),
            Runner::Pool(pool) => pool.run(n_parts, &make_part),
            Runner::Beside(pool, step) => pool.run_beside(n_parts, &make_part, step),
        }
        let total = indices.len() * f;
        if buffers.images.len() < total {
            buffers.images.resize(total, 0);
        }
        for (dst, part) in buffers.images[..total].chunks_mut(PART * f).zip(&mut buffers.parts) {
            let part = part.get_mut().unwrap_or_else(|e| e.into_inner());
            dst.copy_from_slice(&part[..dst.len()]);
        }
        buffers.epoch = epoch;
        buffers.indices.clear();
        buffers.indices.extend_from_slice(indices);
        buffers.ready = true;
    }
}

impl Examples for Augmented {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn n_features(&self) -> usize {
        self.data.n_features()
    }

    fn target_shape(&self) -> TargetShape {
        TargetShape::Classes(self.data.n_classes())
    }

    fn gather(&self, indices: &[u32], mut x: ArrayViewMut2<'_, f32>, y: TargetsMut<'_>) {
        let TargetsMut::Classes(y) = y else {
            panic!("Augmented::gather: IDX data has class labels, not values")
        };
        let f = self.data.n_features();
        assert!(
            x.dim() == (indices.len(), f),
            "Augmented::gather: {} indices of {f} features need x of shape ({}, {f}), got {:?}",
            indices.len(),
            indices.len(),
            x.dim()
        );
        self.with_buffers(|buffers| {
            let images = self.augment_batch(indices, y, buffers);
            for (mut row, image) in x.rows_mut().into_iter().zip(images.chunks_exact(f)) {
                match row.as_slice_mut() {
                    Some(dst) => dst.iter_mut().zip(image).for_each(|(d, &s)| *d = pixel_to_f32(s)),
                    None => row.iter_mut().zip(image).for_each(|(d, &s)| *d = pixel_to_f32(s)),
                }
            }
        });
    }

    fn density(&self) -> Option<f32> {
        Some(self.density)
    }

    fn gather_sparse(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>) -> bool {
        let TargetsMut::Classes(y) = y else {
            return false;
        };
        let f = self.data.n_features();
        self.with_buffers(|buffers| {
            let images = self.augment_batch(indices, y, buffers);
            x.fill_u8(images.chunks_exact(f), f, 1.0 / 255.0);
        });
        true
    }

    fn gather_sparse_on(&self, indices: &[u32], x: &mut SparseRows, y: TargetsMut<'_>, pool: &ThreadPool) -> bool {
        let TargetsMut::Classes(y) = y else {
            return false;
        };
        let f = self.data.n_features();
        self.with_buffers(|buffers| {
            let images = self.augment_batch(indices, y, buffers);
            x.fill_u8_with(pool, indices.len(), f, 1.0 / 255.0, |r| &images[r * f..(r + 1) * f]);
        });
        true
    }

    fn start_epoch(&self, epoch: usize) {
        self.epoch.store(epoch as u64, Ordering::Relaxed);
    }

    fn prefetch(&self, indices: &[u32]) {
        self.data.prefetch(indices);
    }

    /// Distorts the batch now, its images split across `pool`'s threads,
    /// for the gather that follows to copy. (Skipped when another thread is
    /// gathering: the gather then distorts the batch itself.)
    fn prepare(&self, indices: &[u32], pool: &ThreadPool) {
        let mut buffers = match self.buffers.try_lock() {
            Ok(buffers) => buffers,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        self.make_batch(indices, &mut buffers, Runner::Pool(pool));
    }

    /// Distorts the next batch while the step runs, its images taken by
    /// `pool`'s threads whenever they are idle and the rest by this thread
    /// after the step ([`ThreadPool::run_beside`]); the gather of that batch
    /// then copies them. (Only the step runs when another thread is
    /// gathering.)
    fn prepare_beside(&self, next: &[u32], pool: &ThreadPool, step: &mut dyn FnMut()) {
        let mut buffers = match self.buffers.try_lock() {
            Ok(buffers) => buffers,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return step(),
        };
        self.make_batch(next, &mut buffers, Runner::Beside(pool, step));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    const SIDE: usize = 28;

    /// A 28x28 image with the pixels `f(r, c)` says.
    fn image(f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        (0..SIDE * SIDE).map(|i| f(i / SIDE, i % SIDE)).collect()
    }

    /// A digit-like ring of radius about 7 around the centre, anti-aliased.
    fn ring() -> Vec<u8> {
        image(|r, c| {
            let (y, x) = (r as f32 - 13.5, c as f32 - 13.5);
            let d = ((x * x + y * y).sqrt() - 7.0).abs();
            (255.0 * (1.5 - d).clamp(0.0, 1.0)) as u8
        })
    }

    /// A stroke like a handwritten digit's: a slanted bar and an arc, placed
    /// by `k`.
    fn digit_like(k: usize) -> Vec<u8> {
        let (dx, dy) = ((k % 5) as f32 - 2.0, (k % 3) as f32 - 1.0);
        image(|r, c| {
            let (y, x) = (r as f32 - 13.5 - dy, c as f32 - 13.5 - dx);
            let bar = (x - 0.3 * y).abs() - 1.2;
            let arc = (((x + 3.0) * (x + 3.0) + (y + 4.0) * (y + 4.0)).sqrt() - 5.0).abs() - 1.0;
            let d = if y.abs() < 9.0 {
                bar.min(if y < 0.0 { arc } else { 9.0 })
            } else {
                9.0
            };
            (255.0 * (1.0 - d).clamp(0.0, 1.0)) as u8
        })
    }

    /// Pseudo-random bytes.
    fn noise(seed: u64) -> Vec<u8> {
        let mut rng = Rng::seed_from_u64(seed);
        (0..SIDE * SIDE).map(|_| rng.next_u64() as u8).collect()
    }

    fn warp(w: Warp, src: &[u8]) -> Vec<u8> {
        let mut dst = vec![0; src.len()];
        let mut scratch = Scratch::new(SIDE, SIDE);
        w.apply(src, &mut dst, SIDE, SIDE, &mut scratch);
        dst
    }

    /// A warp with only the given geometric parameters.
    fn geometric(theta: f64, scale: f64, phi: f64, t: [f64; 2], flip: bool) -> Warp {
        Warp::new(theta, scale, phi, t, flip, 0.0, 0.0)
    }

    fn mass(img: &[u8]) -> f64 {
        img.iter().map(|&p| f64::from(p)).sum()
    }

    /// Centre of mass `(x, y)`.
    fn centre(img: &[u8]) -> (f64, f64) {
        let m = mass(img);
        let (mut x, mut y) = (0.0, 0.0);
        for (i, &p) in img.iter().enumerate() {
            x += (i % SIDE) as f64 * f64::from(p);
            y += (i / SIDE) as f64 * f64::from(p);
        }
        (x / m, y / m)
    }

    /// Standard deviations of the ink along x and along y.
    fn spread(img: &[u8]) -> (f64, f64) {
        let (cx, cy) = centre(img);
        let m = mass(img);
        let (mut vx, mut vy) = (0.0, 0.0);
        for (i, &p) in img.iter().enumerate() {
            vx += ((i % SIDE) as f64 - cx).powi(2) * f64::from(p);
            vy += ((i / SIDE) as f64 - cy).powi(2) * f64::from(p);
        }
        ((vx / m).sqrt(), (vy / m).sqrt())
    }

    fn apply(augment: &Augment, src: &[u8], seed: u64) -> Vec<u8> {
        let mut dst = vec![0; src.len()];
        let mut scratch = Scratch::new(SIDE, SIDE);
        augment.apply(src, &mut dst, SIDE, SIDE, &mut Rng::seed_from_u64(seed), &mut scratch);
        dst
    }

    /// The per-pixel loop [`Warp::apply`] vectorises, written plainly
    /// (without thickness): the fast path must give its bits.
    fn reference_warp(w: &Warp, src: &[u8], scratch: &Scratch) -> Vec<u8> {
        let (rows, cols) = (SIDE, SIDE);
        let pixel = |x: usize, y: usize| {
            if (1..=cols).contains(&x) && (1..=rows).contains(&y) {
                f32::from(src[(y - 1) * cols + x - 1])
            } else {
                0.0
            }
        };
        let mut out = vec![0; rows * cols];
        let (ox, oy) = ((cols as f32 - 1.0) * 0.5, (rows as f32 - 1.0) * 0.5);
        let (px0, py0) = (ox + 1.0, oy + 1.0);
        let [m00, m01, m10, m11] = w.m;
        for r in 0..rows {
            let v = r as f32 - oy - w.t[1];
            let (bx, by) = (m01 * v + px0, m11 * v + py0);
            for c in 0..cols {
                let u = c as f32 - ox - w.t[0];
                let mut x = m00 * u + bx;
                let mut y = m10 * u + by;
                if w.alpha != 0.0 {
                    x += w.alpha * scratch.dx[r * cols + c];
                    y += w.alpha * scratch.dy[r * cols + c];
                }
                out[r * cols + c] = if x >= 0.0 && x < (cols + 1) as f32 && y >= 0.0 && y < (rows + 1) as f32 {
                    let (x0, y0) = (x as usize, y as usize);
                    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
                    let top = pixel(x0, y0) * (1.0 - fx) + pixel(x0 + 1, y0) * fx;
                    let bottom = pixel(x0, y0 + 1) * (1.0 - fx) + pixel(x0 + 1, y0 + 1) * fx;
                    (top * (1.0 - fy) + bottom * fy).round_ties_even() as u8
                } else {
                    0
                };
            }
        }
        out
    }

    #[test]
    fn the_vectorised_warp_gives_the_plain_loops_bits() {
        let src = noise(9);
        let mut rng = Rng::seed_from_u64(10);
        let mut scratch = Scratch::new(SIDE, SIDE);
        for augment in [
            Augment::digits(),
            Augment::fashion(),
            Augment {
                rotate: 180.0,
                scale: 0.9,
                shift: 20.0,
                ..Augment::digits()
            },
        ] {
            for _ in 0..50 {
                let w = Warp {
                    thickness: 0.0,
                    ..Warp::draw(&augment, &mut rng)
                };
                // The field and the warp as `Augment::apply` makes them (with
                // AVX2 where the CPU has it), against the portable field and
                // the plain loop.
                let mut portable = scratch.clone();
                if let Some(elastic) = augment.elastic {
                    portable.elastic_field(SIDE, SIDE, elastic, &mut rng.clone());
                }
                let mut dst = vec![0; SIDE * SIDE];
                distort(augment.elastic, &w, &src, &mut dst, SIDE, SIDE, &mut rng, &mut scratch);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&scratch.dx), bits(&portable.dx));
                assert_eq!(bits(&scratch.dy), bits(&portable.dy));
                assert_eq!(dst, reference_warp(&w, &src, &scratch), "{w:?}");
            }
        }
    }

    /// The per-pixel formula `upsample` computes a row at a time: its bits,
    /// for several strides and image widths.
    #[test]
    fn the_upsampling_gives_the_per_pixel_formulas_bits() {
        for (rows, cols, stride) in [
            (28usize, 28usize, 2usize),
            (28, 28, 1),
            (13, 29, 3),
            (9, 7, 4),
            (5, 33, 2),
            (11, 30, 4),
            (12, 31, 5),
            (10, 10, 7),
        ] {
            let (grid_rows, grid_cols) = ((rows - 1) / stride + 2, (cols - 1) / stride + 2);
            let width = grid_cols.next_multiple_of(LANES);
            let mut rng = Rng::seed_from_u64((rows * cols * stride) as u64);
            let mut grid = vec![0.0; grid_rows * width];
            for row in grid.chunks_exact_mut(width) {
                uniform_field(&mut row[..grid_cols], 1.0, &mut rng);
            }
            let mut field = vec![f32::NAN; rows * cols];
            let mut spread = vec![f32::NAN; width];
            upsample(&grid, width, stride, &mut field, cols, &mut spread);
            let step = 1.0 / stride as f32;
            for r in 0..rows {
                let (i, fy) = (r / stride, (r % stride) as f32 * step);
                let at = |j: usize| grid[i * width + j] + fy * (grid[(i + 1) * width + j] - grid[i * width + j]);
                for c in 0..cols {
                    let (j, k) = (c / stride, c % stride);
                    let (a, b) = (at(j), at(j + 1));
                    let expected = a + k as f32 * step * (b - a);
                    assert_eq!(
                        field[r * cols + c].to_bits(),
                        expected.to_bits(),
                        "{rows}x{cols}, stride {stride}, ({r}, {c})"
                    );
                }
            }
        }
    }

    #[test]
    fn the_identity_returns_the_input_bits() {
        let src = noise(1);
        assert_eq!(apply(&Augment::none(), &src, 5), src);
        // The general path is exact at the identity too.
        assert_eq!(warp(geometric(0.0, 1.0, 0.0, [0.0; 2], false), &src), src);
        // Settings of zero draw parameters but change nothing.
        let zero_elastic = Augment {
            elastic: Some(Elastic { alpha: 0.0, sigma: 4.0 }),
            ..Augment::none()
        };
        assert_eq!(apply(&zero_elastic, &src, 5), src);
    }

    #[test]
    fn a_shift_moves_the_centre_of_mass_by_as_much() {
        let src = image(|r, c| {
            if (12..16).contains(&r) && (11..17).contains(&c) {
                200
            } else {
                0
            }
        });
        let (x, y) = centre(&src);
        let moved = warp(geometric(0.0, 1.0, 0.0, [2.0, 0.0], false), &src);
        let (mx, my) = centre(&moved);
        assert!(
            (mx - x - 2.0).abs() < 1e-9 && (my - y).abs() < 1e-9,
            "{x},{y} -> {mx},{my}"
        );
        assert_eq!(mass(&moved), mass(&src));
        let moved = warp(geometric(0.0, 1.0, 0.0, [-1.0, 3.0], false), &src);
        let (mx, my) = centre(&moved);
        assert!(
            (mx - x + 1.0).abs() < 1e-9 && (my - y - 3.0).abs() < 1e-9,
            "{x},{y} -> {mx},{my}"
        );
        // Half a pixel: bilinear, the centre moves by half a pixel too.
        let moved = warp(geometric(0.0, 1.0, 0.0, [0.5, 0.0], false), &src);
        assert!((centre(&moved).0 - x - 0.5).abs() < 0.02, "{:?}", centre(&moved));
    }

    #[test]
    fn a_quarter_turn_makes_a_horizontal_bar_vertical() {
        let bar = image(|r, c| {
            if (13..15).contains(&r) && (4..24).contains(&c) {
                255
            } else {
                0
            }
        });
        let (sx, sy) = spread(&bar);
        assert!(sx > 5.0 && sy < 1.0, "{sx} {sy}");
        let turned = warp(geometric(90.0, 1.0, 0.0, [0.0; 2], false), &bar);
        let (tx, ty) = spread(&turned);
        assert!(
            (tx - sy).abs() < 0.05 && (ty - sx).abs() < 0.05,
            "({sx}, {sy}) -> ({tx}, {ty})"
        );
        let (cx, cy) = centre(&turned);
        assert!((cx - 13.5).abs() < 0.05 && (cy - 13.5).abs() < 0.05, "{cx} {cy}");
        // A quarter turn of an image with its centre on a pixel grid is a
        // permutation of pixels, up to rounding of cos(90 degrees).
        let src = noise(2);
        let turned = warp(geometric(90.0, 1.0, 0.0, [0.0; 2], false), &src);
        let mut off = 0;
        for r in 0..SIDE {
            for c in 0..SIDE {
                // p_in = A^-1 (p_out - o) + o with A^-1 = [0, 1; -1, 0].
                let (x, y) = (r, SIDE - 1 - c);
                off += usize::from(turned[r * SIDE + c].abs_diff(src[y * SIDE + x]) > 1);
            }
        }
        assert_eq!(off, 0);
    }

    #[test]
    fn scaling_by_two_doubles_the_spread() {
        let blob = image(|r, c| {
            if (11..18).contains(&r) && (11..18).contains(&c) {
                255
            } else {
                0
            }
        });
        let (sx, sy) = spread(&blob);
        let big = warp(geometric(0.0, 2.0, 0.0, [0.0; 2], false), &blob);
        let (bx, by) = spread(&big);
        assert!(
            (bx / sx - 2.0).abs() < 0.05 && (by / sy - 2.0).abs() < 0.05,
            "{sx} -> {bx}"
        );
        assert!((mass(&big) / mass(&blob) - 4.0).abs() < 0.1);
        let small = warp(geometric(0.0, 0.5, 0.0, [0.0; 2], false), &big);
        assert!((spread(&small).0 / sx - 1.0).abs() < 0.1, "{:?}", spread(&small));
    }

    #[test]
    fn a_shear_slides_top_rows_left_and_bottom_rows_right() {
        let bar = image(|_, c| if (13..15).contains(&c) { 255 } else { 0 });
        let sheared = warp(geometric(0.0, 1.0, 20.0, [0.0; 2], false), &bar);
        let row_centre = |r: usize| centre(&image(|rr, c| if rr == r { sheared[r * SIDE + c] } else { 0 })).0;
        let tan = 20f64.to_radians().tan();
        for r in [2, 8, 19, 25] {
            let expected = 13.5 + tan * (r as f64 - 13.5);
            assert!(
                (row_centre(r) - expected).abs() < 0.05,
                "row {r}: {} vs {expected}",
                row_centre(r)
            );
        }
        assert!(row_centre(2) < 10.0 && row_centre(25) > 17.0);
    }

    #[test]
    fn a_flip_mirrors_exactly() {
        let src = noise(3);
        let flipped = warp(geometric(0.0, 1.0, 0.0, [0.0; 2], true), &src);
        for r in 0..SIDE {
            for c in 0..SIDE {
                assert_eq!(flipped[r * SIDE + c], src[r * SIDE + SIDE - 1 - c]);
            }
        }
        // `hflip` alone mirrors about half the time and otherwise copies.
        let augment = Augment {
            hflip: true,
            ..Augment::none()
        };
        let mirrored = (0..200)
            .filter(|&seed| {
                let out = apply(&augment, &src, seed);
                assert!(out == src || out == flipped, "seed {seed}");
                out == flipped
            })
            .count();
        assert!((70..130).contains(&mirrored), "{mirrored} of 200");
    }

    fn thick2_of(src: &[u8]) -> Vec<u8> {
        warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, 2.0), src)
    }

    #[test]
    fn dilation_adds_ink_and_erosion_removes_it() {
        let dot = image(|r, c| if (r, c) == (10, 10) { 255 } else { 0 });
        let thick = warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, 1.0), &dot);
        // Radius 1: the pixel and its four edge neighbours.
        assert_eq!(thick.iter().filter(|&&p| p == 255).count(), 5);
        assert_eq!(thick[9 * SIDE + 10], 255);
        assert_eq!(thick[9 * SIDE + 9], 0);
        let thick2 = warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, 2.0), &dot);
        assert_eq!(thick2.iter().filter(|&&p| p == 255).count(), 13);

        let src = ring();
        let thick = warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, 1.0), &src);
        let thin = warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, -1.0), &src);
        assert!(mass(&thick) > 1.3 * mass(&src), "{} {}", mass(&thick), mass(&src));
        assert!(mass(&thin) < 0.7 * mass(&src), "{} {}", mass(&thin), mass(&src));
        assert!(thick.iter().zip(&src).all(|(t, s)| t >= s));
        assert!(thin.iter().zip(&src).all(|(t, s)| t <= s));
        // A fractional radius blends: half of radius 1 is half-way.
        let half = warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, 0.5), &src);
        for ((&h, &t), &s) in half.iter().zip(&thick).zip(&src) {
            let mid = (f32::from(t) + f32::from(s)) / 2.0;
            assert!((f32::from(h) - mid).abs() <= 0.5, "{h} {t} {s}");
        }
        let between = warp(Warp::new(0.0, 1.0, 0.0, [0.0; 2], false, 0.0, 1.25), &src);
        assert!(
            between
                .iter()
                .zip(&thick)
                .zip(&thick2_of(&src))
                .all(|((b, t), t2)| t <= b && b <= t2)
        );
        // Random radii in [-1, 1]: each result lies between the thin and the
        // thick image, and they thicken and thin about equally often.
        let augment = Augment {
            thickness: 1,
            ..Augment::none()
        };
        let (mut thicker, mut thinner) = (0, 0);
        for seed in 0..100 {
            let out = apply(&augment, &src, seed);
            assert!(
                out.iter()
                    .zip(&thin)
                    .zip(&thick)
                    .all(|((o, lo), hi)| lo <= o && o <= hi)
            );
            if mass(&out) > mass(&src) {
                thicker += 1;
            } else if mass(&out) < mass(&src) {
                thinner += 1;
            }
        }
        assert!(thicker > 30 && thinner > 30, "{thicker} {thinner}");
    }

    #[test]
    fn elastic_distortion_moves_ink_but_keeps_about_as_much() {
        // The field stretches some parts of a thin stroke and squeezes
        // others, so one image's ink changes by up to about a third (most
        // by less than a fifth); on average it stays the same.
        let src = ring();
        let augment = Augment {
            elastic: Some(Elastic {
                alpha: 34.0,
                sigma: 4.0,
            }),
            ..Augment::none()
        };
        let (mut moved, mut ratios) = (0, Vec::new());
        for seed in 0..100 {
            let out = apply(&augment, &src, seed);
            let ratio = mass(&out) / mass(&src);
            assert!((0.6..1.5).contains(&ratio), "seed {seed}: {ratio}");
            ratios.push(ratio);
            moved += out.iter().zip(&src).filter(|(a, b)| a != b).count();
        }
        let within = ratios.iter().filter(|r| (0.8..1.2).contains(*r)).count();
        let mean = ratios.iter().sum::<f64>() / 100.0;
        assert!(
            within >= 85 && (mean - 1.0).abs() < 0.05,
            "{within} within 20%, mean {mean}"
        );
        assert!(moved / 100 > 100, "{moved}");
    }

    #[test]
    fn the_smoothed_field_has_simards_scale() {
        // Uniform noise of variance 1/3 smoothed by a 2-D Gaussian of sigma
        // keeps variance (1/3) / (4 pi sigma^2) away from the edges, drawn
        // per pixel (sigma 2, 3) or on a coarser grid (sigma 4, 8), where
        // it also stays as smooth: neighbours differ by as much.
        let mut scratch = Scratch::new(SIDE, SIDE);
        let mut rng = Rng::seed_from_u64(4);
        for sigma in [2.0f32, 3.0, 4.0, 8.0] {
            let (mut sum2, mut diff2, mut count) = (0.0f64, 0.0f64, 0);
            for _ in 0..400 {
                scratch.elastic_field(SIDE, SIDE, Elastic { alpha: 1.0, sigma }, &mut rng);
                for r in 11..17 {
                    for c in 11..17 {
                        for field in [&scratch.dx, &scratch.dy] {
                            sum2 += f64::from(field[r * SIDE + c]).powi(2);
                            diff2 += f64::from(field[r * SIDE + c + 1] - field[r * SIDE + c]).powi(2);
                            count += 1;
                        }
                    }
                }
            }
            let std = (sum2 / f64::from(count)).sqrt();
            let sigma = f64::from(sigma);
            let expected = (1.0 / 3.0 / (4.0 * std::f64::consts::PI * sigma * sigma)).sqrt();
            assert!(
                (std / expected - 1.0).abs() < 0.15,
                "sigma {sigma}: {std} vs {expected}"
            );
            // The correlation of neighbours of a field smoothed by G_sigma
            // is exp(-1 / (4 sigma^2)), so E[(f(x+1) - f(x))^2] = 2 var (1 - it).
            let expected_diff = (2.0 * expected * expected * (1.0 - (-1.0 / (4.0 * sigma * sigma)).exp())).sqrt();
            let diff = (diff2 / f64::from(count)).sqrt();
            assert!(
                (diff / expected_diff - 1.0).abs() < 0.2,
                "sigma {sigma}: {diff} vs {expected_diff}"
            );
        }
    }

    /// Both blurs give the bits of the plain per-element sum (the taps in
    /// order, from 0), at widths that take every block size of
    /// `weighted_rows` (one, two and four `LANES`, and mixes).
    #[test]
    fn the_blurs_give_the_per_element_sums_bits() {
        let mut kernel = Vec::new();
        gaussian_kernel(2.0, 15, &mut kernel);
        let radius = kernel.len() / 2;
        for (rows, width) in [(15usize, 16usize), (7, 8), (30, 32), (9, 24), (20, 56), (3, 40)] {
            let mut rng = Rng::seed_from_u64((rows * width) as u64);
            let mut src = vec![0.0f32; rows * width];
            uniform_field(&mut src, 1.0, &mut rng);
            let mut dst = vec![f32::NAN; rows * width];
            blur_columns(&src, &mut dst, rows, width, &kernel);
            for r in 0..rows {
                for c in 0..width {
                    let mut want = 0.0f32;
                    for i in r.saturating_sub(radius)..=(r + radius).min(rows - 1) {
                        want += kernel[i + radius - r] * src[i * width + c];
                    }
                    assert_eq!(
                        dst[r * width + c].to_bits(),
                        want.to_bits(),
                        "columns, {rows}x{width} ({r}, {c})"
                    );
                }
            }
            let mut line = vec![f32::NAN; width + 2 * radius];
            blur_rows(&src, &mut dst, width, &kernel, &mut line);
            for r in 0..rows {
                for c in 0..width {
                    let mut want = 0.0f32;
                    for (k, &w) in kernel.iter().enumerate() {
                        let x = (c + k).checked_sub(radius).filter(|&x| x < width);
                        want += w * x.map_or(0.0, |x| src[r * width + x]);
                    }
                    assert_eq!(
                        dst[r * width + c].to_bits(),
                        want.to_bits(),
                        "rows, {rows}x{width} ({r}, {c})"
                    );
                }
            }
        }
    }

    #[test]
    fn the_gaussian_kernel_is_normalised_and_cut() {
        let mut kernel = Vec::new();
        gaussian_kernel(4.0, 28, &mut kernel);
        assert_eq!(kernel.len(), 25);
        assert!((kernel.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(kernel[0], kernel[24]);
        gaussian_kernel(30.0, 28, &mut kernel);
        assert_eq!(kernel.len(), 55);
        // A constant field (28 columns stored 32 apart) stays constant
        // where the kernel fits inside, and fades towards the edges.
        let width = 32;
        let field: Vec<f32> = (0..SIDE * width)
            .map(|i| if i % width < SIDE { 1.0 } else { 0.0 })
            .collect();
        let (mut tmp, mut out) = (vec![0.0; SIDE * width], vec![0.0; SIDE * width]);
        gaussian_kernel(2.0, 28, &mut kernel);
        let mut line = vec![0.0; width + kernel.len() - 1];
        blur_columns(&field, &mut tmp, SIDE, width, &kernel);
        blur_rows(&tmp, &mut out, width, &kernel, &mut line);
        assert!((out[14 * width + 14] - 1.0).abs() < 1e-5);
        assert!(out[0] < 0.5 && out[SIDE - 1] < 0.5 && out[(SIDE - 1) * width] < 0.5);
        // Against the sums written out.
        for (r, c) in [(0, 0), (3, 27), (14, 5), (27, 27)] {
            let mut expected = 0.0f64;
            for (i, &wi) in kernel.iter().enumerate() {
                for (j, &wj) in kernel.iter().enumerate() {
                    let (y, x) = ((r + i) as isize - 6, (c + j) as isize - 6);
                    if (0..SIDE as isize).contains(&y) && (0..SIDE as isize).contains(&x) {
                        expected += f64::from(wi) * f64::from(wj);
                    }
                }
            }
            assert!((f64::from(out[r * width + c]) - expected).abs() < 1e-5, "({r}, {c})");
        }
    }

    #[test]
    fn the_same_rng_state_gives_the_same_bytes() {
        let src = ring();
        let a = apply(&Augment::digits(), &src, 77);
        assert_eq!(a, apply(&Augment::digits(), &src, 77));
        assert_ne!(a, apply(&Augment::digits(), &src, 78));
        // A scratch used for other images first gives the same bytes.
        let mut scratch = Scratch::new(10, 10);
        let mut other = vec![0; 100];
        Augment::fashion().apply(&[9; 100], &mut other, 10, 10, &mut Rng::seed_from_u64(1), &mut scratch);
        let mut dst = vec![0; SIDE * SIDE];
        Augment::digits().apply(&src, &mut dst, SIDE, SIDE, &mut Rng::seed_from_u64(77), &mut scratch);
        assert_eq!(dst, a);
    }

    #[test]
    fn presets_validate_and_print_as_spec_strings_that_parse_back() {
        for augment in [Augment::none(), Augment::digits(), Augment::fashion()] {
            augment.validate().unwrap();
            let spec = augment.to_string();
            assert_eq!(Augment::parse(&spec).unwrap(), augment, "{spec}");
        }
        assert_eq!(
            Augment::digits().to_string(),
            "shift=2,rotate=12,scale=0.1,shear=10,elastic=34:4,thickness=1"
        );
        assert_eq!(Augment::fashion().to_string(), "shift=2,scale=0.05,hflip");
        assert_eq!(Augment::parse("").unwrap(), Augment::none());
        assert_eq!(
            "digits, rotate=8, elastic=off".parse::<Augment>().unwrap(),
            Augment {
                rotate: 8.0,
                elastic: None,
                ..Augment::digits()
            }
        );
        assert_eq!(
            Augment::parse("hflip=false,shift=1.5").unwrap(),
            Augment {
                shift: 1.5,
                ..Augment::none()
            }
        );
    }

    #[test]
    fn bad_specs_name_the_key() {
        for (spec, key) in [
            ("rotat=3", "rotat"),
            ("rotate=abc", "rotate"),
            ("rotate", "rotate"),
            ("elastic=34", "elastic"),
            ("elastic=34:x", "elastic"),
            ("thickness=-1", "thickness"),
            ("hflip=maybe", "hflip"),
            ("shift=1,shift=2", "shift"),
            ("shift=1,digits", "digits"),
            ("none=1", "none"),
        ] {
            match Augment::parse(spec) {
                Err(DataError::AugmentSpec { key: found, .. }) => assert_eq!(found, key, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
        let err = Augment::parse("shift=1,rotate=abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "augmentation spec `shift=1,rotate=abc`: item `rotate=abc`: expected rotate=DEGREES, a number"
        );
        for (spec, key) in [
            ("scale=2", "scale"),
            ("shift=-1", "shift"),
            ("rotate=nan", "rotate"),
            ("shear=inf", "shear"),
            ("elastic=34:0", "elastic.sigma"),
            ("elastic=-1:4", "elastic.alpha"),
            ("thickness=4", "thickness"),
        ] {
            match Augment::parse(spec) {
                Err(DataError::AugmentOutOfRange { key: found, .. }) => assert_eq!(found, key, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
        let err = Augment::parse("scale=2").unwrap_err();
        assert_eq!(
            err.to_string(),
            "augmentation setting `scale` is 2, expected a relative change of 0 to 0.9"
        );
    }

    /// Ten 28x28 images (rings shifted around, and noise) with labels.
    fn dataset() -> Dataset {
        let mut pixels = Vec::new();
        for k in 0..10 {
            let img = if k % 3 == 2 { noise(k) } else { ring() };
            let shifted = warp(geometric(0.0, 1.0, 0.0, [k as f64 - 5.0, 0.0], false), &img);
            pixels.extend(shifted);
        }
        Dataset::new(pixels, (0..10).collect(), SIDE, SIDE, 10).unwrap()
    }

    fn gather(data: &Augmented, indices: &[u32]) -> (Array2<f32>, Vec<usize>) {
        let mut x = Array2::from_elem((indices.len(), SIDE * SIDE), f32::NAN);
        let mut y = vec![99; indices.len()];
        data.gather(indices, x.view_mut(), TargetsMut::Classes(&mut y));
        (x, y)
    }

    #[test]
    fn augmented_examples_depend_on_seed_epoch_and_index_only() {
        let data = Augmented::new(dataset(), Augment::digits(), 7).unwrap();
        let (x, y) = gather(&data, &[3, 1, 4, 1]);
        assert_eq!(y, [3, 1, 4, 1]);
        // The same example twice in a batch, or alone in another: the same.
        assert_eq!(x.row(1), x.row(3));
        let (alone, _) = gather(&data, &[4]);
        assert_eq!(alone.row(0), x.row(2));
        let mut bytes = vec![0; SIDE * SIDE];
        data.augmented_image(4, 0, &mut bytes);
        let scaled: Vec<f32> = bytes.iter().map(|&p| pixel_to_f32(p)).collect();
        assert_eq!(x.row(2).to_vec(), scaled);
        assert_ne!(bytes, data.data().image(4));
        // Another epoch: other distortions, and back again.
        data.start_epoch(1);
        assert_eq!(data.epoch(), 1);
        let (x1, _) = gather(&data, &[3, 1, 4, 1]);
        assert_ne!(x1.row(2), x.row(2));
        data.start_epoch(0);
        assert_eq!(gather(&data, &[3, 1, 4, 1]).0, x);
        // Another seed: other distortions.
        let other = Augmented::new(dataset(), Augment::digits(), 8).unwrap();
        assert_ne!(gather(&other, &[4]).0.row(0), x.row(2));
        // No augmentation: exactly the plain dataset's values.
        let plain = Augmented::new(dataset(), Augment::none(), 7).unwrap();
        let mut expected = Array2::zeros((2, SIDE * SIDE));
        let mut labels = [0; 2];
        plain.data().gather_into(&[5, 0], expected.view_mut(), &mut labels);
        assert_eq!(gather(&plain, &[5, 0]).0, expected);
    }

    #[test]
    fn compressed_gathers_give_the_dense_values() {
        let data = Augmented::new(dataset(), Augment::digits(), 3).unwrap();
        assert_eq!(Examples::density(&data), Some(data.data().density()));
        data.start_epoch(5);
        let indices = [9u32, 0, 2, 2, 7];
        let (x, y) = gather(&data, &indices);
        let mut sparse = SparseRows::with_capacity(indices.len(), SIDE * SIDE);
        let mut sparse_y = [0; 5];
        assert!(data.gather_sparse(&indices, &mut sparse, TargetsMut::Classes(&mut sparse_y)));
        assert_eq!(y, sparse_y);
        let mut dense = Array2::<f32>::zeros((5, SIDE * SIDE));
        backprop_tensor::sparse_gemm(
            1.0,
            &sparse,
            backprop_tensor::Op::Plain,
            Array2::eye(SIDE * SIDE).view(),
            0.0,
            &mut dense.view_mut(),
        );
        assert_eq!(x, dense);
    }

    #[test]
    fn concurrent_gathers_give_the_serial_values() {
        // Parallel evaluation gathers from several threads at once: a gather
        // that finds the shared buffers busy uses its own.
        let data = Augmented::new(dataset(), Augment::digits(), 11).unwrap();
        let batches: Vec<Vec<u32>> = (0..8).map(|t| (0..10).map(|i| (i * 3 + t) % 10).collect()).collect();
        let serial: Vec<_> = batches.iter().map(|b| gather(&data, b)).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = batches
                .iter()
                .map(|b| scope.spawn(|| (0..20).map(|_| gather(&data, b)).collect::<Vec<_>>()))
                .collect();
            for (handle, expected) in handles.into_iter().zip(&serial) {
                for got in handle.join().unwrap() {
                    assert_eq!(&got, expected);
                }
            }
        });
    }

    #[test]
    fn batches_prepared_on_any_pool_give_the_serial_bits() {
        // `prepare` splits a batch across the pool's threads in parts of
        // PART images; the gather that follows copies it. Batches longer
        // than a part, with repeats, on 1, 2 and 3 threads, dense and
        // compressed: the bits of a gather that prepared nothing.
        let indices: Vec<u32> = (0..37).map(|i| (i * 7 % 10) as u32).collect();
        let serial = Augmented::new(dataset(), Augment::digits(), 4).unwrap();
        serial.start_epoch(2);
        let (expected, labels) = gather(&serial, &indices);
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            let data = Augmented::new(dataset(), Augment::digits(), 4).unwrap();
            for epoch in [2, 3, 2] {
                data.start_epoch(epoch);
                data.prepare(&indices, &pool);
                let (x, y) = gather(&data, &indices);
                assert_eq!(y, labels);
                assert_eq!(x == expected, epoch == 2, "{threads} threads, epoch {epoch}");
                data.prepare(&indices, &pool);
                let mut sparse = SparseRows::with_capacity(indices.len(), SIDE * SIDE);
                let mut sparse_y = vec![0; indices.len()];
                assert!(data.gather_sparse(&indices, &mut sparse, TargetsMut::Classes(&mut sparse_y)));
                assert_eq!(sparse.nnz(), x.iter().filter(|&&v| v != 0.0).count());
            }
            // Prepared for one batch, a gather of another is made afresh.
            data.start_epoch(2);
            data.prepare(&indices[..5], &pool);
            assert_eq!(gather(&data, &indices).0, expected);
        }
    }

    #[test]
    fn batches_made_beside_a_step_give_the_serial_bits_and_run_the_step_once() {
        // `prepare_beside` makes the next batch on the pool's idle threads
        // while the step runs; the gather that follows copies it. On 1, 2
        // and 3 threads, with a step that keeps the pool busy, a step that
        // does nothing, a batch already made, and one whose buffers another
        // gather holds: the step runs once, and the bits are a plain
        // gather's.
        let indices: Vec<u32> = (0..37).map(|i| (i * 3 % 10) as u32).collect();
        let serial = Augmented::new(dataset(), Augment::digits(), 6).unwrap();
        serial.start_epoch(1);
        let expected = gather(&serial, &indices);
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            let data = Augmented::new(dataset(), Augment::digits(), 6).unwrap();
            data.start_epoch(1);
            for busy in [true, false, true] {
                let mut steps = 0;
                data.prepare_beside(&indices, &pool, &mut || {
                    steps += 1;
                    if busy {
                        let sums: Vec<std::sync::atomic::AtomicU64> =
                            (0..64).map(|_| std::sync::atomic::AtomicU64::new(0)).collect();
                        pool.run(64, &|t| {
                            let sum = (0..20_000u64).fold(t as u64, |a, b| a.wrapping_mul(31) ^ b);
                            sums[t].store(std::hint::black_box(sum), std::sync::atomic::Ordering::Relaxed);
                        });
                    }
                });
                assert_eq!(steps, 1, "{threads} threads");
                data.prepare(&indices, &pool);
                assert_eq!(gather(&data, &indices), expected, "{threads} threads");
            }
            // Another gather holds the buffers: only the step runs, and the
            // next gather makes the batch itself.
            data.start_epoch(3);
            let held = data.buffers.lock().unwrap();
            let mut steps = 0;
            data.prepare_beside(&indices[..4], &pool, &mut || steps += 1);
            drop(held);
            assert_eq!(steps, 1);
            data.start_epoch(1);
            assert_eq!(gather(&data, &indices), expected);
        }
    }

    #[test]
    fn augmented_rejects_invalid_settings() {
        let bad = Augment {
            rotate: -1.0,
            ..Augment::none()
        };
        assert!(matches!(
            Augmented::new(dataset(), bad, 1),
            Err(DataError::AugmentOutOfRange { key: "rotate", .. })
        ));
    }

    /// Nanoseconds this thread has run on a CPU (Linux), to time on a busy
    /// machine; 0 elsewhere.
    fn thread_cpu_ns() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// `cargo test --release -p backprop-data -- --ignored --nocapture
    /// augment_timing`: microseconds per 28x28 image.
    #[test]
    #[ignore = "a timing, not a test"]
    fn augment_timing() {
        let src = ring();
        let mut dst = vec![0; SIDE * SIDE];
        let mut scratch = Scratch::new(SIDE, SIDE);
        let n = 100_000u64;
        for (name, augment) in [
            ("none", Augment::none()),
            (
                "affine",
                Augment {
                    elastic: None,
                    thickness: 0,
                    ..Augment::digits()
                },
            ),
            (
                "affine+thickness",
                Augment {
                    elastic: None,
                    ..Augment::digits()
                },
            ),
            ("digits", Augment::digits()),
            ("fashion", Augment::fashion()),
        ] {
            let start = std::time::Instant::now();
            let cpu = thread_cpu_ns();
            for i in 0..n {
                let mut rng = Rng::seed_from_u64(example_seed(1, 0, i));
                augment.apply(&src, &mut dst, SIDE, SIDE, &mut rng, &mut scratch);
                std::hint::black_box(&dst);
            }
            let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
            let cpu_us = (thread_cpu_ns() - cpu) as f64 * 1e-3 / n as f64;
            println!("{name:>18}: {us:.2} us/image wall, {cpu_us:.2} us/image on the CPU (rng seeding included)");
        }
        let cpu = thread_cpu_ns();
        let mut rng = Rng::seed_from_u64(1);
        for _ in 0..n {
            scratch.elastic_field(
                SIDE,
                SIDE,
                Elastic {
                    alpha: 34.0,
                    sigma: 4.0,
                },
                &mut rng,
            );
            std::hint::black_box(&scratch.dx);
        }
        let cpu_us = (thread_cpu_ns() - cpu) as f64 * 1e-3 / n as f64;
        println!("{:>18}: {cpu_us:.2} us/image on the CPU", "elastic field");
        let warp = Warp::new(10.0, 1.1, 5.0, [1.0, -1.0], false, 0.0, 0.0);
        let cpu = thread_cpu_ns();
        for _ in 0..n {
            warp.apply(&src, &mut dst, SIDE, SIDE, &mut scratch);
            std::hint::black_box(&dst);
        }
        let cpu_us = (thread_cpu_ns() - cpu) as f64 * 1e-3 / n as f64;
        println!("{:>18}: {cpu_us:.2} us/image on the CPU", "affine warp");
        // A yardstick: the plain dataset's gather of one image (bytes to
        // f32), and an augmented gather of a batch of 64 per image.
        let data = Dataset::new(ring().repeat(64), vec![0; 64], SIDE, SIDE, 1).unwrap();
        let indices: Vec<u32> = (0..64).collect();
        let mut x = Array2::zeros((64, SIDE * SIDE));
        let mut y = vec![0; 64];
        let cpu = thread_cpu_ns();
        for _ in 0..n / 64 {
            data.gather_into(&indices, x.view_mut(), &mut y);
            std::hint::black_box(&x);
        }
        let cpu_us = (thread_cpu_ns() - cpu) as f64 * 1e-3 / (n / 64 * 64) as f64;
        println!("{:>18}: {cpu_us:.2} us/image on the CPU", "plain gather");
        let augmented = Augmented::new(data, Augment::digits(), 1).unwrap();
        let cpu = thread_cpu_ns();
        for _ in 0..n / 64 {
            Examples::gather(&augmented, &indices, x.view_mut(), TargetsMut::Classes(&mut y));
            std::hint::black_box(&x);
        }
        let cpu_us = (thread_cpu_ns() - cpu) as f64 * 1e-3 / (n / 64 * 64) as f64;
        println!("{:>18}: {cpu_us:.2} us/image on the CPU", "digits gather");
        // A batch of 128 made by `prepare` on a pool of one, two and three
        // threads: the least wall time of many batches (each another epoch,
        // so nothing is cached), which a busy machine inflates least.
        let pixels: Vec<u8> = (0..128)
            .flat_map(|k| if k % 2 == 0 { ring() } else { digit_like(k) })
            .collect();
        let batch = Augmented::new(
            Dataset::new(pixels, vec![0; 128], SIDE, SIDE, 1).unwrap(),
            Augment {
                thickness: 0,
                ..Augment::digits()
            },
            1,
        )
        .unwrap();
        let indices: Vec<u32> = (0..128).collect();
        let mut sparse = SparseRows::with_capacity(128, SIDE * SIDE);
        let mut y = vec![0; 128];
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads);
            let mut best = f64::INFINITY;
            for epoch in 0..400 {
                batch.start_epoch(epoch);
                let start = std::time::Instant::now();
                batch.prepare(&indices, &pool);
                batch.gather_sparse(&indices, &mut sparse, TargetsMut::Classes(&mut y));
                best = best.min(start.elapsed().as_secs_f64());
            }
            println!(
                "{:>18}: {:.2} us/image wall (best of 400 batches of 128, recipe mnist-best's settings)",
                format!("batch, {threads} threads"),
                best * 1e6 / 128.0
            );
        }
        let start = std::time::Instant::now();
        for i in 0..n {
            std::hint::black_box(Rng::seed_from_u64(i).next_u64());
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{:>18}: {us:.2} us/image", "rng seeding alone");
    }
}

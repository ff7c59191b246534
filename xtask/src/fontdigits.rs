//! `cargo xtask fontdigits`: the ten digits rendered from every usable
//! TrueType/OpenType font on the machine, as a test set of digits nobody here
//! drew.
//!
//! Fonts are found recursively (`.ttf`, `.otf`) under `/usr/share/fonts` or
//! the `--fonts` paths, in sorted path order. A font is skipped when it cannot
//! be parsed, is a symbol, dingbat or emoji font (a Windows symbol `cmap`
//! only, or such a word in its family name), lacks an outline for any of the
//! ten digits (bitmap and colour fonts), maps two digits to one glyph, or
//! repeats the family and style, or the digits (to within a small difference
//! in coverage), of a font taken (Noto's script fonts carry Noto Sans's
//! digits); the font with the shorter family name is kept.
//!
//! Every digit is drawn at each glyph height of [`SIZES`] (the tallest digit
//! of the font is scaled to it), each stroke weight of [`WEIGHTS`] allowed at
//! that height (faux bold: a grey dilation of the coverage by a disc of
//! radius `weight * ceil(size / 48)` pixels, so weight 1 and 2 thicken a
//! 96-pixel digit as much as a 48-pixel one, relatively) and each slant of
//! [`SLANTS`] (a shear of the outline, positive leaning right as italics do),
//! dark on light with margins and tones of their own (drawn from a hash of the
//! file name, so the output is the same on every run). Files are
//! `DIR/<digit>/<font>-<size>-w<weight>-s<slant>.png`; `manifest.csv` lists
//! `file,digit,font,size,weight,slant` and `fonts.csv` each font's family,
//! style and path.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontRef, Glyph, GlyphId, OutlineCurve, OutlinedGlyph, PxScaleFactor, Rect, point};
use anyhow::{Context, Result, bail, ensure};
use clap::Args;

use crate::project_root;

/// Glyph heights in pixels: the tallest digit of the font is this tall.
pub(crate) const SIZES: [u32; 4] = [16, 28, 48, 96];
/// Stroke weights: the radius of the faux-bold dilation, in units of
/// `ceil(size / 48)` pixels.
pub(crate) const WEIGHTS: [u32; 3] = [0, 1, 2];
/// Slants in degrees: the outline is sheared by `tan(slant)`.
pub(crate) const SLANTS: [i32; 3] = [-12, 0, 12];
/// Where fonts are looked for without `--fonts`.
pub(crate) const SYSTEM_FONTS: &str = "/usr/share/fonts";
/// The manifest's header line.
pub(crate) const MANIFEST_HEADER: &str = "file,digit,font,size,weight,slant";

/// The mean difference in coverage per pixel below which two fonts' digits
/// count as the same (Noto's script fonts carry Noto Sans's or Noto Serif's
/// digits, not always to the bit).
const SAME_DIGITS: f32 = 0.02;

/// Words in a family name that mark a font whose digits are not digits.
const SYMBOL_WORDS: [&str; 6] = ["symbol", "emoji", "dingbat", "wingding", "webding", "music"];

#[derive(Debug, Args)]
pub(crate) struct FontDigitsArgs {
    /// Directory to fill, by default `datasets/fontdigits` in the workspace
    /// (emptied first if it holds an earlier run's manifest.csv; refused if
    /// it holds anything else).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// Font files or directories searched recursively instead of
    /// /usr/share/fonts.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    pub(crate) fonts: Vec<PathBuf>,
}

pub(crate) fn run(args: &FontDigitsArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| project_root().join("datasets/fontdigits"));
    let summary = generate(&out, &args.fonts)?;
    println!("{summary}");
    Ok(())
}

/// One rendering variant of a digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Variant {
    pub(crate) size: u32,
    pub(crate) weight: u32,
    pub(crate) slant: i32,
}

/// Every variant drawn: weight 1 from 28 pixels up, weight 2 from 48.
pub(crate) fn variants() -> Vec<Variant> {
    let mut all = Vec::new();
    for size in SIZES {
        for weight in WEIGHTS {
            let allowed = match weight {
                0 => true,
                1 => size >= 28,
                _ => size >= 48,
            };
            if !allowed {
                continue;
            }
            for slant in SLANTS {
                all.push(Variant { size, weight, slant });
            }
        }
    }
    all
}

/// The file a digit's variant is written to, relative to the output
/// directory.
pub(crate) fn file_name(digit: u8, font: &str, v: Variant) -> String {
    format!("{digit}/{font}-{}-w{}-s{}.png", v.size, v.weight, v.slant)
}

/// A font that passed the checks.
pub(crate) struct DigitFont {
    /// The file's bytes (the face borrows them when drawing).
    data: Vec<u8>,
    /// Family and style, letters and digits only, joined by `_`.
    pub(crate) label: String,
    pub(crate) family: String,
    pub(crate) style: String,
    pub(crate) path: PathBuf,
    /// The glyph of each digit.
    glyphs: [GlyphId; 10],
    /// The height of the tallest digit, in font units.
    digit_height: f32,
}

impl DigitFont {
    /// Reads and checks a font file: `Ok(Err(reason))` for a font to skip.
    pub(crate) fn load(path: &Path) -> Result<std::result::Result<DigitFont, String>> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(DigitFont::from_bytes(data, path))
    }

    fn from_bytes(data: Vec<u8>, path: &Path) -> std::result::Result<DigitFont, String> {
        let face = ttf_parser::Face::parse(&data, 0).map_err(|e| format!("not a font ({e})"))?;
        let (family, style) = names(&face).ok_or("no family name")?;
        let lower = family.to_lowercase();
        if let Some(word) = SYMBOL_WORDS.iter().find(|w| lower.contains(*w)) {
            return Err(format!("a {word} font"));
        }
        if let Some(cmap) = face.tables().cmap {
            let mut symbol = false;
            let mut unicode = false;
            for sub in cmap.subtables {
                symbol |= sub.platform_id == ttf_parser::PlatformId::Windows && sub.encoding_id == 0;
                unicode |= sub.is_unicode();
            }
            if symbol && !unicode {
                return Err("a symbol font (Windows symbol cmap only)".into());
            }
        }
        let font = FontRef::try_from_slice(&data).map_err(|e| format!("not a font ({e})"))?;
        let mut glyphs = [GlyphId(0); 10];
        let mut digit_height = 0f32;
        for (digit, slot) in glyphs.iter_mut().enumerate() {
            let c = char::from(b'0' + digit as u8);
            let id = font.glyph_id(c);
            if id.0 == 0 {
                return Err(format!("no glyph for '{c}'"));
            }
            let outline = font.outline(id).ok_or_else(|| format!("no outline for '{c}'"))?;
            // ab_glyph's unscaled bounds hold y_max in `min.y` (y grows
            // upwards in font units, downwards in pixels).
            let (w, h) = (outline.bounds.width(), -outline.bounds.height());
            if !(w > 0.0 && h > 0.0) || outline.curves.is_empty() {
                return Err(format!("an empty outline for '{c}'"));
            }
            digit_height = digit_height.max(h);
            *slot = id;
        }
        if glyphs.iter().collect::<HashSet<_>>().len() < 10 {
            return Err("two digits share a glyph".into());
        }
        for (digit, &id) in glyphs.iter().enumerate() {
            let width = font.outline(id).map_or(0.0, |o| o.bounds.width());
            if width > 3.0 * digit_height {
                return Err(format!("'{digit}' is over three times as wide as the digits are tall"));
            }
        }
        let mut name = alphanumeric(&family);
        if name.is_empty() {
            let stem = path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
            name = alphanumeric(&stem);
        }
        if name.is_empty() {
            return Err("no family name in ASCII letters or digits".into());
        }
        let label = format!("{name}_{}", alphanumeric(&style));
        drop(font);
        Ok(DigitFont {
            data,
            label,
            family,
            style,
            path: path.to_path_buf(),
            glyphs,
            digit_height,
        })
    }

    /// Coverage in [0, 1] of one digit, sheared, scaled so that the font's
    /// tallest digit is `v.size` pixels tall, dilated, and cropped to its ink.
    pub(crate) fn coverage(&self, digit: u8, v: Variant) -> Coverage {
        let font = FontRef::try_from_slice(&self.data).expect("checked when loaded");
        let id = self.glyphs[usize::from(digit)];
        let mut outline = font.outline(id).expect("checked when loaded");
        let shear = (v.slant as f32).to_radians().tan();
        if shear != 0.0 {
            let sheared = |p: ab_glyph::Point| point(p.x + shear * p.y, p.y);
            for curve in &mut outline.curves {
                *curve = match *curve {
                    OutlineCurve::Line(a, b) => OutlineCurve::Line(sheared(a), sheared(b)),
                    OutlineCurve::Quad(a, b, c) => OutlineCurve::Quad(sheared(a), sheared(b), sheared(c)),
                    OutlineCurve::Cubic(a, b, c, d) => {
                        OutlineCurve::Cubic(sheared(a), sheared(b), sheared(c), sheared(d))
                    }
                };
            }
            outline.bounds = control_bounds(&outline.curves);
        }
        let scale = v.size as f32 / self.digit_height;
        let glyph = Glyph {
            id,
            scale: ab_glyph::PxScale::from(v.size as f32),
            position: point(0.0, 0.0),
        };
        let outlined = OutlinedGlyph::new(
            glyph,
            outline,
            PxScaleFactor {
                horizontal: scale,
                vertical: scale,
            },
        );
        let bounds = outlined.px_bounds();
        let (w, h) = (bounds.width() as usize, bounds.height() as usize);
        let mut cov = Coverage {
            width: w,
            height: h,
            values: vec![0.0; w * h],
        };
        outlined.draw(|x, y, c| {
            let (x, y) = (x as usize, y as usize);
            if x < w && y < h {
                cov.values[y * w + x] = c.clamp(0.0, 1.0);
            }
        });
        let radius = v.weight * v.size.div_ceil(48);
        cov.dilate(radius as usize).cropped()
    }

    /// The digit as a dark-on-light picture with margins and tones drawn from
    /// a hash of `name`.
    pub(crate) fn render(&self, digit: u8, v: Variant, name: &str) -> image::GrayImage {
        let cov = self.coverage(digit, v);
        let mut rng = SplitMix(fnv1a(name.as_bytes()));
        let size = v.size as f64;
        let mut margin = || (size * (0.15 + 0.5 * rng.unit())).round().max(2.0) as usize;
        let (left, right, top, bottom) = (margin(), margin(), margin(), margin());
        let background = 255.0 - (30.0 * rng.unit()).floor();
        let ink = (50.0 * rng.unit()).floor();
        let (w, h) = (cov.width + left + right, cov.height + top + bottom);
        let mut img = image::GrayImage::from_pixel(w as u32, h as u32, image::Luma([background as u8]));
        for y in 0..cov.height {
            for x in 0..cov.width {
                let c = f64::from(cov.values[y * cov.width + x]);
                if c > 0.0 {
                    let grey = background - c * (background - ink);
                    img.put_pixel((x + left) as u32, (y + top) as u32, image::Luma([grey.round() as u8]));
                }
            }
        }
        img
    }

    /// The ten digits drawn at 28 pixels, upright and regular, to compare
    /// fonts' digits by.
    fn sample(&self) -> Vec<Coverage> {
        let v = Variant {
            size: 28,
            weight: 0,
            slant: 0,
        };
        (0..10).map(|digit| self.coverage(digit, v)).collect()
    }
}

/// Whether two fonts' digits look the same: every digit the same size, to
/// the pixel, and on average within [`SAME_DIGITS`] coverage per pixel.
fn same_digits(a: &[Coverage], b: &[Coverage]) -> bool {
    a.iter().zip(b).all(|(a, b)| {
        a.width == b.width
            && a.height == b.height
            && a.values.iter().zip(&b.values).map(|(x, y)| (x - y).abs()).sum::<f32>()
                <= SAME_DIGITS * a.values.len() as f32
    })
}

/// The family and style of a face: the typographic names (16, 17) where
/// present, else the legacy ones (1, 2), preferring US English.
fn names(face: &ttf_parser::Face<'_>) -> Option<(String, String)> {
    let find = |ids: [u16; 2]| {
        ids.iter().find_map(|&id| {
            let mut found: Vec<(bool, String)> = face
                .names()
                .into_iter()
                .filter(|n| n.name_id == id)
                .filter_map(|n| Some((n.language_id == 0x409, n.to_string()?)))
                .filter(|(_, s)| !s.trim().is_empty())
                .collect();
            found.sort_by_key(|(english, _)| !english);
            found.into_iter().next().map(|(_, s)| s.trim().to_string())
        })
    };
    use ttf_parser::name_id::{FAMILY, SUBFAMILY, TYPOGRAPHIC_FAMILY, TYPOGRAPHIC_SUBFAMILY};
    let family = find([TYPOGRAPHIC_FAMILY, FAMILY])?;
    let style = find([TYPOGRAPHIC_SUBFAMILY, SUBFAMILY]).unwrap_or_else(|| "Regular".into());
    Some((family, style))
}

/// ASCII letters and digits only.
fn alphanumeric(s: &str) -> String {
    s.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// The box around every point of the curves, control points included (the
/// curve lies inside their hull), with `min.y` the largest y, as ab_glyph
/// gives an outline's bounds in font units.
fn control_bounds(curves: &[OutlineCurve]) -> Rect {
    let mut r = Rect {
        min: point(f32::INFINITY, f32::NEG_INFINITY),
        max: point(f32::NEG_INFINITY, f32::INFINITY),
    };
    let mut add = |p: &ab_glyph::Point| {
        r.min.x = r.min.x.min(p.x);
        r.min.y = r.min.y.max(p.y);
        r.max.x = r.max.x.max(p.x);
        r.max.y = r.max.y.min(p.y);
    };
    for curve in curves {
        match curve {
            OutlineCurve::Line(a, b) => [a, b].into_iter().for_each(&mut add),
            OutlineCurve::Quad(a, b, c) => [a, b, c].into_iter().for_each(&mut add),
            OutlineCurve::Cubic(a, b, c, d) => [a, b, c, d].into_iter().for_each(&mut add),
        }
    }
    r
}

/// Ink coverage, row by row, each value in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Coverage {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) values: Vec<f32>,
}

impl Coverage {
    /// Grey dilation by a disc of `radius` pixels: each pixel takes the
    /// largest value within that distance. The picture grows by `radius` on
    /// every side.
    pub(crate) fn dilate(&self, radius: usize) -> Coverage {
        if radius == 0 {
            return self.clone();
        }
        let (w, h) = (self.width + 2 * radius, self.height + 2 * radius);
        let r = radius as isize;
        let offsets: Vec<(isize, isize)> = (-r..=r)
            .flat_map(|dy| (-r..=r).map(move |dx| (dx, dy)))
            .filter(|(dx, dy)| dx * dx + dy * dy <= r * r)
            .collect();
        let mut values = vec![0f32; w * h];
        for y in 0..h as isize {
            for x in 0..w as isize {
                let mut best = 0f32;
                for &(dx, dy) in &offsets {
                    let (sx, sy) = (x + dx - r, y + dy - r);
                    if sx >= 0 && sy >= 0 && (sx as usize) < self.width && (sy as usize) < self.height {
                        best = best.max(self.values[sy as usize * self.width + sx as usize]);
                    }
                }
                values[y as usize * w + x as usize] = best;
            }
        }
        Coverage {
            width: w,
            height: h,
            values,
        }
    }

    /// The smallest box holding every pixel with coverage.
    pub(crate) fn cropped(&self) -> Coverage {
        let inked = |x: usize, y: usize| self.values[y * self.width + x] > 0.0;
        let rows: Vec<usize> = (0..self.height)
            .filter(|&y| (0..self.width).any(|x| inked(x, y)))
            .collect();
        let cols: Vec<usize> = (0..self.width)
            .filter(|&x| (0..self.height).any(|y| inked(x, y)))
            .collect();
        let (Some(&y0), Some(&y1), Some(&x0), Some(&x1)) = (rows.first(), rows.last(), cols.first(), cols.last())
        else {
            return Coverage {
                width: 0,
                height: 0,
                values: Vec::new(),
            };
        };
        let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
        let mut values = Vec::with_capacity(w * h);
        for y in y0..=y1 {
            values.extend_from_slice(&self.values[y * self.width + x0..=y * self.width + x1]);
        }
        Coverage {
            width: w,
            height: h,
            values,
        }
    }
}

/// FNV-1a, 64 bits: a fixed hash, the same on every platform and release.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64: a few well-spread numbers from a hash.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Every `.ttf` and `.otf` file under the paths (files taken as they are),
/// sorted.
pub(crate) fn find_fonts(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<()> {
        ensure!(
            depth < 32,
            "{}: directories nested too deep (a link loop?)",
            dir.display()
        );
        let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
        for entry in entries {
            let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // a dangling link
            };
            if meta.is_dir() {
                walk(&path, depth + 1, found)?;
            } else if meta.is_file() && is_font_file(&path) {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "reading {} (no fonts there? install e.g. Debian's fonts-dejavu-core, or name fonts with --fonts)",
                path.display()
            )
        })?;
        if meta.is_dir() {
            walk(path, 0, &mut found)?;
        } else {
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn is_font_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ttf") || e.eq_ignore_ascii_case("otf"))
}

/// The fonts to draw from, and why each other one was skipped. Of fonts
/// with the same family and style, or the same digits, the one with the
/// shortest family name is kept (Noto Sans rather than Noto Sans Arabic),
/// then the first by path.
pub(crate) fn select_fonts(paths: &[PathBuf]) -> Result<(Vec<DigitFont>, Vec<Skipped>)> {
    let mut candidates = Vec::new();
    let mut skipped = Vec::new();
    for path in find_fonts(paths)? {
        match DigitFont::load(&path)? {
            Ok(font) => candidates.push(font),
            Err(reason) => skipped.push((path, reason)),
        }
    }
    candidates.sort_by(|a, b| {
        (a.family.len(), &a.family, &a.style, &a.path).cmp(&(b.family.len(), &b.family, &b.style, &b.path))
    });
    let mut taken: Vec<(DigitFont, Vec<Coverage>)> = Vec::new();
    let mut labels = HashSet::new();
    for font in candidates {
        if !labels.insert(font.label.clone()) {
            skipped.push((font.path.clone(), format!("a second {} {}", font.family, font.style)));
            continue;
        }
        let sample = font.sample();
        if let Some((first, _)) = taken.iter().find(|(_, s)| same_digits(s, &sample)) {
            skipped.push((font.path.clone(), format!("the same digits as {}", first.label)));
            continue;
        }
        taken.push((font, sample));
    }
    let mut taken: Vec<DigitFont> = taken.into_iter().map(|(font, _)| font).collect();
    taken.sort_by(|a, b| a.label.cmp(&b.label).then_with(|| a.path.cmp(&b.path)));
    skipped.sort();
    Ok((taken, skipped))
}

/// A font file left out, and why.
pub(crate) type Skipped = (PathBuf, String);

/// What [`generate`] wrote.
#[derive(Debug)]
pub(crate) struct Generated {
    pub(crate) dir: PathBuf,
    pub(crate) images: usize,
    pub(crate) fonts: usize,
    pub(crate) font_files: usize,
    pub(crate) skipped: Vec<Skipped>,
}

impl std::fmt::Display for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fontdigits: {} images of the ten digits from {} fonts ({} font files found, {} skipped) in {}",
            self.images,
            self.fonts,
            self.font_files,
            self.skipped.len(),
            self.dir.display()
        )
    }
}

/// Renders every digit of every usable font under `fonts` (or
/// /usr/share/fonts) into `out`, with `manifest.csv` and `fonts.csv`.
pub(crate) fn generate(out: &Path, fonts: &[PathBuf]) -> Result<Generated> {
    let search = if fonts.is_empty() {
        vec![PathBuf::from(SYSTEM_FONTS)]
    } else {
        fonts.to_vec()
    };
    let (taken, skipped) = select_fonts(&search)?;
    let font_files = taken.len() + skipped.len();
    for (path, reason) in &skipped {
        eprintln!("  skipped {}: {reason}", path.display());
    }
    ensure!(
        !taken.is_empty(),
        "no usable font with the ten digits under {} ({} font files; install e.g. fonts-dejavu-core)",
        search
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        font_files
    );
    prepare_out(out)?;
    let variants = variants();
    let mut manifest = String::from(MANIFEST_HEADER);
    manifest.push('\n');
    let mut font_list = String::from("font,family,style,path\n");
    let mut images = 0;
    // Fonts are drawn on a few threads; the manifest keeps the fonts' order.
    let drawn = parallel_map(&taken, |font| draw_font(font, &variants, out));
    for (font, lines) in taken.iter().zip(drawn) {
        writeln!(
            font_list,
            "{},{},{},{}",
            font.label,
            csv_field(&font.family),
            csv_field(&font.style),
            csv_field(&font.path.display().to_string())
        )?;
        let lines = lines?;
        images += lines.lines().count();
        manifest.push_str(&lines);
    }
    write_file(&out.join("fonts.csv"), &font_list)?;
    write_file(&out.join("manifest.csv"), &manifest)?;
    Ok(Generated {
        dir: out.to_path_buf(),
        images,
        fonts: taken.len(),
        font_files,
        skipped,
    })
}

/// Writes every variant of the ten digits of a font into `out` and returns
/// their manifest lines.
fn draw_font(font: &DigitFont, variants: &[Variant], out: &Path) -> Result<String> {
    eprintln!("  {} ({})", font.label, font.path.display());
    let mut lines = String::new();
    for digit in 0..10u8 {
        for &v in variants {
            let name = file_name(digit, &font.label, v);
            let img = font.render(digit, v, &name);
            let path = out.join(&name);
            img.save(&path).with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                lines,
                "{name},{digit},{},{},{},{}",
                font.label, v.size, v.weight, v.slant
            )?;
        }
    }
    Ok(lines)
}

/// `f` of every item, in order, computed on up to four threads.
pub(crate) fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> = items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item is taken by a worker")
        })
        .collect()
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Makes `out` an empty directory with the ten digit folders: an earlier
/// run's output (it has a manifest.csv) is removed; anything else is refused.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        ensure!(out.is_dir(), "{} exists and is not a directory", out.display());
        let mut entries = std::fs::read_dir(out).with_context(|| format!("listing {}", out.display()))?;
        if entries.next().is_some() {
            if !out.join("manifest.csv").is_file() {
                bail!(
                    "{} is not empty and holds no manifest.csv of an earlier run: refusing to write into it",
                    out.display()
                );
            }
            for digit in 0..10 {
                let dir = out.join(digit.to_string());
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
                }
            }
            for name in ["manifest.csv", "fonts.csv"] {
                let _ = std::fs::remove_file(out.join(name));
            }
        }
    }
    for digit in 0..10 {
        let dir = out.join(digit.to_string());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// One row of `manifest.csv`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) file: String,
    pub(crate) digit: u8,
    pub(crate) font: String,
    pub(crate) variant: Variant,
}

/// Reads `manifest.csv` of a directory written by [`generate`].
pub(crate) fn read_manifest(dir: &Path) -> Result<Vec<Entry>> {
    let path = dir.join("manifest.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_manifest(&text).with_context(|| format!("in {}", path.display()))
}

pub(crate) fn parse_manifest(text: &str) -> Result<Vec<Entry>> {
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, l)| l.trim_end());
    ensure!(
        header == Some(MANIFEST_HEADER),
        "the first line is {header:?}, expected {MANIFEST_HEADER:?}"
    );
    let mut entries = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim_end().split(',').collect();
        let line_no = i + 1;
        let [file, digit, font, size, weight, slant] = fields[..] else {
            bail!("line {line_no}: expected 6 fields, found {}", fields.len());
        };
        let number = |s: &str, what: &str| -> Result<i64> {
            s.parse()
                .with_context(|| format!("line {line_no}: {what} {s:?} is not a number"))
        };
        let digit = number(digit, "digit")?;
        ensure!((0..10).contains(&digit), "line {line_no}: digit {digit} is not 0 to 9");
        entries.push(Entry {
            file: file.to_string(),
            digit: digit as u8,
            font: font.to_string(),
            variant: Variant {
                size: u32::try_from(number(size, "size")?).context("size")?,
                weight: u32::try_from(number(weight, "weight")?).context("weight")?,
                slant: i32::try_from(number(slant, "slant")?).context("slant")?,
            },
        });
    }
    ensure!(!entries.is_empty(), "the manifest lists no image");
    Ok(entries)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The first font on this machine that passes the checks, if any. A
    /// DejaVu Sans or Liberation Sans file that fails them is a bug here, not
    /// a reason to skip.
    pub(crate) fn system_font() -> Option<DigitFont> {
        let paths = find_fonts(&[PathBuf::from(SYSTEM_FONTS)]).ok()?;
        for known in ["DejaVuSans.ttf", "LiberationSans-Regular.ttf"] {
            if let Some(path) = paths.iter().find(|p| p.ends_with(known)) {
                match DigitFont::load(path).unwrap() {
                    Ok(font) => return Some(font),
                    Err(reason) => panic!("{} refused: {reason}", path.display()),
                }
            }
        }
        paths.iter().find_map(|p| DigitFont::load(p).ok()?.ok())
    }

    #[test]
    fn control_bounds_follow_ab_glyph_s_convention() {
        let Some(font) = system_font() else {
            eprintln!("skipped: no usable .ttf/.otf font under {SYSTEM_FONTS} (install fonts-dejavu-core)");
            return;
        };
        let face = FontRef::try_from_slice(&font.data).unwrap();
        for id in font.glyphs {
            let outline = face.outline(id).unwrap();
            let ours = control_bounds(&outline.curves);
            // The hull of the control points holds the curve's box.
            assert!(ours.min.x <= outline.bounds.min.x && ours.max.x >= outline.bounds.max.x);
            assert!(ours.min.y >= outline.bounds.min.y && ours.max.y <= outline.bounds.max.y);
            assert!(ours.min.y > ours.max.y, "{ours:?}");
        }
    }

    fn ink_stats(img: &image::GrayImage) -> (f64, u8, u8) {
        let dark = img.pixels().filter(|p| p.0[0] < 128).count();
        let border = img
            .enumerate_pixels()
            .filter(|(x, y, _)| *x == 0 || *y == 0 || *x == img.width() - 1 || *y == img.height() - 1)
            .map(|(_, _, p)| p.0[0])
            .min()
            .unwrap();
        let darkest = img.pixels().map(|p| p.0[0]).min().unwrap();
        (dark as f64 / (img.width() * img.height()) as f64, border, darkest)
    }

    #[test]
    fn a_digit_from_a_system_font_is_dark_ink_on_light() {
        let Some(font) = system_font() else {
            eprintln!("skipped: no usable .ttf/.otf font under {SYSTEM_FONTS} (install fonts-dejavu-core)");
            return;
        };
        let upright = Variant {
            size: 48,
            weight: 0,
            slant: 0,
        };
        let name = file_name(3, &font.label, upright);
        let img = font.render(3, upright, &name);
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(decoded, img);
        let (ink, border, darkest) = ink_stats(&decoded);
        assert!(border >= 200, "{}: border {border} is not light", font.label);
        assert!(darkest <= 80, "{}: darkest pixel {darkest} is not dark", font.label);
        assert!((0.02..0.5).contains(&ink), "{}: ink fraction {ink}", font.label);
        let cov = font.coverage(3, upright);
        assert!(
            cov.height <= 49 && cov.height >= 30,
            "height {} for size 48",
            cov.height
        );

        // Same name, same bytes; bolder means more ink; a slant changes the shape.
        assert_eq!(font.render(3, upright, &name), img);
        let bold = font.coverage(3, Variant { weight: 2, ..upright });
        let sum = |c: &Coverage| c.values.iter().map(|&v| f64::from(v)).sum::<f64>();
        assert!(sum(&bold) > 1.3 * sum(&cov), "{} vs {}", sum(&bold), sum(&cov));
        let slanted = font.coverage(3, Variant { slant: 12, ..upright });
        assert!(slanted.width > cov.width && slanted != cov);
        for v in variants() {
            let (ink, border, _) = ink_stats(&font.render(8, v, "x"));
            assert!(border >= 200 && (0.02..0.6).contains(&ink), "{v:?}: {ink} {border}");
        }
    }

    #[test]
    fn the_manifest_matches_the_files_and_runs_repeat_exactly() {
        let Some(font) = system_font() else {
            eprintln!("skipped: no usable .ttf/.otf font under {SYSTEM_FONTS} (install fonts-dejavu-core)");
            return;
        };
        let fonts = tempfile::tempdir().unwrap();
        std::fs::copy(&font.path, fonts.path().join("a.ttf")).unwrap();
        std::fs::copy(&font.path, fonts.path().join("b-copy.TTF")).unwrap();
        std::fs::write(fonts.path().join("broken.otf"), b"not a font").unwrap();
        std::fs::write(fonts.path().join("notes.txt"), b"ignored").unwrap();
        let out = tempfile::tempdir().unwrap();
        let generated = generate(out.path(), &[fonts.path().to_path_buf()]).unwrap();
        assert_eq!((generated.fonts, generated.font_files), (1, 3));
        assert_eq!(generated.images, 10 * variants().len());
        assert_eq!(variants().len(), 27);

        let entries = read_manifest(out.path()).unwrap();
        assert_eq!(entries.len(), generated.images);
        let mut listed = HashSet::new();
        for e in &entries {
            assert_eq!(e.file, file_name(e.digit, &e.font, e.variant));
            assert!(e.file.starts_with(&format!("{}/", e.digit)));
            assert_eq!(e.font, font.label);
            assert!(listed.insert(e.file.clone()), "{} listed twice", e.file);
            let img = image::open(out.path().join(&e.file)).unwrap().to_luma8();
            assert!(img.width() > 4 && img.height() > 4);
        }
        let mut on_disk = 0;
        for digit in 0..10 {
            for f in std::fs::read_dir(out.path().join(digit.to_string())).unwrap() {
                let name = format!("{digit}/{}", f.unwrap().file_name().to_string_lossy());
                assert!(listed.contains(&name), "{name} is not in the manifest");
                on_disk += 1;
            }
        }
        assert_eq!(on_disk, entries.len());
        let fonts_csv = std::fs::read_to_string(out.path().join("fonts.csv")).unwrap();
        assert_eq!(fonts_csv.lines().count(), 2);

        // A second run into the same directory writes the same bytes.
        let manifest = std::fs::read(out.path().join("manifest.csv")).unwrap();
        let first = std::fs::read(out.path().join(&entries[100].file)).unwrap();
        generate(out.path(), &[fonts.path().join("a.ttf")]).unwrap();
        assert_eq!(std::fs::read(out.path().join("manifest.csv")).unwrap(), manifest);
        assert_eq!(std::fs::read(out.path().join(&entries[100].file)).unwrap(), first);

        // A directory holding something else is refused.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("keep.txt"), b"mine").unwrap();
        let err = generate(other.path(), &[fonts.path().to_path_buf()]).unwrap_err();
        assert!(format!("{err:#}").contains("refusing"), "{err:#}");
    }

    #[test]
    fn dilation_grows_a_dot_into_a_disc_and_crop_finds_the_ink() {
        let mut dot = Coverage {
            width: 5,
            height: 5,
            values: vec![0.0; 25],
        };
        dot.values[12] = 0.5;
        let disc = dot.dilate(2);
        assert_eq!((disc.width, disc.height), (9, 9));
        assert_eq!(disc.values.iter().filter(|&&v| v == 0.5).count(), 13);
        assert_eq!(disc.values.iter().filter(|&&v| v != 0.0 && v != 0.5).count(), 0);
        let cropped = disc.cropped();
        assert_eq!((cropped.width, cropped.height), (5, 5));
        assert_eq!(dot.cropped().values, vec![0.5]);
        assert_eq!(dot.dilate(0), dot);

        let mut close = dot.clone();
        close.values[0] = 0.2; // 0.2 over 25 pixels: 0.008 per pixel
        assert!(same_digits(&[dot.clone()], &[close.clone()]));
        close.values[1] = 0.5;
        assert!(!same_digits(&[dot.clone()], &[close]));
        assert!(!same_digits(&[dot.clone()], &[disc]));
    }

    #[test]
    fn variants_and_names() {
        let all = variants();
        assert_eq!(all.iter().filter(|v| v.size == 16).count(), 3);
        assert!(all.iter().all(|v| v.weight <= 1 || v.size >= 48));
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
        let v = Variant {
            size: 48,
            weight: 1,
            slant: -12,
        };
        assert_eq!(file_name(7, "DejaVuSans_Bold", v), "7/DejaVuSans_Bold-48-w1-s-12.png");
        assert_eq!(alphanumeric("Noto Sans-Ünï 2"), "NotoSansn2");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }

    #[test]
    fn manifests_are_parsed_and_bad_ones_refused() {
        let text = format!("{MANIFEST_HEADER}\n7/F_R-48-w1-s-12.png,7,F_R,48,1,-12\n\n");
        let entries = parse_manifest(&text).unwrap();
        assert_eq!(
            entries,
            [Entry {
                file: "7/F_R-48-w1-s-12.png".into(),
                digit: 7,
                font: "F_R".into(),
                variant: Variant {
                    size: 48,
                    weight: 1,
                    slant: -12
                },
            }]
        );
        assert!(parse_manifest("file,digit\n").is_err());
        assert!(parse_manifest(MANIFEST_HEADER).is_err());
        let bad = format!("{MANIFEST_HEADER}\nx.png,11,F,1,0,0\n");
        assert!(format!("{:#}", parse_manifest(&bad).unwrap_err()).contains("line 2"));
        let short = format!("{MANIFEST_HEADER}\nx.png,1,F\n");
        assert!(parse_manifest(&short).is_err());
    }
}

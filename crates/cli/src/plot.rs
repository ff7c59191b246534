//! Pictures of what training did: `backprop plot` (loss and accuracy per
//! epoch) and `backprop eval --confusion/--gallery` (the confusion matrix as
//! a heatmap, the most confidently wrong test images), drawn with
//! `plotters` and written as SVG or PNG, chosen by the output's extension.
//!
//! **Text and its font.** Plotters' default `ttf` feature finds system fonts
//! through font-kit, which links fontconfig and freetype: a C toolchain and
//! system libraries at build time, and a picture that depends on which fonts
//! the machine happens to have. Instead, text is set by plotters' pure-Rust
//! `ab_glyph` feature from DejaVu Sans compiled into the binary (the
//! `dejavu` crate ships the unmodified TTF files as `&'static [u8]`; the
//! fonts' licence is the Bitstream Vera licence with DejaVu's changes in the
//! public domain, which allows redistribution, embedded or not). This costs
//! about 0.7 MB of binary and buys pictures that draw the same everywhere,
//! with nothing to install and no error path for a missing font file. (A
//! font read at run time from Debian's `fonts-dejavu-core` would fail on any
//! machine without that package, macOS included.) SVG files carry text as
//! `<text>` elements in the generic `sans-serif` family, so a viewer uses
//! its own fonts; the embedded one only measures text for the layout.
//!
//! PNGs are drawn into an RGB buffer and encoded by the `image` crate the
//! CLI already uses; every file is written atomically.

mod confusion;
mod curves;
mod gallery;
mod history;

pub(crate) use confusion::Confusion;
pub(crate) use gallery::{Gallery, Tile};

use crate::args::PlotArgs;
use crate::export::write_atomic;
use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The font family every picture uses (registered from the embedded font).
pub(crate) const FONT: &str = "sans-serif";

/// `backprop plot INPUT -o OUT`: loss and accuracy (or R²) per epoch, from a
/// checkpoint's history or a metrics JSONL file.
pub(crate) fn run(args: PlotArgs) -> Result<()> {
    let format = Format::of(&args.out, "-o")?;
    crate::paths::refuse_overwriting_inputs("-o", &args.out, std::slice::from_ref(&args.input))?;
    let history = history::load(&args.input)?;
    let picture = curves::Curves::new(history, (args.width, args.height))?;
    save(&picture, &args.out, format)
}

/// What a picture is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Scalable vector graphics, text as text.
    Svg,
    /// A PNG bitmap.
    Png,
}

impl Format {
    /// The format an output path asks for, by its extension; `flag` names
    /// the option in the error.
    pub(crate) fn of(path: &Path, flag: &str) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => bail!(
                "{flag} {}: unknown picture format; the file name must end in .svg or .png",
                path.display()
            ),
        }
    }
}

/// A picture that can be drawn on any plotters backend.
pub(crate) trait Picture {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the whole picture on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws `picture` and writes it to `out` (atomically) as `format`.
pub(crate) fn save(picture: &impl Picture, out: &Path, format: Format) -> Result<()> {
    register_font()?;
    let (w, h) = picture.size();
    let bytes = match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                root.fill(&WHITE).drawn()?;
                picture.draw(&root)?;
                root.present().drawn()?;
            }
            svg.into_bytes()
        }
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                root.fill(&WHITE).drawn()?;
                picture.draw(&root)?;
                root.present().drawn()?;
            }
            let image =
                image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| anyhow!("picture buffer of the wrong size"))?;
            use image::ImageEncoder;
            use image::codecs::png::{CompressionType, FilterType, PngEncoder};
            let mut png = Vec::new();
            PngEncoder::new_with_quality(&mut png, CompressionType::Best, FilterType::Adaptive)
                .write_image(&image, w, h, image::ExtendedColorType::Rgb8)
                .context("cannot encode the PNG")?;
            png
        }
    };
    write_atomic(out, &bytes)
}

/// Registers the embedded DejaVu Sans (regular and bold) as [`FONT`], once.
fn register_font() -> Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded DejaVu Sans font does not parse"))
    }
}

/// Plotters' drawing errors (generic over the backend) as `anyhow` errors.
pub(crate) trait Drawn<T> {
    /// The result, with a drawing error turned into an `anyhow` one.
    fn drawn(self) -> Result<T>;
}

impl<T, E: std::fmt::Debug> Drawn<T> for std::result::Result<T, E> {
    fn drawn(self) -> Result<T> {
        self.map_err(|e| anyhow!("cannot draw the picture: {e:?}"))
    }
}

/// A text style of [`FONT`] at `size` pixels.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// The width in pixels of `text` set in [`FONT`] at `size` pixels (an
/// estimate if the font cannot measure it).
pub(crate) fn text_width(text: &str, size: f64) -> u32 {
    let measured = register_font().ok().and_then(|()| {
        let font = FontDesc::new(FontFamily::Name(FONT), size, FontStyle::Normal);
        font.box_size(text).ok().map(|(w, _)| w)
    });
    measured.unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// `text` truncated to `max` characters, with an ellipsis.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let head: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("a/b.SVG"), "-o").unwrap(), Format::Svg);
        assert_eq!(Format::of(Path::new("c.png"), "-o").unwrap(), Format::Png);
        for bad in ["c.jpg", "c", "png"] {
            let err = Format::of(Path::new(bad), "--confusion").unwrap_err().to_string();
            assert!(err.contains("--confusion") && err.contains(".svg or .png"), "{err}");
        }
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}

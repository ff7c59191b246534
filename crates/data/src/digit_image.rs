//! Reading a picture of a digit from an image file (PNG, JPEG or PNM) and
//! bringing it into MNIST's form, with the image's size checked from its
//! header before any pixel is decoded.
//!
//! Decoding allocates the whole picture (up to 8 bytes a pixel for 16-bit
//! RGBA), and [`preprocess_digit`] one byte more a pixel; a small file can
//! declare an enormous picture (a 524 KB PNG of 22000x22000 pixels, a sparse
//! PGM), so the size is bounded by [`MAX_IMAGE_PIXELS`] and, because the
//! JPEG decoder reads the whole file before its header,
//! [`MAX_IMAGE_FILE_BYTES`].

use std::io;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{DataError, Result};
use crate::preprocess::{Preprocessed, preprocess_digit};

/// The most pixels (width times height) an image given to
/// [`load_digit_image`] may have: 50 million.
///
/// Why this value: it admits a full-resolution photograph from any current
/// phone (the 48 and 50 megapixel sensors included) and from most cameras,
/// so a picture of a handwritten digit as taken is never refused, while
/// bounding the memory a decode can take: the decoded picture (1 byte a
/// pixel for 8-bit grey, 3 for RGB, at most 8 for 16-bit RGBA), its
/// luminance (1) and [`preprocess_digit`]'s ink map (1), so at most 100 MB
/// for a grey picture and 450 MB for the widest pixel format, where a
/// 22000x22000 PNG once took 3.3 GB. The digit ends up 20 pixels tall, so
/// a larger picture gains nothing.
pub const MAX_IMAGE_PIXELS: u64 = 50_000_000;

/// The longest image file [`load_digit_image`] reads: 400 MB, eight bytes for
/// each of [`MAX_IMAGE_PIXELS`].
///
/// The JPEG decoder reads the whole file before it parses the header, so
/// without this bound the file's length, not its declared size, would set
/// the memory taken. Eight bytes a pixel is the largest uncompressed
/// encoding among the accepted formats (16-bit RGBA PAM), so no image
/// within [`MAX_IMAGE_PIXELS`] stored compactly is refused.
pub const MAX_IMAGE_FILE_BYTES: u64 = 8 * MAX_IMAGE_PIXELS;

/// Decodes the picture of one digit in the PNG, JPEG or PNM (PGM, PPM, PAM,
/// PBM) file at `path`, then brings it into MNIST's form with
/// [`preprocess_digit`].
///
/// The format is taken from the content (the file's name only where the
/// content says nothing). Colour is converted to luminance, and transparent
/// pixels are composited over white, as a viewer shows them. The file's
/// length and the picture's size (from its header) are checked before any
/// pixel is decoded.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be opened or read;
/// [`DataError::ImageFileTooLarge`] if it is longer than
/// [`MAX_IMAGE_FILE_BYTES`]; [`DataError::ImageTooLarge`] if its header
/// declares more than [`MAX_IMAGE_PIXELS`] pixels;
/// [`DataError::ImageDecode`] if it is not an image of a supported format or
/// is damaged; [`DataError::NoDigit`] if [`preprocess_digit`] finds no digit
/// in it. Every one names the file.
pub fn load_digit_image(path: &Path) -> Result<Preprocessed> {
    let (width, height, luma) = read_luma(path)?;
    preprocess_digit(width, height, &luma).map_err(|source| DataError::NoDigit {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// Decodes the picture of one digit held in memory (an image file's bytes,
/// such as an HTTP request body), then brings it into MNIST's form with
/// [`preprocess_digit`]: [`load_digit_image`] without the file.
///
/// The limits are the same: `bytes` may be at most [`MAX_IMAGE_FILE_BYTES`]
/// long and the picture, from its header, at most [`MAX_IMAGE_PIXELS`]
/// pixels. The format is taken from the content alone; `name` stands for
/// the file in error messages (e.g. "request body").
///
/// # Errors
/// As [`load_digit_image`], each naming `name`: [`DataError::ImageFileTooLarge`],
/// [`DataError::ImageTooLarge`], [`DataError::ImageDecode`] (also for
/// content of no recognised format), [`DataError::NoDigit`].
pub fn decode_digit_image(bytes: &[u8], name: &str) -> Result<Preprocessed> {
    let path = Path::new(name);
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(DataError::ImageFileTooLarge {
            path: path.to_path_buf(),
            bytes: bytes.len() as u64,
            max_bytes: MAX_IMAGE_FILE_BYTES,
        });
    }
    let reader = ImageReader::new(io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let (width, height, luma) = decode_luma(reader, path)?;
    preprocess_digit(width, height, &luma).map_err(|source| DataError::NoDigit {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

/// `(width, height, luminance)` of the image file at `path`, within the
/// limits.
fn read_luma(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let io_err = |source: io::Error| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io_err)?;
    if metadata.is_file() && metadata.len() > MAX_IMAGE_FILE_BYTES {
        return Err(DataError::ImageFileTooLarge {
            path: path.to_path_buf(),
            bytes: metadata.len(),
            max_bytes: MAX_IMAGE_FILE_BYTES,
        });
    }
    // `open` guesses the format from the name, `with_guessed_format` from the
    // content where it can; the default limits (512 MiB of allocations while
    // reading the header) stay in place.
    let reader = ImageReader::open(path)
        .map_err(io_err)?
        .with_guessed_format()
        .map_err(io_err)?;
    decode_luma(reader, path)
}

/// `(width, height, luminance)` of the image `reader` holds, its size checked
/// against [`MAX_IMAGE_PIXELS`] from the header before any pixel is decoded;
/// errors name `path`.
fn decode_luma<R: io::BufRead + io::Seek>(reader: ImageReader<R>, path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let decode_err = |source| DataError::ImageDecode {
        path: path.to_path_buf(),
        source,
    };
    // Reads the header only (JPEG: the whole file, bounded above).
    let decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > MAX_IMAGE_PIXELS {
        return Err(DataError::ImageTooLarge {
            path: path.to_path_buf(),
            width,
            height,
            pixels,
            max_pixels: MAX_IMAGE_PIXELS,
        });
    }
    let image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let luma = if image.color().has_alpha() {
        image
            .into_luma_alpha8()
            .pixels()
            .map(|p| {
                let [l, a] = p.0.map(u32::from);
                ((l * a + 255 * (255 - a) + 127) / 255) as u8
            })
            .collect()
    } else {
        image.into_luma8().into_raw()
    };
    Ok((width, height, luma))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;

    use image::{GrayAlphaImage, GrayImage, ImageFormat, LumaA};

    use super::*;

    /// A `w x h` white page with a black bar from `(x, y)`, 6 by 14 pixels.
    fn page(w: u32, h: u32, x: u32, y: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |i, j| {
            let ink = (x..x + 6).contains(&i) && (y..y + 14).contains(&j);
            image::Luma([if ink { 0 } else { 255 }])
        })
    }

    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        (dir, path)
    }

    /// A PNG of `width x height` 8-bit grey pixels: a valid signature and
    /// header, then a cut-short data chunk. Enough to read its size.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8; 4], data: &[u8]| {
            png.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            png.extend_from_slice(kind);
            png.extend_from_slice(data);
            png.extend_from_slice(&crc.sum().to_be_bytes());
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey, deflate, no interlace
        chunk(b"IHDR", &ihdr);
        // The start of a zlib stream, no more.
        png.extend_from_slice(&100u32.to_be_bytes());
        png.extend_from_slice(b"IDAT\x78\x01");
        png
    }

    #[test]
    fn a_png_is_decoded_and_preprocessed_as_its_pixels_are() {
        let img = page(40, 30, 17, 8);
        let (_dir, path) = temp_path("digit.png");
        img.save_with_format(&path, ImageFormat::Png).unwrap();
        let loaded = load_digit_image(&path).unwrap();
        let direct = preprocess_digit(40, 30, img.as_raw()).unwrap();
        assert_eq!(loaded, direct);
        assert!(loaded.inverted);
    }

    #[test]
    fn transparent_pixels_are_composited_over_white() {
        // Ink is opaque black; the rest is transparent black, which shows white.
        let img = GrayAlphaImage::from_fn(40, 30, |i, j| {
            let ink = (17..23).contains(&i) && (8..22).contains(&j);
            LumaA([0, if ink { 255 } else { 0 }])
        });
        let (_dir, path) = temp_path("alpha.png");
        img.save_with_format(&path, ImageFormat::Png).unwrap();
        let loaded = load_digit_image(&path).unwrap();
        assert_eq!(loaded, preprocess_digit(40, 30, page(40, 30, 17, 8).as_raw()).unwrap());
    }

    #[test]
    fn format_comes_from_content_not_name() {
        let img = page(40, 30, 5, 5);
        let (_dir, path) = temp_path("digit.jpg");
        // A PGM under a JPEG name.
        img.save_with_format(&path, ImageFormat::Pnm).unwrap();
        assert_eq!(
            load_digit_image(&path).unwrap(),
            preprocess_digit(40, 30, img.as_raw()).unwrap()
        );
    }

    #[test]
    fn a_huge_png_is_rejected_from_its_header() {
        let (_dir, path) = temp_path("huge.png");
        std::fs::write(&path, png_header_only(22000, 22000)).unwrap();
        let err = load_digit_image(&path).unwrap_err();
        match &err {
            DataError::ImageTooLarge {
                width: 22000,
                height: 22000,
                pixels: 484_000_000,
                max_pixels: MAX_IMAGE_PIXELS,
                ..
            } => {}
            other => panic!("expected ImageTooLarge, got {other:?}"),
        }
        let message = err.to_string();
        for part in ["huge.png", "22000x22000", "484000000", "50000000"] {
            assert!(message.contains(part), "{part} missing: {message}");
        }
        // The same header at the limit gets as far as decoding, which fails
        // on the cut-short data.
        std::fs::write(&path, png_header_only(10000, 5000)).unwrap();
        let err = load_digit_image(&path).unwrap_err();
        assert!(matches!(err, DataError::ImageDecode { .. }), "{err:?}");
    }

    #[test]
    fn bytes_decode_as_the_file_does_within_the_same_limits() {
        let img = page(40, 30, 17, 8);
        let (_dir, path) = temp_path("digit.png");
        img.save_with_format(&path, ImageFormat::Png).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            decode_digit_image(&bytes, "body").unwrap(),
            load_digit_image(&path).unwrap()
        );

        let err = decode_digit_image(&png_header_only(22000, 22000), "body").unwrap_err();
        assert!(matches!(err, DataError::ImageTooLarge { width: 22000, .. }), "{err:?}");
        assert!(err.to_string().contains("body"), "{err}");
        let err = decode_digit_image(b"not an image", "body").unwrap_err();
        assert!(matches!(err, DataError::ImageDecode { .. }), "{err:?}");
        let err = decode_digit_image(b"", "body").unwrap_err();
        assert!(matches!(err, DataError::ImageDecode { .. }), "{err:?}");
        let mut blank = Vec::new();
        GrayImage::from_pixel(30, 20, image::Luma([0]))
            .write_to(&mut io::Cursor::new(&mut blank), ImageFormat::Png)
            .unwrap();
        let err = decode_digit_image(&blank, "body").unwrap_err();
        assert!(matches!(err, DataError::NoDigit { .. }), "{err:?}");
    }

    #[test]
    fn a_huge_pgm_is_rejected_from_its_header() {
        let (_dir, path) = temp_path("huge.pgm");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"P5\n20000 20000\n255\n").unwrap();
        drop(file);
        let err = load_digit_image(&path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ImageTooLarge {
                    width: 20000,
                    height: 20000,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn an_overlong_file_is_rejected_before_reading() {
        let (_dir, path) = temp_path("long.jpg");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_IMAGE_FILE_BYTES + 1).unwrap();
        let err = load_digit_image(&path).unwrap_err();
        assert!(
            matches!(err, DataError::ImageFileTooLarge { bytes, .. } if bytes == MAX_IMAGE_FILE_BYTES + 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("long.jpg"), "{err}");
    }

    #[test]
    fn unreadable_undecodable_and_blank_files_are_named() {
        let (dir, path) = temp_path("absent.png");
        let err = load_digit_image(&path).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("absent.png"), "{err}");

        let text = dir.path().join("notes.png");
        std::fs::write(&text, b"not an image at all").unwrap();
        let err = load_digit_image(&text).unwrap_err();
        assert!(matches!(err, DataError::ImageDecode { .. }), "{err:?}");
        assert!(err.to_string().contains("notes.png"), "{err}");

        let blank = dir.path().join("blank.png");
        GrayImage::from_pixel(30, 20, image::Luma([255]))
            .save_with_format(&blank, ImageFormat::Png)
            .unwrap();
        let err = load_digit_image(&blank).unwrap_err();
        match &err {
            DataError::NoDigit { source, .. } => {
                assert!(matches!(**source, DataError::BlankImage { .. }), "{source:?}");
            }
            other => panic!("expected NoDigit, got {other:?}"),
        }
        assert_eq!(err.to_string(), format!("{}: cannot find a digit", blank.display()));
    }
}

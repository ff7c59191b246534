//! `backprop export MODEL [--format npz|safetensors|onnx] [--layout native|torch] OUT`:
//! a checkpoint's weights for other tools, as tensors `layers.{i}.weight` of
//! shape `(n_in, n_out)` and `layers.{i}.bias` of shape `(n_out,)`, f32
//! little-endian, so that `x @ W + b` is layer `i`; with `--layout torch`, as
//! the `state_dict` of a PyTorch `nn.Sequential(Linear, activation, Linear,
//! ...)`: `{2i}.weight` of shape `(n_out, n_in)` and `{2i}.bias`, so that
//! `x @ W.T + b` is layer `i`. `--format onnx` writes the whole model as an
//! ONNX graph ([`crate::onnx`]). Without `--format`, OUT's extension names
//! the format. A batch-normalised layer is exported with its normalisation
//! folded in (evaluation mode: running averages, `gamma` and `beta`
//! absorbed into `W` and `b`), so every format holds plain dense layers.
//!
//! `.npz` is written by hand: a zip archive of stored (uncompressed) entries
//! `NAME.npy`, each a `.npy` version 1.0 file (magic, a Python-dict header
//! padded to a 64-byte boundary, the raw data). The `zip` crate writes the
//! archive; the header is one format string, which is less than the
//! `ndarray-npy` crate would add (it pulls in a Python-literal parser).
//! `.safetensors` is written by the official `safetensors` crate.

use crate::args::{ExportArgs, ExportFormat, ExportLayout};
use anyhow::{Context, Result, bail};
use backprop_nn::Checkpoint;
use backprop_nn::atomic::Special;
use std::io::{Cursor, Write};
use std::path::Path;

/// One named tensor of f32 values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

impl Tensor {
    fn le_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

pub(crate) fn run(args: ExportArgs) -> Result<()> {
    let format = match args.format {
        Some(format) => format,
        None => format_from_extension(&args.out)?,
    };
    if format == ExportFormat::Onnx && args.layout != ExportLayout::Native {
        bail!("--layout applies to npz and safetensors; an ONNX file holds the whole graph");
    }
    crate::paths::refuse_overwriting_inputs("OUT", &args.out, std::slice::from_ref(&args.model))?;
    let mut checkpoint = Checkpoint::load(&args.model)?;
    if !checkpoint.batch_norm.is_empty() {
        checkpoint = checkpoint.folded()?;
        eprintln!("batch normalisation folded into the layers before it (evaluation mode)");
    }
    let tensors = tensors(&checkpoint, args.layout);
    let bytes = match format {
        ExportFormat::Npz => npz_bytes(&tensors)?,
        ExportFormat::Safetensors => safetensors_bytes(&tensors)?,
        ExportFormat::Onnx => crate::onnx::model_bytes(&checkpoint)?,
    };
    write_atomic(&args.out, &bytes)?;
    let what = match format {
        ExportFormat::Onnx => "an ONNX model".to_owned(),
        _ => format!("{} tensors", tensors.len()),
    };
    eprintln!(
        "wrote {what} ({} parameters) to {}",
        checkpoint.n_parameters(),
        args.out.display()
    );
    Ok(())
}

/// The format OUT's extension names (`.npz`, `.safetensors`, `.onnx`, in any
/// case).
pub(crate) fn format_from_extension(out: &Path) -> Result<ExportFormat> {
    let extension = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    Ok(match extension.as_deref() {
        Some("npz") => ExportFormat::Npz,
        Some("safetensors") => ExportFormat::Safetensors,
        Some("onnx") => ExportFormat::Onnx,
        _ => bail!(
            "cannot tell the format from the name {}: give --format npz, safetensors or onnx \
             (or name the file .npz, .safetensors or .onnx)",
            out.display()
        ),
    })
}

/// The checkpoint's parameters as named tensors in `layout`, weights before
/// biases, layer by layer.
pub(crate) fn tensors(checkpoint: &Checkpoint, layout: ExportLayout) -> Vec<Tensor> {
    checkpoint
        .layers
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let (n_in, n_out) = (p.shape.0 as usize, p.shape.1 as usize);
            let (weight, shape, prefix) = match layout {
                ExportLayout::Native => (p.weight.clone(), vec![n_in, n_out], format!("layers.{i}")),
                ExportLayout::Torch => (
                    transpose(&p.weight, n_in, n_out),
                    vec![n_out, n_in],
                    format!("{}", 2 * i),
                ),
            };
            [
                Tensor {
                    name: format!("{prefix}.weight"),
                    shape,
                    data: weight,
                },
                Tensor {
                    name: format!("{prefix}.bias"),
                    shape: vec![p.bias.len()],
                    data: p.bias.clone(),
                },
            ]
        })
        .collect()
}

/// The `(cols, rows)` transpose of a row-major `rows x cols` matrix.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| m[i * cols + j]))
        .collect()
}

/// The `.npy` version 1.0 encoding of `tensor`: magic `\x93NUMPY`, version
/// 1.0, the header length (u16 LE), a Python dict literal padded with spaces
/// and ending in a newline so the data starts on a 64-byte boundary, then the
/// f32 values little-endian in C order.
pub(crate) fn npy_bytes(tensor: &Tensor) -> Vec<u8> {
    let shape = match tensor.shape.as_slice() {
        [n] => format!("({n},)"),
        dims => format!("({})", dims.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    const PREAMBLE: usize = 6 + 2 + 2;
    let unpadded = PREAMBLE + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(PREAMBLE + header.len() + 4 * tensor.data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&tensor.le_bytes());
    out
}

/// An `.npz` archive: one stored entry `NAME.npy` per tensor.
pub(crate) fn npz_bytes(tensors: &[Tensor]) -> Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(tensors.iter().any(|t| 4 * t.data.len() >= u32::MAX as usize / 2));
    for tensor in tensors {
        zip.start_file(format!("{}.npy", tensor.name), options)
            .context("cannot write the .npz archive")?;
        zip.write_all(&npy_bytes(tensor))
            .context("cannot write the .npz archive")?;
    }
    Ok(zip.finish().context("cannot write the .npz archive")?.into_inner())
}

/// A `.safetensors` file with every tensor as F32.
pub(crate) fn safetensors_bytes(tensors: &[Tensor]) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes: Vec<Vec<u8>> = tensors.iter().map(Tensor::le_bytes).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| Ok((t.name.clone(), TensorView::new(Dtype::F32, t.shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()
        .context("cannot lay out the safetensors tensors")?;
    safetensors::serialize(views, None).context("cannot write the safetensors file")
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, flushed and synced, then renamed over `path`, so a failure
/// leaves any previous file intact.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    backprop_nn::atomic::write_atomic(path, Special::WriteDirectly, |f| f.write_all(bytes), None)
        .map_err(|(at, e)| anyhow::Error::new(e).context(format!("cannot write {}", at.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample() -> Vec<Tensor> {
        let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        vec![
            Tensor {
                name: "layers.0.weight".into(),
                shape: vec![4, 3],
                data: w,
            },
            Tensor {
                name: "layers.0.bias".into(),
                shape: vec![3],
                data: vec![f32::MIN_POSITIVE, -0.0, 1e30],
            },
        ]
    }

    /// Parses a `.npy` v1.0 file of `<f4` data: (shape, data bytes).
    fn parse_npy(bytes: &[u8]) -> (Vec<usize>, Vec<u8>) {
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + len) % 64, 0, "data must start 64-byte aligned");
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.ends_with('\n'));
        assert!(
            header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': ("),
            "{header}"
        );
        let dims = &header[header.find("'shape': (").unwrap() + 10..header.find(')').unwrap()];
        let shape = dims
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().unwrap())
            .collect();
        (shape, bytes[10 + len..].to_vec())
    }

    #[test]
    fn npz_round_trips_names_shapes_and_bytes() {
        let tensors = sample();
        let bytes = npz_bytes(&tensors).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 2);
        for t in &tensors {
            let mut entry = archive.by_name(&format!("{}.npy", t.name)).unwrap();
            assert_eq!(entry.compression(), zip::CompressionMethod::Stored);
            let mut npy = Vec::new();
            entry.read_to_end(&mut npy).unwrap();
            let (shape, data) = parse_npy(&npy);
            assert_eq!(shape, t.shape);
            assert_eq!(data, t.le_bytes());
        }
    }

    #[test]
    fn npy_header_spells_shapes_as_python_tuples() {
        let t = &sample()[1];
        let npy = npy_bytes(t);
        // As NumPy writes it: 128 bytes of preamble and header, then data.
        let header = std::str::from_utf8(&npy[10..128]).unwrap();
        assert!(header.contains("'shape': (3,), }"), "{header}");
        assert!(header.ends_with(" \n"));
        assert_eq!(npy.len(), 128 + 12);
        let npy = npy_bytes(&sample()[0]);
        assert!(
            std::str::from_utf8(&npy[10..128])
                .unwrap()
                .contains("'shape': (4, 3), }")
        );
    }

    #[test]
    fn safetensors_round_trips_names_shapes_and_bytes() {
        let tensors = sample();
        let bytes = safetensors_bytes(&tensors).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(names, ["layers.0.bias", "layers.0.weight"]);
        for t in &tensors {
            let view = st.tensor(&t.name).unwrap();
            assert_eq!(view.dtype(), safetensors::Dtype::F32);
            assert_eq!(view.shape(), t.shape.as_slice());
            assert_eq!(view.data(), t.le_bytes().as_slice());
        }
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // [[1, 2, 3], [4, 5, 6]] -> [[1, 4], [2, 5], [3, 6]]
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        assert_eq!(transpose(&[], 0, 3), Vec::<f32>::new());
    }

    #[test]
    fn the_extension_names_the_format() {
        let guess = |p: &str| format_from_extension(Path::new(p));
        assert_eq!(guess("m.npz").unwrap(), ExportFormat::Npz);
        assert_eq!(guess("dir.v2/m.SafeTensors").unwrap(), ExportFormat::Safetensors);
        assert_eq!(guess("m.onnx").unwrap(), ExportFormat::Onnx);
        for bad in ["m", "m.pt", "npz", ".onnx", "m.onnx.part"] {
            let err = guess(bad).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("--format"), "{bad}: {err}");
        }
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npz");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("missing/w.npz"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }
}

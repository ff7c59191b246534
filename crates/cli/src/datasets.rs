//! Data sets by name (`--dataset mnist|fashion-mnist`): where they live,
//! and fetching them on first use with the same verified multi-source
//! download as `cargo xtask download`.
//!
//! The data directory is `--data-dir`, else `$BACKPROP_DATA_DIR`, else the
//! workspace's `datasets/` when run inside the backprop workspace, else the
//! platform's data directory (`~/.local/share/backprop` on Linux); a data
//! set lives in `<data dir>/<name>/`.

use crate::args::DatasetArgs;
use anyhow::{Context, Result};
use backprop_data::{DataError, Event, KnownDataset, MIRROR_ENV, Options, Source, TrainTest};
use std::path::{Path, PathBuf};

/// The environment variable naming the data directory.
pub(crate) const DATA_DIR_ENV: &str = "BACKPROP_DATA_DIR";

/// The IDX directory a command reads: `--data` as given, or the directory
/// of `--dataset`, downloaded first when it is not there yet.
pub(crate) fn resolve(named: &DatasetArgs, data: &Path) -> Result<PathBuf> {
    let Some(dataset) = named.dataset else {
        return Ok(data.to_path_buf());
    };
    let root = data_root(named.data_dir.as_deref())?;
    let dir = root.join(dataset.name());
    fetch(dataset, &dir)?;
    Ok(dir)
}

/// The data directory: `--data-dir`, `$BACKPROP_DATA_DIR`, the workspace's
/// `datasets/`, or the platform's data directory, in that order.
fn data_root(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    if let Some(root) = workspace_root(&cwd) {
        return Ok(root.join("datasets"));
    }
    directories::ProjectDirs::from("", "", "backprop")
        .map(|d| d.data_dir().to_path_buf())
        .context("no home directory to keep data sets in: give --data-dir DIR or set BACKPROP_DATA_DIR")
}

/// The backprop workspace holding `dir`, if any: the nearest directory at or
/// above it with a `Cargo.toml` declaring a `[workspace]` and a `crates/`
/// folder.
fn workspace_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            d.join("crates").is_dir()
                && std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
}

/// Makes sure `dir` holds `dataset`'s four verified files: files already
/// there and valid are kept, others fetched from `$BACKPROP_DATA_MIRROR`,
/// the system directories, then the public mirrors. Progress goes to stderr.
fn fetch(dataset: KnownDataset, dir: &Path) -> Result<()> {
    let env = std::env::var(MIRROR_ENV).ok().filter(|s| !s.trim().is_empty());
    let first = env.as_deref().map(|s| match Source::parse(s) {
        Source::Dir(d) => Source::Dir(std::path::absolute(&d).unwrap_or(d)),
        url => url,
    });
    let spec = dataset.spec();
    let sources = spec.sources(first);
    backprop_data::download(&spec, dir, &sources, &Options::default(), |event| match event {
        Event::Start {
            file, origin, attempt, ..
        } => {
            let again = if attempt > 1 {
                format!(" (try {attempt})")
            } else {
                String::new()
            };
            eprintln!("{dataset}: fetching {file} from {origin}{again}");
        }
        Event::Failed { file, failure, .. } => eprintln!("{dataset}: {file}: {failure}"),
        Event::Installed { file, path, .. } => {
            eprintln!("{dataset}: {file} verified, saved as {}", path.display());
        }
        Event::Present { .. } | Event::Bytes { .. } => {}
    })
    .with_context(|| format!("cannot download {dataset} into {}", dir.display()))?;
    Ok(())
}

/// Loads the IDX data in `dir`; when it is missing, the error says how to
/// fetch it.
pub(crate) fn load_idx(dir: &Path) -> Result<TrainTest> {
    backprop_data::load_dir(dir).map_err(|e| {
        let missing = matches!(e, DataError::MissingDirectory { .. } | DataError::MissingFile { .. });
        let err = anyhow::Error::new(e);
        if !missing {
            return err;
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str()?.parse::<KnownDataset>().ok())
            .map_or("mnist|fashion-mnist", KnownDataset::name);
        err.context(format!(
            "no data in {}: give --dataset {name} instead of --data to download it (--data-dir DIR chooses \
             where), or fetch it with `cargo xtask download --dataset {name}` in the workspace",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_found_from_below_and_not_from_outside() {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("Cargo.toml"), "[workspace]\nmembers = [\"crates/*\"]\n").unwrap();
        std::fs::create_dir_all(ws.path().join("crates/cli/src")).unwrap();
        // A member's own Cargo.toml is not the workspace.
        std::fs::write(ws.path().join("crates/cli/Cargo.toml"), "[package]\n").unwrap();
        let deep = ws.path().join("crates/cli/src");
        assert_eq!(workspace_root(&deep).as_deref(), Some(ws.path()));
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(workspace_root(outside.path()), None);
        assert_eq!(data_root(Some(Path::new("/x"))).unwrap(), Path::new("/x"));
    }
}

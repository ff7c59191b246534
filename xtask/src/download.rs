//! `cargo xtask download`: a thin caller of `backprop_data::download`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backprop_data::{KnownDataset, MIRROR_ENV, Options, Source};
use clap::Args;

use crate::progress::Reporter;
use crate::{DatasetArg, project_root};

#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    /// Which data set.
    #[arg(long, value_enum, default_value = "mnist")]
    pub(crate) dataset: DatasetArg,

    /// Try this source first: a directory holding the four files (gzipped or
    /// raw, either spelling) or the http(s) URL of a mirror. Defaults to
    /// $BACKPROP_DATA_MIRROR. A relative directory is taken from the current
    /// directory, or failing that from the workspace root.
    #[arg(long, value_name = "SOURCE")]
    pub(crate) from: Option<String>,
}

pub(crate) fn run(args: &DownloadArgs) -> Result<()> {
    let dir = ensure(args.dataset.into(), args.from.as_deref())?;
    println!("{}: ready in {}", KnownDataset::from(args.dataset), dir.display());
    Ok(())
}

/// Fills `datasets/<name>/` under the workspace root with verified data,
/// trying `from` (or `$BACKPROP_DATA_MIRROR`) first, and returns that
/// directory.
pub(crate) fn ensure(dataset: KnownDataset, from: Option<&str>) -> Result<PathBuf> {
    let root = project_root();
    let dest = root.join("datasets").join(dataset.name());
    let env = std::env::var(MIRROR_ENV).ok().filter(|s| !s.trim().is_empty());
    let first = from.or(env.as_deref()).map(|s| user_source(s, &root));
    let sources = dataset.spec().sources(first);
    let mut reporter = Reporter::new();
    backprop_data::download(&dataset.spec(), &dest, &sources, &Options::default(), |event| {
        reporter.event(event)
    })
    .with_context(|| format!("downloading {dataset}"))?;
    Ok(dest)
}

/// The source the user named; a relative directory is taken from the
/// current directory if it exists there, otherwise from the workspace root.
fn user_source(s: &str, root: &Path) -> Source {
    match Source::parse(s) {
        Source::Dir(dir) if dir.is_relative() => {
            let here = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
            let from_root = root.join(&dir);
            let chosen = if !here.is_dir() && from_root.is_dir() {
                from_root
            } else {
                here
            };
            // Without `..` in messages where the directory exists.
            Source::Dir(std::fs::canonicalize(&chosen).unwrap_or(chosen))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sources_fall_back_to_the_workspace_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("only-under-root-3f9a")).unwrap();
        assert_eq!(
            user_source("only-under-root-3f9a", root.path()),
            Source::Dir(root.path().join("only-under-root-3f9a"))
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            user_source("nowhere-3f9a", root.path()),
            Source::Dir(cwd.join("nowhere-3f9a"))
        );
        assert_eq!(user_source("/abs", root.path()), Source::Dir("/abs".into()));
        assert_eq!(
            user_source("https://m/x/", root.path()),
            Source::Url("https://m/x/".into())
        );
    }
}

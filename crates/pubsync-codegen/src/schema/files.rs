//! One definition file read into memory, and the discovery and reading of the definition
//! files of the workspace.

use std::path::Path;

use crate::error::Error;

/// One definition file, read into memory.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path relative to the workspace root, with `/` separators.
    pub path: String,
    /// The crate directory under `crates/` the file belongs to, if any.
    pub crate_name: Option<String>,
    /// The file contents.
    pub text: String,
}

impl SourceFile {
    /// A file at `path` (relative, `/`-separated); the crate is taken from `crates/<crate>/…`.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        let path = path.into();
        let crate_name = path
            .strip_prefix("crates/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        Self {
            path,
            crate_name,
            text: text.into(),
        }
    }
}

/// Reads every file matching `crates/*/<folder>/*<suffix>` under `root`, in sorted path order.
pub fn read_definition_files(
    root: &Path,
    folder: &str,
    suffix: &str,
) -> Result<Vec<SourceFile>, Error> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let crates_dir = root.join("crates");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(&crates_dir).map_err(io_error(&crates_dir))? {
        let entry = entry.map_err(io_error(&crates_dir))?;
        let dir = entry.path().join(folder);
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let file = file.map_err(io_error(&dir))?;
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix) {
                let crate_name = entry.file_name().to_string_lossy().into_owned();
                paths.push(format!("crates/{crate_name}/{folder}/{name}"));
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|relative| {
            let full = root.join(&relative);
            let text = std::fs::read_to_string(&full).map_err(io_error(&full))?;
            Ok(SourceFile::new(relative, text))
        })
        .collect()
}

//! One definition file read into memory, and the discovery and reading of the definition
//! files of the workspace.

use std::path::Path;

use crate::error::Error;
use crate::workspace::Package;

/// One definition file, read into memory.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path relative to the workspace root, with `/` separators.
    pub path: String,
    /// The package the file belongs to, if any.
    pub package: Option<String>,
    /// The file contents.
    pub text: String,
}

impl SourceFile {
    /// A file at `path` (relative, `/`-separated); the package is taken from
    /// `crates/<package>/…`, as in a workspace whose crate directories are named after them.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        let path = path.into();
        let package = path
            .strip_prefix("crates/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        Self {
            path,
            package,
            text: text.into(),
        }
    }
}

/// Reads every file matching `<package>/<folder>/*<suffix>` of every package, packages in the
/// order given (the merge order), files of a package in sorted name order.
pub fn read_definition_files(
    packages: &[Package],
    folder: &str,
    suffix: &str,
) -> Result<Vec<SourceFile>, Error> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let mut files = Vec::new();
    for package in packages {
        let dir = package.dir.join(folder);
        if !dir.is_dir() {
            continue;
        }
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let name = entry.map_err(io_error(&dir))?.file_name();
            let name = name.to_string_lossy().into_owned();
            if name.ends_with(suffix) {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            let full = dir.join(&name);
            let text = std::fs::read_to_string(&full).map_err(io_error(&full))?;
            files.push(SourceFile {
                path: package.display_path(&format!("{folder}/{name}")),
                package: Some(package.name.clone()),
                text,
            });
        }
    }
    Ok(files)
}

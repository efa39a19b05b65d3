//! Errors: a broken definition names its file, line and column.

use std::fmt;
use std::path::PathBuf;

/// A place in a definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, relative to the workspace root.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Location {
    /// An error at this place.
    pub fn error(&self, message: impl Into<String>) -> DefinitionError {
        DefinitionError {
            path: self.path.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// What is wrong with a definition, and where; displayed as `path:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct DefinitionError {
    /// The file, relative to the workspace root.
    pub path: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong, lowercase, without a trailing period.
    pub message: String,
}

/// Every error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// One or more definitions are broken (or changed in a way codegen cannot migrate).
    #[error("{}", ErrorList(.0))]
    Definitions(Vec<DefinitionError>),
    /// A definition file or generated file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The workspace's packages could not be found out (`cargo metadata`).
    #[error("{0}")]
    Metadata(String),
    /// A generated file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// rustfmt could not format a generated file.
    #[error("cannot format {path}: {reason}")]
    Format {
        /// The generated file, relative to the root.
        path: String,
        /// What rustfmt said.
        reason: String,
    },
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
}

struct ErrorList<'a>(&'a [DefinitionError]);

impl fmt::Display for ErrorList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects definition errors so that one run reports all of them.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) errors: Vec<DefinitionError>,
}

impl Diagnostics {
    pub(crate) fn push(&mut self, error: DefinitionError) {
        self.errors.push(error);
    }

    pub(crate) fn at(&mut self, location: &Location, message: impl Into<String>) {
        self.errors.push(location.error(message));
    }

    pub(crate) fn into_result<T>(self, value: T) -> Result<T, Error> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(Error::Definitions(self.errors))
        }
    }
}

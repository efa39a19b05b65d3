//! pubsync-codegen reads Spryker-style `*.schema.xml` and `*.transfer.xml` definitions and
//! generates from them what the rest of the workspace commits:
//!
//! - migrations per database (`migrations/<dialect>/<version>_<name>/{up,down}.sql`) with
//!   the capture triggers that write every change of an `event` table to the outbox, and a
//!   snapshot of the schema as migrated (`migrations/schema.snapshot.xml`) from which the
//!   next migration is computed;
//! - `diesel::table!` definitions and synchronization definitions per crate
//!   (`crates/<crate>/src/generated/{tables,synchronization}.rs`);
//! - transfer structs (`crates/pubsync-shared/src/transfer/generated.rs`).
//!
//! It does no formatting of Rust (xtask pipes the output through rustfmt), writes no files
//! and never touches a database: [`generate`] returns contents, `cargo xtask codegen` writes
//! or checks them.
//!
//! Every broken definition is reported as `path:line:column: message`.
#![warn(unreachable_pub)]

pub mod error;
pub mod migration;
pub mod model;
pub mod rust;
pub mod schema;
pub mod snapshot;
pub mod sql;
pub mod transfer;

use std::path::Path;

pub use error::{DefinitionError, Error, Location};
pub use migration::migration_version;
pub use snapshot::SNAPSHOT_PATH;

use crate::model::Model;
use crate::schema::{parse_schemas, read_definition_files};

/// Where the transfer structs go, relative to the workspace root.
pub const TRANSFERS_PATH: &str = "crates/pubsync-shared/src/transfer/generated.rs";

/// One file to write, relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The path, `/`-separated, relative to the workspace root.
    pub path: String,
    /// The contents (Rust files are not formatted yet).
    pub contents: String,
    /// Whether the file is Rust, to be formatted before writing.
    pub is_rust: bool,
}

/// A migration to write because the definitions differ from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMigration {
    /// The directory name, `<version>_<name>`.
    pub directory: String,
    /// `up.sql` and `down.sql` for every dialect.
    pub files: Vec<GeneratedFile>,
}

/// What [`generate`] produces.
#[derive(Debug, Clone)]
pub struct Output {
    /// The files regenerated on every run (Rust sources).
    pub files: Vec<GeneratedFile>,
    /// The snapshot of the current model; written together with a new migration, or alone
    /// after a manual migration.
    pub snapshot: GeneratedFile,
    /// The migration to write, when the model differs from the snapshot.
    pub migration: Option<NewMigration>,
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The version of a new migration, `YYYYMMDDHHMMSS` (see [`migration_version`]).
    pub version: String,
    /// Take the model as migrated (after a manual migration): no migration is planned and
    /// changes codegen cannot migrate are not errors.
    pub update_snapshot: bool,
}

/// Reads every definition under `root` (the workspace) and generates every output.
pub fn generate(root: &Path, options: &Options) -> Result<Output, Error> {
    let schema_files = read_definition_files(root, "schema", ".schema.xml")?;
    let transfer_files = read_definition_files(root, "transfer", ".transfer.xml")?;
    let model = parse_schemas(&schema_files);
    let transfers = transfer::parse_transfers(&transfer_files);
    let (model, transfers) = match (model, transfers) {
        (Ok(model), Ok(transfers)) => (model, transfers),
        (model, transfers) => {
            let mut errors = Vec::new();
            for error in [model.err(), transfers.err()].into_iter().flatten() {
                match error {
                    Error::Definitions(list) => errors.extend(list),
                    other => return Err(other),
                }
            }
            return Err(Error::Definitions(errors));
        }
    };
    let schema_paths: Vec<String> = schema_files.iter().map(|f| f.path.clone()).collect();
    let transfer_paths: Vec<String> = transfer_files.iter().map(|f| f.path.clone()).collect();

    let mut files = rust_files(&model);
    files.push(GeneratedFile {
        path: TRANSFERS_PATH.into(),
        contents: transfer::generate_transfers(&transfers, &transfer_paths),
        is_rust: true,
    });
    let snapshot = GeneratedFile {
        path: SNAPSHOT_PATH.into(),
        contents: snapshot::write_snapshot(&model),
        is_rust: false,
    };
    let migration = if options.update_snapshot {
        None
    } else {
        let previous = read_snapshot(root)?;
        new_migration(previous.as_ref(), &model, &options.version, &schema_paths)?
    };
    Ok(Output {
        files,
        snapshot,
        migration,
    })
}

fn read_snapshot(root: &Path) -> Result<Option<Model>, Error> {
    let path = root.join(SNAPSHOT_PATH);
    match std::fs::read_to_string(&path) {
        Ok(text) => snapshot::read_snapshot(&text).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// The migration from `previous` (the snapshot, `None` before the first migration) to
/// `model`, if anything changed.
pub fn new_migration(
    previous: Option<&Model>,
    model: &Model,
    version: &str,
    inputs: &[String],
) -> Result<Option<NewMigration>, Error> {
    let empty = Model::default();
    let plan = migration::plan(previous.unwrap_or(&empty), model).map_err(Error::Definitions)?;
    if plan.is_empty() {
        return Ok(None);
    }
    let directory = format!("{version}_{}", plan.name(previous.is_none()));
    let mut files = Vec::new();
    for dialect in &plan.dialects {
        for (file, statements) in [("up.sql", &dialect.up), ("down.sql", &dialect.down)] {
            let mut contents = String::from(
                "-- Generated by `cargo xtask codegen` from the schema files below and\n\
                 -- migrations/schema.snapshot.xml; do not edit.\n",
            );
            for input in inputs {
                contents.push_str(&format!("--   {input}\n"));
            }
            for statement in statements.iter() {
                contents.push('\n');
                contents.push_str(statement);
                contents.push('\n');
            }
            files.push(GeneratedFile {
                path: format!("migrations/{}/{directory}/{file}", dialect.dialect.name()),
                contents,
                is_rust: false,
            });
        }
    }
    Ok(Some(NewMigration { directory, files }))
}

/// `tables.rs` for every crate with schema files, `synchronization.rs` for every crate with
/// synchronized tables.
fn rust_files(model: &Model) -> Vec<GeneratedFile> {
    let mut crates: Vec<&str> = Vec::new();
    for table in &model.tables {
        if let Some(name) = &table.crate_name
            && !crates.contains(&name.as_str())
        {
            crates.push(name);
        }
    }
    crates.sort_unstable();
    let mut files = Vec::new();
    for crate_name in crates {
        let tables: Vec<&model::Table> = model
            .tables
            .iter()
            .filter(|table| table.crate_name.as_deref() == Some(crate_name))
            .collect();
        let mut inputs: Vec<String> = tables
            .iter()
            .flat_map(|table| table.sources.iter().cloned())
            .collect();
        inputs.sort();
        inputs.dedup();
        files.push(GeneratedFile {
            path: format!("crates/{crate_name}/src/generated/tables.rs"),
            contents: rust::generate_tables(&tables, &inputs),
            is_rust: true,
        });
        if tables.iter().any(|table| table.synchronization.is_some()) {
            files.push(GeneratedFile {
                path: format!("crates/{crate_name}/src/generated/synchronization.rs"),
                contents: rust::generate_synchronization(&tables, &inputs),
                is_rust: true,
            });
        }
    }
    files
}

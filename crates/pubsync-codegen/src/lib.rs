//! pubsync-codegen reads Spryker-style `*.schema.xml` and `*.transfer.xml` definitions and
//! generates from them what a workspace commits. It runs on pubsync's own workspace and on a
//! shop's alike: every package of the dependency graph with a `schema/` or `transfer/` folder
//! is read, in the original's merge order ([`workspace`]), and each workspace member gets the
//! code of the tables it defines, or of those it overrides when their definer is a dependency:
//!
//! - `src/generated/tables.rs`: `diesel::table!` definitions;
//! - `src/generated/synchronization.rs`: the synchronization definitions of its storage tables;
//! - `src/generated/source_tables.rs`: the shop's tables it reads or watches, which `setup`
//!   checks (or creates when missing) and installs capture triggers on; they are never migrated;
//! - `migrations/<dialect>/<version>_<name>/{up,down}.sql` with the tables pubsync owns
//!   (storage tables and their sync-intent triggers), a snapshot of them as migrated
//!   (`migrations/schema.snapshot.xml`) from which the next migration is computed, and
//!   `src/generated/migrations.rs` embedding them. pubsync's framework tables (outbox, queue)
//!   migrate in the workspace's own `migrations/`;
//! - the transfer structs of every transfer a member declares, merged over every package, into
//!   one file of the workspace's shared transfer crate.
//!
//! It does no formatting of Rust ([`cli`] pipes the output through rustfmt), and [`generate`]
//! writes no files and never touches a database: it returns contents, [`cli::run`] writes or
//! checks them.
//!
//! Every broken definition is reported as `path:line:column: message`.
#![warn(unreachable_pub)]

pub mod cli;
pub mod error;
pub mod migration;
pub mod model;
pub mod rust;
pub mod schema;
pub mod snapshot;
pub mod sql;
pub mod transfer;
pub mod workspace;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use error::{DefinitionError, Error, Location};
pub use migration::migration_version;
pub use workspace::{Package, discover};

use crate::model::{Model, Table};
use crate::schema::{SourceFile, parse_schemas, read_definition_files};
use crate::sql::Dialect;
use crate::transfer::{PropertyType, Transfer};

/// The snapshot's name inside a migrations folder.
pub const SNAPSHOT_FILE: &str = "schema.snapshot.xml";

/// What a workspace generates where.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace root.
    pub root: PathBuf,
    /// The file of the shared transfer crate the transfer structs go to, relative to the root
    /// (e.g. `crates/shop-shared/src/transfer/generated.rs`).
    pub transfers: String,
    /// Packages whose tables are pubsync's own (outbox, queue, settings): migrated in the
    /// root's `migrations/`, never taken for a shop's tables. Only pubsync's workspace has any.
    pub framework: Vec<String>,
}

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
    /// The migrations folder, relative to the root (`crates/shop-product/migrations`).
    pub folder: String,
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
    /// The snapshots of every migrations folder; each is written together with a new migration
    /// of its folder, or alone after a manual migration.
    pub snapshots: Vec<GeneratedFile>,
    /// The migrations to write, where the model differs from a snapshot.
    pub migrations: Vec<NewMigration>,
    /// The directories whose generated files codegen owns (`src/generated` of every member
    /// with definitions), relative to the root: a generated file there that is not in `files`
    /// is orphaned.
    pub generated_dirs: Vec<String>,
}

/// How to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The version of a new migration, `YYYYMMDDHHMMSS` (see [`migration_version`]); when
    /// several folders get one, each gets the next number, so that versions stay unique.
    pub version: String,
    /// Take the model as migrated (after a manual migration): no migration is planned and
    /// changes codegen cannot migrate are not errors.
    pub update_snapshot: bool,
}

/// What pubsync does with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TableKind {
    /// pubsync's own infrastructure: migrated in the root's folder.
    Framework,
    /// A storage table: migrated in its package's folder.
    Storage,
    /// The shop's: checked or created by `setup`, never migrated.
    Source,
}

/// Reads every definition of `packages` (in merge order, see [`discover`]) and generates
/// every output of `config`'s workspace.
pub fn generate(config: &Config, packages: &[Package], options: &Options) -> Result<Output, Error> {
    let schema_files = read_definition_files(packages, "schema", ".schema.xml")?;
    let transfer_files = read_definition_files(packages, "transfer", ".transfer.xml")?;
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
    check_merge_order(&model, packages)?;
    // The model as the dependencies alone define it: what their own migrations created.
    let core_files: Vec<SourceFile> = schema_files
        .iter()
        .filter(|file| !is_member(packages, file.package.as_deref()))
        .cloned()
        .collect();
    let core_model = if core_files.is_empty() {
        Model::default()
    } else {
        parse_schemas(&core_files)?
    };

    let mut output = Output {
        files: Vec::new(),
        snapshots: Vec::new(),
        migrations: Vec::new(),
        generated_dirs: Vec::new(),
    };
    // Migrations folder → the tables it migrates; the root's first.
    let mut folders: Vec<(String, Vec<&Table>)> = Vec::new();
    for package in packages.iter().filter(|package| package.member) {
        output
            .generated_dirs
            .push(package.display_path("src/generated"));
        let tables: Vec<&Table> = model
            .tables
            .iter()
            .filter(|table| generator(table, packages) == Some(package.name.as_str()))
            .collect();
        let (folder, migrated) = package_files(config, package, &tables, &mut output)?;
        match folders.iter_mut().find(|(existing, _)| *existing == folder) {
            Some((_, tables)) => tables.extend(migrated),
            None => folders.push((folder, migrated)),
        }
    }
    folders.sort_by_key(|(folder, _)| folder != FRAMEWORK_MIGRATIONS);
    // A new version comes after every existing one, in any folder of the workspace.
    let mut version = options.version.clone();
    for (folder, _) in &folders {
        for directory in migration_directories(&config.root.join(folder))? {
            let existing = directory.split('_').next().unwrap_or_default();
            if existing.len() == version.len() && existing >= version.as_str() {
                version = next_version(existing);
            }
        }
    }
    for (folder, migrated) in folders {
        folder_migration(
            config,
            &folder,
            &migrated,
            &core_model,
            options,
            &mut version,
            &mut output,
        )?;
    }
    let transfers = member_transfers(&transfers, packages);
    if !transfers.is_empty() {
        let mut inputs: Vec<String> = transfers.iter().flat_map(|t| t.sources.clone()).collect();
        inputs.sort();
        inputs.dedup();
        output.files.push(GeneratedFile {
            path: config.transfers.clone(),
            contents: transfer::generate_transfers(&transfers, &inputs),
            is_rust: true,
        });
    }
    Ok(output)
}

fn is_member(packages: &[Package], name: Option<&str>) -> bool {
    name.is_some_and(|name| packages.iter().any(|p| p.name == name && p.member))
}

/// The member whose generated code holds `table`: the package defining it when that is a
/// member, otherwise the last member extending it (a shop cannot rewrite a dependency); `None`
/// for a table only dependencies declare.
fn generator<'a>(table: &'a Table, packages: &[Package]) -> Option<&'a str> {
    let first = table.packages.first()?;
    if is_member(packages, Some(first)) {
        return Some(first);
    }
    table
        .packages
        .iter()
        .rev()
        .find(|name| is_member(packages, Some(name)))
        .map(String::as_str)
}

/// Every package extending a table must depend on the package defining it: otherwise which
/// declaration comes first, and so which one wins, would be an accident of their names.
fn check_merge_order(model: &Model, packages: &[Package]) -> Result<(), Error> {
    let mut errors = Vec::new();
    for table in &model.tables {
        let Some(definer) = table.packages.first() else {
            continue;
        };
        for later in &table.packages[1..] {
            let depends = packages
                .iter()
                .find(|p| &p.name == later)
                .is_some_and(|p| p.depends_on.contains(definer));
            if !depends {
                let file = table
                    .sources
                    .iter()
                    .find(|source| {
                        packages
                            .iter()
                            .any(|p| &p.name == later && source.starts_with(&p.display_path("")))
                    })
                    .cloned()
                    .unwrap_or_else(|| later.clone());
                errors.push(table.location.error(format!(
                    "table `{}` is declared by packages `{definer}` and `{later}` ({file}), \
                     and neither depends on the other: which declaration wins is undefined; \
                     make the package that overrides depend on the one that defines the table",
                    table.name
                )));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Definitions(errors))
    }
}

fn kind(config: &Config, table: &Table) -> TableKind {
    if table
        .packages
        .first()
        .is_some_and(|definer| config.framework.contains(definer))
    {
        TableKind::Framework
    } else if table.synchronization.is_some() {
        TableKind::Storage
    } else {
        TableKind::Source
    }
}

fn inputs_of(tables: &[&Table]) -> Vec<String> {
    let mut inputs: Vec<String> = tables
        .iter()
        .flat_map(|table| table.sources.iter().cloned())
        .collect();
    inputs.sort();
    inputs.dedup();
    inputs
}

/// Where the framework's tables migrate, relative to the root.
const FRAMEWORK_MIGRATIONS: &str = "migrations";

/// The generated Rust of one member; returns its migrations folder and the tables migrated
/// there.
fn package_files<'a>(
    config: &Config,
    package: &Package,
    tables: &[&'a Table],
    output: &mut Output,
) -> Result<(String, Vec<&'a Table>), Error> {
    let generated = |name: &str| package.display_path(&format!("src/generated/{name}"));
    if !tables.is_empty() {
        output.files.push(GeneratedFile {
            path: generated("tables.rs"),
            contents: rust::generate_tables(tables, &inputs_of(tables)),
            is_rust: true,
        });
    }
    let of_kind = |wanted: TableKind| -> Vec<&'a Table> {
        tables
            .iter()
            .copied()
            .filter(|table| kind(config, table) == wanted)
            .collect()
    };
    let storage = of_kind(TableKind::Storage);
    if !storage.is_empty() {
        output.files.push(GeneratedFile {
            path: generated("synchronization.rs"),
            contents: rust::generate_synchronization(&storage, &inputs_of(&storage)),
            is_rust: true,
        });
    }
    let sources = migration::creation_order(of_kind(TableKind::Source));
    if !sources.is_empty() {
        output.files.push(GeneratedFile {
            path: generated("source_tables.rs"),
            contents: rust::generate_source_tables(&sources, &inputs_of(&sources)),
            is_rust: true,
        });
    }
    let framework = of_kind(TableKind::Framework);
    if !framework.is_empty() {
        return Ok((FRAMEWORK_MIGRATIONS.to_owned(), framework));
    }
    Ok((package.display_path("migrations"), storage))
}

/// The snapshot and the new migration, if any, of one migrations folder.
fn folder_migration(
    config: &Config,
    folder: &str,
    migrated: &[&Table],
    core_model: &Model,
    options: &Options,
    version: &mut String,
    output: &mut Output,
) -> Result<(), Error> {
    let snapshot_path = format!("{folder}/{SNAPSHOT_FILE}");
    let previous = read_snapshot(&config.root, &snapshot_path)?;
    if migrated.is_empty() && previous.is_none() {
        return Ok(());
    }
    let model = Model {
        tables: migrated.iter().map(|table| (*table).clone()).collect(),
        migrated_triggers: None,
    };
    output.snapshots.push(GeneratedFile {
        path: snapshot_path,
        contents: snapshot::write_snapshot(&model, folder),
        is_rust: false,
    });
    let migration = if options.update_snapshot {
        None
    } else {
        planned_migration(folder, migrated, previous, &model, core_model, version)?
    };
    // A module's migrations are embedded by its crate, once it has any.
    let has_migrations = migration.is_some()
        || Dialect::ALL
            .iter()
            .any(|dialect| config.root.join(folder).join(dialect.name()).is_dir());
    if folder != FRAMEWORK_MIGRATIONS && has_migrations {
        // Listed in the file, so that a new migration changes it and cargo re-embeds them.
        let mut directories = migration_directories(&config.root.join(folder))?;
        directories.extend(migration.iter().map(|m| m.directory.clone()));
        directories.sort();
        directories.dedup();
        let crate_dir = folder.strip_suffix("migrations").unwrap_or(folder);
        output.files.push(GeneratedFile {
            path: format!("{crate_dir}src/generated/migrations.rs"),
            contents: rust::generate_migrations(&inputs_of(migrated), &directories),
            is_rust: true,
        });
    }
    if let Some(migration) = migration {
        output.migrations.push(migration);
        *version = next_version(version);
    }
    Ok(())
}

/// The migration of `folder` from its snapshot (`previous`) to `model`, if anything changed.
fn planned_migration(
    folder: &str,
    migrated: &[&Table],
    previous: Option<Model>,
    model: &Model,
    core_model: &Model,
    version: &str,
) -> Result<Option<NewMigration>, Error> {
    // Tables a dependency created, extended here for the first time: their migration starts
    // from the dependency's definition.
    let initial = previous.is_none();
    let mut baseline = previous.unwrap_or_default();
    for table in migrated {
        if baseline.table(&table.name).is_none()
            && let Some(core) = core_model.table(&table.name)
        {
            baseline.tables.push(core.clone());
            if let Some(records) = &mut baseline.migrated_triggers {
                records.extend(snapshot::trigger_records(core_model, core));
            }
        }
    }
    let from = if initial && baseline.tables.is_empty() {
        None
    } else {
        Some(&baseline)
    };
    new_migration(from, model, version, &inputs_of(migrated), folder)
}

/// The migration directories under `folder` (those of the first dialect, which every
/// migration has).
fn migration_directories(folder: &Path) -> Result<Vec<String>, Error> {
    let dir = folder.join(Dialect::ALL[0].name());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        if entry.path().is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// The version after `version`: the same digits plus one, so that migrations written in the
/// same run for several folders sort in that order and stay distinct.
fn next_version(version: &str) -> String {
    match version.parse::<u64>() {
        Ok(number) => format!("{:0width$}", number + 1, width = version.len()),
        Err(_) => format!("{version}1"),
    }
}

/// The transfers a member declares, merged over every package, with every transfer they
/// reference, sorted by name.
fn member_transfers(transfers: &[Transfer], packages: &[Package]) -> Vec<Transfer> {
    let mut wanted: BTreeSet<&str> = transfers
        .iter()
        .filter(|t| t.packages.iter().any(|p| is_member(packages, Some(p))))
        .map(|t| t.name.as_str())
        .collect();
    loop {
        let referenced: Vec<&str> = transfers
            .iter()
            .filter(|t| wanted.contains(t.name.as_str()))
            .flat_map(|t| t.properties.iter())
            .filter_map(|property| match &property.ty {
                PropertyType::Transfer(name) | PropertyType::TransferList(name) => {
                    Some(name.as_str())
                }
                _ => None,
            })
            .filter(|name| !wanted.contains(name))
            .collect();
        if referenced.is_empty() {
            break;
        }
        wanted.extend(referenced);
    }
    transfers
        .iter()
        .filter(|t| wanted.contains(t.name.as_str()))
        .cloned()
        .collect()
}

fn read_snapshot(root: &Path, relative: &str) -> Result<Option<Model>, Error> {
    let path = root.join(relative);
    match std::fs::read_to_string(&path) {
        Ok(text) => snapshot::read_snapshot(&text, relative).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// The migration from `previous` (the snapshot, `None` before the first migration) to
/// `model`, if anything changed, in `folder`.
pub fn new_migration(
    previous: Option<&Model>,
    model: &Model,
    version: &str,
    inputs: &[String],
    folder: &str,
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
            let mut contents = format!(
                "-- Generated by `cargo xtask codegen` from the schema files below and\n\
                 -- {folder}/{SNAPSHOT_FILE}; do not edit.\n"
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
                path: format!("{folder}/{}/{directory}/{file}", dialect.dialect.name()),
                contents,
                is_rust: false,
            });
        }
    }
    Ok(Some(NewMigration {
        folder: folder.to_owned(),
        directory,
        files,
    }))
}

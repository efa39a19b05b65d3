//! A module: what a module crate hands the application so that it runs — its publishers,
//! its storage tables, the shop's tables it reads or watches, and its migrations.
//!
//! A module crate declares one `const` [`Module`] built from its generated code; the shop's
//! binary lists its modules, core ones first, and [`Modules`] combines them. When two modules
//! describe the same table (a project crate overriding a core module's definition), the later
//! one wins, as the later schema file wins when codegen merges them.

use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::EmbeddedMigrations;
use pubsync_database::Dialect;
pub use pubsync_database::{DialectFingerprints, DialectStatements, SourceColumn, SourceTable};
use pubsync_shared::synchronization::SynchronizationDefinition;

use crate::backfill::TriggerSource;
use crate::listener::EventCollection;

/// Re-exported for the generated `migrations.rs`, whose `embed_migrations!` names it.
pub use diesel_migrations;

/// A module's migrations, embedded for every database (generated as `MIGRATIONS`).
pub struct Migrations {
    /// SQLite.
    pub sqlite: EmbeddedMigrations,
    /// PostgreSQL.
    pub postgres: EmbeddedMigrations,
    /// MySQL/MariaDB.
    pub mysql: EmbeddedMigrations,
}

impl std::fmt::Debug for Migrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Migrations")
    }
}

impl Migrations {
    /// The migrations of `dialect`, as diesel's harness runs them.
    pub fn get(&self, dialect: Dialect) -> MigrationSet<'_> {
        MigrationSet(match dialect {
            Dialect::Sqlite => &self.sqlite,
            Dialect::Postgres => &self.postgres,
            Dialect::Mysql => &self.mysql,
        })
    }
}

/// Embedded migrations by reference: a [`MigrationSource`] for diesel's harness, which takes
/// its source by value.
#[derive(Clone, Copy)]
pub struct MigrationSet<'a>(pub &'a EmbeddedMigrations);

impl<DB: diesel::backend::Backend> MigrationSource<DB> for MigrationSet<'_> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        MigrationSource::<DB>::migrations(self.0)
    }
}

/// One module, as its crate declares it:
///
/// ```ignore
/// pub const MODULE: Module = Module::new("product")
///     .publishers(register)
///     .storage_tables(generated::synchronization::ALL)
///     .source_tables(generated::source_tables::ALL)
///     .trigger_sources(&[TriggerSource::new("product_abstract", "spy_product_abstract",
///         "id_product_abstract", "Entity.spy_product_abstract.update")])
///     .migrations(&generated::migrations::MIGRATIONS);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Module {
    name: &'static str,
    register: Option<fn(&mut EventCollection)>,
    storage_tables: &'static [SynchronizationDefinition],
    source_tables: &'static [SourceTable],
    trigger_sources: &'static [TriggerSource],
    migrations: Option<&'static Migrations>,
}

impl Module {
    /// A module called `name` (for messages) that brings nothing yet.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            register: None,
            storage_tables: &[],
            source_tables: &[],
            trigger_sources: &[],
            migrations: None,
        }
    }

    /// Its publishers: `register` adds them to the application's listeners.
    pub const fn publishers(mut self, register: fn(&mut EventCollection)) -> Self {
        self.register = Some(register);
        self
    }

    /// Its storage tables (the generated `synchronization::ALL`).
    pub const fn storage_tables(mut self, tables: &'static [SynchronizationDefinition]) -> Self {
        self.storage_tables = tables;
        self
    }

    /// The shop's tables it reads or watches (the generated `source_tables::ALL`).
    pub const fn source_tables(mut self, tables: &'static [SourceTable]) -> Self {
        self.source_tables = tables;
        self
    }

    /// Where its resources come from, for `publish:trigger-events` and `verify`: one
    /// [`TriggerSource`] per resource it publishes.
    pub const fn trigger_sources(mut self, sources: &'static [TriggerSource]) -> Self {
        self.trigger_sources = sources;
        self
    }

    /// Its migrations (the generated `migrations::MIGRATIONS`).
    pub const fn migrations(mut self, migrations: &'static Migrations) -> Self {
        self.migrations = Some(migrations);
        self
    }

    /// The module's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The module's migrations, if it has any.
    pub fn module_migrations(&self) -> Option<&'static Migrations> {
        self.migrations
    }
}

/// The modules of an application, in order: core modules first, the project's last.
#[derive(Debug, Clone, Default)]
pub struct Modules {
    modules: Vec<Module>,
}

impl Modules {
    /// The modules in the order given.
    pub fn new(modules: impl IntoIterator<Item = Module>) -> Self {
        Self {
            modules: modules.into_iter().collect(),
        }
    }

    /// These modules with `core` first, unless one of them already has its name (an
    /// application that lists a core module itself decides where it goes).
    #[must_use]
    pub fn with_core(mut self, core: Module) -> Self {
        if !self
            .modules
            .iter()
            .any(|module| module.name() == core.name())
        {
            self.modules.insert(0, core);
        }
        self
    }

    /// Every module, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Module> {
        self.modules.iter()
    }

    /// Every publisher of every module.
    pub fn listeners(&self) -> EventCollection {
        let mut events = EventCollection::new();
        for register in self.modules.iter().filter_map(|module| module.register) {
            register(&mut events);
        }
        events
    }

    /// Every storage table, a later module's definition of a table replacing an earlier one.
    pub fn storage_tables(&self) -> Vec<&'static SynchronizationDefinition> {
        last_wins(
            self.modules.iter().flat_map(|module| module.storage_tables),
            |definition| definition.table,
        )
    }

    /// Every trigger source, a later module's source of a resource replacing an earlier one.
    pub fn trigger_sources(&self) -> Vec<&'static TriggerSource> {
        last_wins(
            self.modules
                .iter()
                .flat_map(|module| module.trigger_sources),
            |source| source.resource,
        )
    }

    /// Every source table, a later module's definition of a table replacing an earlier one
    /// (in the earlier one's place, so that referenced tables still come first).
    pub fn source_tables(&self) -> Vec<&'static SourceTable> {
        last_wins(
            self.modules.iter().flat_map(|module| module.source_tables),
            |table| table.name,
        )
    }
}

/// `items` without repeats of a name: each name at its first place, with its last value.
fn last_wins<T>(
    items: impl Iterator<Item = &'static T>,
    name: impl Fn(&T) -> &'static str,
) -> Vec<&'static T> {
    let mut out: Vec<&'static T> = Vec::new();
    for item in items {
        match out.iter_mut().find(|existing| name(existing) == name(item)) {
            Some(existing) => *existing = item,
            None => out.push(item),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn definition(
        table: &'static str,
        queue_group: &'static str,
    ) -> SynchronizationDefinition {
        SynchronizationDefinition::new(table, "foo", queue_group)
    }

    const CORE: &[SynchronizationDefinition] = &[
        definition("spy_a_storage", "sync.storage.a"),
        definition("spy_b_storage", "sync.storage.b"),
    ];
    const PROJECT: &[SynchronizationDefinition] =
        &[definition("spy_a_storage", "sync.storage.project")];

    #[test]
    fn a_later_module_overrides_a_table_in_place() {
        let modules = Modules::new([
            Module::new("core").storage_tables(CORE),
            Module::new("project").storage_tables(PROJECT),
        ]);
        let tables: Vec<(&str, &str)> = modules
            .storage_tables()
            .iter()
            .map(|d| (d.table, d.queue_group))
            .collect();
        assert_eq!(
            tables,
            [
                ("spy_a_storage", "sync.storage.project"),
                ("spy_b_storage", "sync.storage.b")
            ]
        );
    }
}

//! A shop's table that a module reads or watches, as codegen describes it for `setup`.
//!
//! Source tables belong to the shop: its own schema tooling created them, with rows, long
//! before pubsync. pubsync creates one only when it is missing (a fresh database, the demo),
//! checks an existing one against the module's definition, and installs the capture triggers
//! of the `event` behaviour on it. It never alters, renumbers or drops a source table, which
//! is why they are not part of any migration.

use crate::Dialect;

/// One source table: what `setup` checks, creates and installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceTable {
    /// The table name.
    pub name: &'static str,
    /// The definition files declaring it, for error messages.
    pub sources: &'static [&'static str],
    /// The columns the module relies on: every declared column, behaviour columns included.
    pub columns: &'static [SourceColumn],
    /// `CREATE TABLE` and its indexes, run only when the table does not exist.
    pub create: DialectStatements,
    /// The statements replacing the capture triggers (dropping any previous version first);
    /// empty for a table without the `event` behaviour.
    pub triggers: DialectStatements,
    /// The statements dropping any capture triggers (`IF EXISTS`): what `setup` runs when the
    /// definition no longer has the `event` behaviour but triggers were installed before.
    pub drop_triggers: DialectStatements,
    /// A fingerprint of `triggers` per dialect, so that `setup` replaces triggers only when
    /// they changed.
    pub trigger_fingerprints: DialectFingerprints,
    /// The names of the capture triggers (the same on every dialect), so that `setup` puts
    /// back triggers someone dropped.
    pub trigger_names: &'static [&'static str],
}

/// One column of a [`SourceTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceColumn {
    /// The column name.
    pub name: &'static str,
    /// The schema type, as written in schema files (`INTEGER`, `VARCHAR`, …).
    pub schema_type: &'static str,
    /// Whether the definition requires a value (`required="true"` or primary key).
    pub required: bool,
    /// Whether the column is part of the primary key.
    pub primary_key: bool,
}

/// SQL statements for every dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectStatements {
    /// SQLite.
    pub sqlite: &'static [&'static str],
    /// PostgreSQL.
    pub postgres: &'static [&'static str],
    /// MySQL/MariaDB.
    pub mysql: &'static [&'static str],
}

impl DialectStatements {
    /// The statements of `dialect`.
    pub fn get(&self, dialect: Dialect) -> &'static [&'static str] {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
            Dialect::Mysql => self.mysql,
        }
    }
}

/// One fingerprint per dialect (empty where there is nothing to fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialectFingerprints {
    /// SQLite.
    pub sqlite: &'static str,
    /// PostgreSQL.
    pub postgres: &'static str,
    /// MySQL/MariaDB.
    pub mysql: &'static str,
}

impl DialectFingerprints {
    /// The fingerprint of `dialect`.
    pub fn get(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
            Dialect::Mysql => self.mysql,
        }
    }
}

//! The databases migrations are written for, and how identifiers and strings are quoted for
//! them.

/// The databases migrations are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35 or newer.
    Sqlite,
    /// PostgreSQL 12 or newer.
    Postgres,
    /// MySQL 8 / MariaDB 10.5 or newer.
    Mysql,
}

impl Dialect {
    /// Every dialect, in the order migrations are written.
    pub const ALL: [Dialect; 3] = [Self::Sqlite, Self::Postgres, Self::Mysql];

    /// The folder under `migrations/`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

/// Quotes an identifier (MySQL: backticks, others: double quotes).
pub fn quote(dialect: Dialect, identifier: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("`{}`", identifier.replace('`', "``")),
        Dialect::Sqlite | Dialect::Postgres => format!("\"{}\"", identifier.replace('"', "\"\"")),
    }
}

/// A SQL string literal.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

//! The databases pubsync runs on, and the few facts of their SQL that every statement builder
//! needs: identifier quoting and bind placeholders.

use std::fmt;

/// The databases pubsync runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite 3.35 or newer, the embedded default.
    Sqlite,
    /// PostgreSQL 12 or newer.
    Postgres,
    /// MySQL 8 or MariaDB 10.5 or newer.
    Mysql,
}

impl Dialect {
    /// Every dialect, in the order migrations are written.
    pub const ALL: [Dialect; 3] = [Self::Sqlite, Self::Postgres, Self::Mysql];

    /// The folder name of this dialect's migrations and generated SQL.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    /// `name` quoted as an identifier (MySQL: backticks, the others: double quotes).
    pub fn quote(self, name: &str) -> String {
        match self {
            Self::Mysql => format!("`{}`", name.replace('`', "``")),
            Self::Sqlite | Self::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// The bind placeholder for the `index`-th (1-based) parameter.
    pub fn placeholder(self, index: usize) -> String {
        match self {
            Self::Postgres => format!("${index}"),
            Self::Sqlite | Self::Mysql => "?".to_owned(),
        }
    }

    /// The clock time when the expression is evaluated, in microseconds since the Unix epoch:
    /// the version of a change, as the sync triggers record it and as every statement that
    /// fills the sync outbox must. Not the transaction or statement start (`now()`,
    /// `NOW(6)`): a transaction that waited on a lock would carry an older version than the
    /// change it overwrote.
    pub fn clock_micros(self) -> &'static str {
        match self {
            Self::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)",
            Self::Postgres => "(extract(epoch from clock_timestamp()) * 1000000)::bigint",
            Self::Mysql => "CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED)",
        }
    }

    /// `count` comma-separated placeholders starting at parameter `first`.
    pub fn placeholders(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|i| self.placeholder(i))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_quote_and_number_placeholders() {
        assert_eq!(Dialect::Mysql.quote("key"), "`key`");
        assert_eq!(Dialect::Sqlite.quote("key"), "\"key\"");
        assert_eq!(Dialect::Postgres.quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::Postgres.placeholders(2, 3), "$2, $3, $4");
        assert_eq!(Dialect::Sqlite.placeholders(1, 2), "?, ?");
    }
}

//! The statements the storage runs, built as text so tests can look at their query plans.

use pubsync_database::Dialect;

/// Most keys bound in one statement. SQLite before 3.32 allows 999 parameters, PostgreSQL and
/// MySQL 65,535; 500 stays well inside all of them and keeps statements short.
pub const MAX_KEYS_PER_STATEMENT: usize = 500;

/// `SELECT "key", "data" FROM "<table>" WHERE "key" IN (?, …)` with `key_count` placeholders.
///
/// The key predicate lets the database use the storage table's unique index on `key`, one
/// index look-up per key; the original's statement has no predicate and evaluates a `CASE` over
/// every row once per key (reference section 7.4). Identifiers are quoted: `key` is a reserved
/// word in MySQL.
///
/// On PostgreSQL one array parameter, `WHERE "key" = ANY($1)`, would keep a single prepared
/// statement for every key count; that needs an array bind, which arrives with PostgreSQL
/// support. `IN` with one placeholder per key works on every dialect meanwhile.
pub fn select_by_keys(dialect: Dialect, table: &str, key_count: usize) -> String {
    // Alias keys (next milestone): a second statement for the keys this one did not find,
    // against the `alias_key → key` side table (DESIGN-NOTES "Reading from the database"),
    // rather than a JSON look-up in `alias_keys` that no portable index serves.
    format!(
        "SELECT {key}, {data} FROM {table} WHERE {key} IN ({placeholders})",
        key = dialect.quote("key"),
        data = dialect.quote("data"),
        table = dialect.quote(table),
        placeholders = dialect.placeholders(1, key_count.max(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_identifiers_per_dialect() {
        assert_eq!(
            select_by_keys(Dialect::Sqlite, "spy_x_storage", 2),
            r#"SELECT "key", "data" FROM "spy_x_storage" WHERE "key" IN (?, ?)"#
        );
        assert_eq!(
            select_by_keys(Dialect::Mysql, "spy_x_storage", 1),
            "SELECT `key`, `data` FROM `spy_x_storage` WHERE `key` IN (?)"
        );
        assert_eq!(
            select_by_keys(Dialect::Postgres, "spy_x_storage", 3),
            r#"SELECT "key", "data" FROM "spy_x_storage" WHERE "key" IN ($1, $2, $3)"#
        );
    }
}

//! The statements the storage runs, built as text so tests can look at their query plans.

use pubsync_database::{Dialect, Statement};

/// The side table of alias (mapping) keys the storage writer keeps: `alias_key` (primary key),
/// `storage_table`, `storage_key` and `data`, the alias's value `{"id":…,"_timestamp":…}`.
pub const ALIAS_TABLE: &str = "pubsync_storage_alias";

/// Keys bound in one MySQL statement: a chunk takes the largest size that fits, so a table's
/// look-up comes in a few shapes that stay prepared (`pubsync_database::bucketed`). SQLite and
/// PostgreSQL bind all keys as one parameter.
pub const KEYS_PER_STATEMENT: [usize; 5] = [500, 100, 20, 5, 1];

/// `SELECT "key", "data" FROM "<table>" WHERE "key" IN (?, …)` with `key_count` placeholders (`?`, for a `Statement`).
///
/// The key predicate lets the database use the storage table's unique index on `key`, one
/// index look-up per key; the original's statement has no predicate and evaluates a `CASE` over
/// every row once per key (reference section 7.4). Identifiers are quoted: `key` is a reserved
/// word in MySQL.
///
/// PostgreSQL uses [`select_by_key_array`] instead.
pub fn select_by_keys(dialect: Dialect, table: &str, key_count: usize) -> String {
    format!(
        "SELECT {key}, {data} FROM {table} WHERE {key} IN ({placeholders})",
        key = dialect.quote("key"),
        data = dialect.quote("data"),
        table = dialect.quote(table),
        placeholders = Statement::placeholders(key_count.max(1)),
    )
}

/// SQLite: `SELECT t."key", t."data" FROM json_each(?) AS k CROSS JOIN "<table>" AS t ON
/// t."key" = k.value`, every key in one JSON array parameter: one statement text for any number
/// of keys, so it stays prepared. `CROSS JOIN` keeps the key list the outer loop (SQLite does
/// not reorder it), so each key is one look-up in the unique index, with no temporary index
/// built from the list first, as `IN (…)` does.
pub fn select_by_key_json(table: &str) -> String {
    let dialect = Dialect::Sqlite;
    format!(
        "SELECT t.{key}, t.{data} FROM json_each(?) AS k CROSS JOIN {table} AS t ON t.{key} = k.value",
        key = dialect.quote("key"),
        data = dialect.quote("data"),
        table = dialect.quote(table),
    )
}

/// SQLite: [`select_aliases`] with every key in one JSON array parameter, as
/// [`select_by_key_json`].
pub fn select_aliases_json() -> String {
    let dialect = Dialect::Sqlite;
    format!(
        "SELECT a.{alias_key}, a.{storage_table}, a.{data} FROM json_each(?) AS k CROSS JOIN {table} AS a ON a.{alias_key} = k.value",
        alias_key = dialect.quote("alias_key"),
        storage_table = dialect.quote("storage_table"),
        data = dialect.quote("data"),
        table = dialect.quote(ALIAS_TABLE),
    )
}

/// PostgreSQL: `SELECT "key", "data" FROM "<table>" WHERE "key" = ANY(…$1…)`, every key in
/// one `text[]` parameter: one statement text for any number of keys (no chunks), served by
/// the unique index on `key` even while the table's statistics lag behind its contents (see
/// `pubsync_database::postgres_any`).
pub fn select_by_key_array(table: &str) -> String {
    let dialect = Dialect::Postgres;
    let key = dialect.quote("key");
    format!(
        "SELECT {key}, {data} FROM {table} WHERE {any}",
        any = pubsync_database::postgres_any(&key, "TEXT", "$1"),
        data = dialect.quote("data"),
        table = dialect.quote(table),
    )
}

/// `SELECT "alias_key", "storage_table", "data" FROM "pubsync_storage_alias" WHERE "alias_key"
/// IN (?, …)` with `key_count` placeholders: the alias keys among the keys no storage table
/// held, one primary-key look-up each.
///
/// The original reads aliases out of each row's `alias_keys` JSON column, which no portable
/// index serves (DESIGN-NOTES "Reading from the database"); the side table is indexed on every
/// database. `storage_table` lets the caller keep only aliases of the table the key's resource
/// maps to.
pub fn select_aliases(dialect: Dialect, key_count: usize) -> String {
    format!(
        "SELECT {alias_key}, {storage_table}, {data} FROM {table} WHERE {alias_key} IN ({placeholders})",
        alias_key = dialect.quote("alias_key"),
        storage_table = dialect.quote("storage_table"),
        data = dialect.quote("data"),
        table = dialect.quote(ALIAS_TABLE),
        placeholders = Statement::placeholders(key_count.max(1)),
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
            r#"SELECT "key", "data" FROM "spy_x_storage" WHERE "key" IN (?, ?, ?)"#
        );
    }

    #[test]
    fn postgres_reads_keys_with_one_array_parameter() {
        assert_eq!(
            select_by_key_array("spy_x_storage"),
            r#"SELECT "key", "data" FROM "spy_x_storage" WHERE "key" = ANY((SELECT CAST($1 AS TEXT[]))::TEXT[])"#
        );
    }

    #[test]
    fn alias_look_ups_select_by_primary_key_per_dialect() {
        assert_eq!(
            select_aliases(Dialect::Sqlite, 2),
            r#"SELECT "alias_key", "storage_table", "data" FROM "pubsync_storage_alias" WHERE "alias_key" IN (?, ?)"#
        );
        assert_eq!(
            select_aliases(Dialect::Mysql, 1),
            "SELECT `alias_key`, `storage_table`, `data` FROM `pubsync_storage_alias` WHERE `alias_key` IN (?)"
        );
        assert_eq!(
            select_aliases(Dialect::Postgres, 3),
            r#"SELECT "alias_key", "storage_table", "data" FROM "pubsync_storage_alias" WHERE "alias_key" IN (?, ?, ?)"#
        );
    }
}

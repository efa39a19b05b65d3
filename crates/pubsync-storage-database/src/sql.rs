//! The statements the storage runs, built as text so tests can look at their query plans.
//! Key lists are bound as [`bind_list`] binds them: on SQLite one JSON array that drives a
//! join into the unique index, on PostgreSQL one array the planner does not see (so the index
//! is used even while a table's statistics lag behind its contents), on MySQL padded chunks.
//!
//! The key predicate lets the database use the storage table's unique index on `key`, one
//! index look-up per key; the original's statement has no predicate and evaluates a `CASE`
//! over every row once per key. Identifiers are quoted: `key` is a reserved word in MySQL.

use pubsync_database::names::{storage_alias, storage_table};
use pubsync_database::{BoundList, Dialect, bind_list};

/// The side table of alias (mapping) keys the storage writer keeps: `alias_key` (primary key),
/// `storage_table`, `storage_key` and `data`, the alias's value `{"id":…,"_timestamp":…}`.
pub const ALIAS_TABLE: &str = storage_alias::TABLE;

/// `SELECT "key", "data" FROM "<table>"` of the rows whose key is in `keys`.
pub fn select_by_keys(keys: &BoundList, table: &str) -> String {
    keys.select(
        &[storage_table::KEY, storage_table::DATA],
        table,
        storage_table::KEY,
    )
}

/// `SELECT "alias_key", "storage_table", "data" FROM "pubsync_storage_alias"` of the aliases
/// whose key is in `keys`: the alias keys among the keys no storage table held, one
/// primary-key look-up each.
///
/// The original reads aliases out of each row's `alias_keys` JSON column, which no portable
/// index serves; the side table is indexed on every database. `storage_table` lets the caller
/// keep only aliases of the table the key's resource maps to.
pub fn select_aliases(keys: &BoundList) -> String {
    keys.select(
        &[
            storage_alias::ALIAS_KEY,
            storage_alias::STORAGE_TABLE,
            storage_alias::DATA,
        ],
        ALIAS_TABLE,
        storage_alias::ALIAS_KEY,
    )
}

/// SQLite's [`select_by_keys`]: one text for any number of keys, bound as one JSON array.
pub fn select_by_key_json(table: &str) -> String {
    select_by_keys(&sqlite_list(), table)
}

/// SQLite's [`select_aliases`], bound as one JSON array.
pub fn select_aliases_json() -> String {
    select_aliases(&sqlite_list())
}

fn sqlite_list() -> BoundList {
    bind_list(Dialect::Sqlite, &[""]).remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_identifiers_per_dialect() {
        let keys = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            select_by_keys(&bind_list(Dialect::Mysql, &keys)[0], "spy_x_storage"),
            "SELECT `key`, `data` FROM `spy_x_storage` WHERE `key` IN (?, ?)"
        );
        assert_eq!(
            select_by_keys(&bind_list(Dialect::Postgres, &keys)[0], "spy_x_storage"),
            r#"SELECT "key", "data" FROM "spy_x_storage" WHERE "key" = ANY((SELECT CAST(? AS TEXT[]))::TEXT[])"#
        );
        assert_eq!(
            select_by_key_json("spy_x_storage"),
            r#"SELECT t."key", t."data" FROM json_each(?) AS k CROSS JOIN "spy_x_storage" AS t ON t."key" = k.value"#
        );
    }

    #[test]
    fn alias_look_ups_select_by_primary_key_per_dialect() {
        let keys = ["a".to_owned()];
        assert_eq!(
            select_aliases(&bind_list(Dialect::Mysql, &keys)[0]),
            "SELECT `alias_key`, `storage_table`, `data` FROM `pubsync_storage_alias` WHERE `alias_key` IN (?)"
        );
        assert_eq!(
            select_aliases(&bind_list(Dialect::Postgres, &keys)[0]),
            r#"SELECT "alias_key", "storage_table", "data" FROM "pubsync_storage_alias" WHERE "alias_key" = ANY((SELECT CAST(? AS TEXT[]))::TEXT[])"#
        );
        assert_eq!(
            select_aliases_json(),
            r#"SELECT t."alias_key", t."storage_table", t."data" FROM json_each(?) AS k CROSS JOIN "pubsync_storage_alias" AS t ON t."alias_key" = k.value"#
        );
    }
}

//! The SQL of the storage-table writer, per dialect: upserts, deletes, alias rows, and the
//! keys of the rows an entity has.

use diesel::sql_types::Binary;
use pubsync_database::names::{storage_alias, storage_table, sync_outbox};
use pubsync_database::{Bind, BoundList, Dialect, Statement, bind_list, stored_text};
use pubsync_shared::synchronization::SynchronizationDefinition;

use super::Reference;

/// A storage row's key, as [`replaced_rows`] reads it: bytes, since SQLite keeps whatever
/// text it is given, and a row whose key is not UTF-8 (no key pubsync writes) is one more
/// row to replace, not one that fails its entity's every write.
#[derive(diesel::QueryableByName)]
pub(super) struct KeyRow {
    #[diesel(sql_type = Binary)]
    pub(super) key: Vec<u8>,
}

/// The statements reading the keys of the rows of `references` in `table` (none without
/// references; every row of a table without `key_suffix_column`).
pub(super) fn replaced_rows(
    dialect: Dialect,
    table: &SynchronizationDefinition,
    references: &[Reference],
) -> Vec<Statement> {
    if references.is_empty() {
        return Vec::new();
    }
    let Some(column) = table.key_suffix_column else {
        // Without a reference column every row belongs to the one reference there is.
        let sql = format!(
            "SELECT {} FROM {}",
            dialect.quote(storage_table::KEY),
            dialect.quote(table.table)
        );
        return vec![Statement::new(sql)];
    };
    let ints: Vec<i64> = references
        .iter()
        .filter_map(|reference| match reference {
            Reference::Int(value) => Some(*value),
            _ => None,
        })
        .collect();
    let texts: Vec<&str> = references
        .iter()
        .filter_map(|reference| match reference {
            Reference::Text(value) => Some(value.as_str()),
            _ => None,
        })
        .collect();
    let select =
        |list: BoundList| list.statement(list.select(&[storage_table::KEY], table.table, column));
    let mut statements: Vec<Statement> =
        bind_list(dialect, &ints).into_iter().map(select).collect();
    statements.extend(bind_list(dialect, &texts).into_iter().map(select));
    statements
}

pub(super) struct Columns {
    pub(super) reference: Option<&'static str>,
    /// Whether the table has mappings, so rows carry an `alias_keys` column and alias rows.
    pub(super) alias_keys: bool,
}

impl Columns {
    pub(super) fn of(table: &SynchronizationDefinition) -> Self {
        Self {
            reference: table.key_suffix_column,
            alias_keys: !table.mappings.is_empty(),
        }
    }

    pub(super) fn names(&self, table: &SynchronizationDefinition) -> Vec<&'static str> {
        let mut names = vec!["key", "data"];
        names.extend(self.reference);
        if table.store {
            names.push("store");
        }
        if table.locale {
            names.push("locale");
        }
        if self.alias_keys {
            names.push("alias_keys");
        }
        names
    }
}

/// `DELETE FROM <table> WHERE "key" IN <list>`, the list bound as [`bind_list`] binds it: on
/// MySQL ordered and limited so that it takes the unique index, on PostgreSQL one array the
/// planner does not see, so a storage table whose statistics lag behind its size keeps using
/// its unique index (with a thousand keys visible, a freshly filled table got a sequential
/// scan per chunk).
pub(super) fn delete_rows(dialect: Dialect, table: &str, keys: &BoundList) -> Statement {
    let key = dialect.quote(storage_table::KEY);
    keys.statement(format!(
        "DELETE FROM {} WHERE {}{}",
        dialect.quote(table),
        keys.condition(&key),
        keys.index_order(&key)
    ))
}

/// The statements deleting the row of `table` whose key is `key`, as stored, where that key
/// is not UTF-8 (no key pubsync writes; SQLite keeps whatever text it is given). The key is
/// matched by its bytes. The sync outbox row its sync trigger records is taken out in the
/// same transaction: such a key cannot be in the key-value store, and the row would reach
/// the sync error queue as unreadable.
pub(crate) fn delete_unreadable_row(dialect: Dialect, table: &str, key: &[u8]) -> [Statement; 2] {
    let (placeholder, bind) = stored_text(dialect, key);
    let row = Statement::new(format!(
        "DELETE FROM {} WHERE {} = {placeholder}",
        dialect.quote(table),
        dialect.quote(storage_table::KEY),
    ))
    .bind(bind.clone());
    let recorded = Statement::new(format!(
        "DELETE FROM {} WHERE {} = ? AND {} = {placeholder}",
        dialect.quote(sync_outbox::TABLE),
        dialect.quote(sync_outbox::STORAGE_TABLE),
        dialect.quote(sync_outbox::STORAGE_KEY),
    ))
    .bind(Bind::Text(table.to_owned()))
    .bind(bind);
    [row, recorded]
}

/// `INSERT … ON CONFLICT (key) DO UPDATE … WHERE data changed` for `rows` rows, with `?`
/// placeholders (a [`Statement`]).
pub(super) fn upsert_sql(
    dialect: Dialect,
    table: &SynchronizationDefinition,
    columns: &Columns,
    rows: usize,
) -> String {
    let names = columns.names(table);
    let per_row = names.len();
    let quoted: Vec<String> = names.iter().map(|name| dialect.quote(name)).collect();
    let row_values = format!("({})", Statement::placeholders(per_row));
    let values: Vec<&str> = (0..rows).map(|_| row_values.as_str()).collect();
    let target = dialect.quote(table.table);
    let data = dialect.quote("data");
    let insert = format!(
        "INSERT INTO {target} ({}) VALUES {}",
        quoted.join(", "),
        values.join(", ")
    );
    if dialect == Dialect::Mysql {
        // MySQL assigns left to right: `updated_at` and `alias_keys` compare the old data
        // before it is replaced. `alias_keys` carries a fresh `_timestamp` each time, so
        // assigning it unconditionally would rewrite every row, changed or not.
        let alias_keys = dialect.quote("alias_keys");
        let mut updates = Vec::new();
        if table.timestampable {
            let updated_at = dialect.quote("updated_at");
            updates.push(format!(
                "{updated_at} = IF({data} <=> VALUES({data}), {updated_at}, CURRENT_TIMESTAMP)"
            ));
        }
        if columns.alias_keys {
            updates.push(format!(
                "{alias_keys} = IF({data} <=> VALUES({data}), {alias_keys}, VALUES({alias_keys}))"
            ));
        }
        updates.extend(
            quoted
                .iter()
                .skip(1)
                .filter(|column| **column != alias_keys)
                .map(|column| format!("{column} = VALUES({column})")),
        );
        return format!("{insert} ON DUPLICATE KEY UPDATE {}", updates.join(", "));
    }
    let mut updates: Vec<String> = quoted
        .iter()
        .skip(1)
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    if table.timestampable {
        updates.push(format!(
            "{} = CURRENT_TIMESTAMP",
            dialect.quote("updated_at")
        ));
    }
    let changed = match dialect {
        Dialect::Postgres => format!("{target}.{data} IS DISTINCT FROM excluded.{data}"),
        Dialect::Sqlite | Dialect::Mysql => format!("{target}.{data} IS NOT excluded.{data}"),
    };
    format!(
        "{insert} ON CONFLICT ({}) DO UPDATE SET {} WHERE {changed}",
        dialect.quote("key"),
        updates.join(", "),
    )
}

/// `DELETE FROM pubsync_storage_alias WHERE storage_table = ? AND storage_key IN <list>`:
/// the alias rows of the storage rows `keys` of `table` (the index on `storage_key` serves
/// it; it is not unique, so MySQL gets no `ORDER BY … LIMIT`).
pub(super) fn delete_aliases(dialect: Dialect, table: &str, keys: &BoundList) -> Statement {
    let mut statement = Statement::new(format!(
        "DELETE FROM {} WHERE {} = ? AND {}",
        dialect.quote(storage_alias::TABLE),
        dialect.quote(storage_alias::STORAGE_TABLE),
        keys.condition(&dialect.quote(storage_alias::STORAGE_KEY)),
    ));
    statement.push(Bind::Text(table.to_owned()));
    keys.bind_to(&mut statement);
    statement
}

/// Inserts `rows` alias rows; an alias key that exists already moves to the new row.
pub(super) fn insert_aliases_sql(dialect: Dialect, rows: usize) -> String {
    let columns = [
        storage_alias::ALIAS_KEY,
        storage_alias::STORAGE_TABLE,
        storage_alias::STORAGE_KEY,
        storage_alias::DATA,
    ]
    .map(|c| dialect.quote(c));
    let values: Vec<String> = (0..rows)
        .map(|row| format!("({})", dialect.placeholders(1 + row * 4, 4)))
        .collect();
    let updates: Vec<String> = columns[1..]
        .iter()
        .map(|column| match dialect {
            Dialect::Mysql => format!("{column} = VALUES({column})"),
            Dialect::Sqlite | Dialect::Postgres => format!("{column} = excluded.{column}"),
        })
        .collect();
    let conflict = match dialect {
        Dialect::Mysql => "ON DUPLICATE KEY UPDATE".to_owned(),
        Dialect::Sqlite | Dialect::Postgres => {
            format!("ON CONFLICT ({}) DO UPDATE SET", columns[0])
        }
    };
    format!(
        "INSERT INTO {} ({}) VALUES {} {conflict} {}",
        dialect.quote(storage_alias::TABLE),
        columns.join(", "),
        values.join(", "),
        updates.join(", ")
    )
}

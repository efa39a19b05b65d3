//! Writes storage tables: the rows a publisher computed, keyed by the key builder.
//!
//! A row is upserted on its unique `key`; a row whose `data` is unchanged is not rewritten
//! (its `updated_at` stays), which keeps re-publishing cheap and, on the sync path, quiet.

use std::sync::Arc;

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Nullable, Text};
use pubsync_database::{Database, DatabaseError, Dialect, WriteTransaction as _, with_connection};
use pubsync_shared::key::{KeyBuilders, SynchronizationData};
use pubsync_shared::synchronization::SynchronizationDefinition;
use serde_json::Value;

/// The value of a storage table's `key_suffix_column`, which is also the key's reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An integer column, usually the foreign key of the published entity.
    Int(i64),
    /// A text column.
    Text(String),
    /// The table has no `key_suffix_column`: all rows share one key.
    None,
}

impl Reference {
    fn as_key_part(&self) -> Option<String> {
        match self {
            Self::Int(value) => Some(value.to_string()),
            Self::Text(value) => Some(value.clone()),
            Self::None => None,
        }
    }
}

/// Identifies one storage row: the parts its key is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    /// The `key_suffix_column` value.
    pub reference: Reference,
    /// The `store` column, for tables with the store parameter.
    pub store: Option<String>,
    /// The `locale` column, for tables with the locale parameter.
    pub locale: Option<String>,
}

impl RowKey {
    /// A row of a store- and locale-less table.
    pub fn reference(reference: Reference) -> Self {
        Self {
            reference,
            store: None,
            locale: None,
        }
    }
}

/// One storage row to write.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRow {
    /// Which row.
    pub key: RowKey,
    /// What the frontend reads: stored as JSON text in `data`.
    pub data: Value,
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Rows inserted or changed (rows whose data was already current are not counted).
    pub written: usize,
    /// Rows deleted.
    pub deleted: usize,
}

/// Writes storage tables.
#[derive(Debug, Clone)]
pub struct StorageWriter {
    database: Database,
    keys: Arc<KeyBuilders>,
}

impl StorageWriter {
    /// A writer into `database`, building keys with `keys`.
    pub fn new(database: Database, keys: Arc<KeyBuilders>) -> Self {
        Self { database, keys }
    }

    /// The storage key of `row` in `table`.
    pub fn key(&self, table: &SynchronizationDefinition, row: &RowKey) -> String {
        let data = SynchronizationData {
            reference: row.reference.as_key_part(),
            store: row.store.clone().filter(|_| table.store),
            locale: row.locale.clone().filter(|_| table.locale),
        };
        self.keys.generate_key(table.resource, &data)
    }

    /// Upserts `rows` and deletes the rows of `deletes` in `table`, in one transaction.
    pub fn apply(
        &self,
        table: &SynchronizationDefinition,
        rows: &[StorageRow],
        deletes: &[RowKey],
    ) -> Result<WriteOutcome, DatabaseError> {
        let dialect = self.database.dialect();
        let upserts: Vec<(String, String, &StorageRow)> = rows
            .iter()
            .map(|row| {
                (
                    self.key(table, &row.key),
                    serde_json::to_string(&row.data).expect("json serialises"),
                    row,
                )
            })
            .collect();
        let delete_keys: Vec<String> = deletes.iter().map(|key| self.key(table, key)).collect();
        let columns = Columns::of(table);
        with_connection!(self.database, |conn| {
            conn.write_transaction(|conn| {
                let mut outcome = WriteOutcome::default();
                for chunk in upserts.chunks(500) {
                    let sql = upsert_sql(dialect, table, &columns, chunk.len());
                    let mut query = diesel::sql_query(sql).into_boxed();
                    for (key, data, row) in chunk {
                        query = query
                            .bind::<Text, _>(key.clone())
                            .bind::<Text, _>(data.clone());
                        match (&columns.reference, &row.key.reference) {
                            (Some(_), Reference::Int(value)) => {
                                query = query.bind::<BigInt, _>(*value)
                            }
                            (Some(_), Reference::Text(value)) => {
                                query = query.bind::<Text, _>(value.clone())
                            }
                            (Some(_), Reference::None) => {
                                query = query.bind::<Nullable<Text>, _>(None::<String>)
                            }
                            (None, _) => {}
                        }
                        if table.store {
                            query = query.bind::<Nullable<Text>, _>(row.key.store.clone());
                        }
                        if table.locale {
                            query = query.bind::<Nullable<Text>, _>(row.key.locale.clone());
                        }
                    }
                    outcome.written += query
                        .execute(conn)
                        .map_err(DatabaseError::query(format!("upsert into {}", table.table)))?;
                }
                for chunk in delete_keys.chunks(1000) {
                    let sql = format!(
                        "DELETE FROM {} WHERE {} IN ({})",
                        dialect.quote(table.table),
                        dialect.quote("key"),
                        dialect.placeholders(1, chunk.len())
                    );
                    let mut query = diesel::sql_query(sql).into_boxed();
                    for key in chunk {
                        query = query.bind::<Text, _>(key.clone());
                    }
                    outcome.deleted += query
                        .execute(conn)
                        .map_err(DatabaseError::query(format!("delete from {}", table.table)))?;
                }
                Ok(outcome)
            })
        })
    }
}

struct Columns {
    reference: Option<&'static str>,
}

impl Columns {
    fn of(table: &SynchronizationDefinition) -> Self {
        Self {
            reference: table.key_suffix_column,
        }
    }

    fn names(&self, table: &SynchronizationDefinition) -> Vec<&'static str> {
        let mut names = vec!["key", "data"];
        names.extend(self.reference);
        if table.store {
            names.push("store");
        }
        if table.locale {
            names.push("locale");
        }
        names
    }
}

/// `INSERT … ON CONFLICT (key) DO UPDATE … WHERE data changed` for `rows` rows.
fn upsert_sql(
    dialect: Dialect,
    table: &SynchronizationDefinition,
    columns: &Columns,
    rows: usize,
) -> String {
    let names = columns.names(table);
    let per_row = names.len();
    let quoted: Vec<String> = names.iter().map(|name| dialect.quote(name)).collect();
    let values: Vec<String> = (0..rows)
        .map(|row| format!("({})", dialect.placeholders(1 + row * per_row, per_row)))
        .collect();
    let target = dialect.quote(table.table);
    let data = dialect.quote("data");
    let insert = format!(
        "INSERT INTO {target} ({}) VALUES {}",
        quoted.join(", "),
        values.join(", ")
    );
    if dialect == Dialect::Mysql {
        // MySQL assigns left to right: `updated_at` compares the old data before it is replaced.
        let mut updates = Vec::new();
        if table.timestampable {
            let updated_at = dialect.quote("updated_at");
            updates.push(format!(
                "{updated_at} = IF({data} <=> VALUES({data}), {updated_at}, CURRENT_TIMESTAMP)"
            ));
        }
        updates.extend(
            quoted
                .iter()
                .skip(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: SynchronizationDefinition = SynchronizationDefinition {
        table: "spy_x_storage",
        resource: "x",
        key_suffix_column: Some("fk_x"),
        store: true,
        locale: false,
        queue_group: "sync.storage.x",
        queue_pool: None,
        params: None,
        mappings: &[],
        synchronization_enabled: None,
        timestampable: true,
        direct_sync_disabled: false,
    };

    #[test]
    fn upsert_rewrites_only_changed_data() {
        let sql = upsert_sql(Dialect::Sqlite, &TABLE, &Columns::of(&TABLE), 2);
        assert_eq!(
            sql,
            "INSERT INTO \"spy_x_storage\" (\"key\", \"data\", \"fk_x\", \"store\") VALUES (?, ?, ?, ?), (?, ?, ?, ?) \
             ON CONFLICT (\"key\") DO UPDATE SET \"data\" = excluded.\"data\", \"fk_x\" = excluded.\"fk_x\", \
             \"store\" = excluded.\"store\", \"updated_at\" = CURRENT_TIMESTAMP \
             WHERE \"spy_x_storage\".\"data\" IS NOT excluded.\"data\""
        );
    }

    #[test]
    fn mysql_upsert_keeps_updated_at_when_data_is_unchanged() {
        let sql = upsert_sql(Dialect::Mysql, &TABLE, &Columns::of(&TABLE), 1);
        assert_eq!(
            sql,
            "INSERT INTO `spy_x_storage` (`key`, `data`, `fk_x`, `store`) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
             `updated_at` = IF(`data` <=> VALUES(`data`), `updated_at`, CURRENT_TIMESTAMP), `data` = VALUES(`data`), \
             `fk_x` = VALUES(`fk_x`), `store` = VALUES(`store`)"
        );
    }

    #[test]
    fn keys_use_store_only_when_the_table_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = pubsync_database::DatabaseUrl::Sqlite(dir.path().join("k.db"));
        let database = Database::connect(&url, &Default::default()).unwrap();
        let writer = StorageWriter::new(database, Arc::default());
        let row = RowKey {
            reference: Reference::Int(7),
            store: Some("DE".into()),
            locale: Some("de_DE".into()),
        };
        assert_eq!(writer.key(&TABLE, &row), "x:de:7");
    }
}

//! The statements of the backfill commands: keyset pages of source and storage tables, look-ups
//! by lists, and the export of storage rows into the sync outbox. All blocking; callers run
//! them on the blocking pool.

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};
use pubsync_database::names::{storage_alias, storage_table, sync_outbox};
use pubsync_database::{
    Bind, Database, DatabaseError, Dialect, FromRow, ListValue, Statement, TypeFamily,
    WriteTransaction as _, bind_list, stored_text, with_connection,
};
use pubsync_shared::synchronization::SynchronizationDefinition;

use crate::outbox::SYNC_OUTBOX;
use crate::storage_table_writer::delete_unreadable_row;

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    key: String,
}

/// A storage row as read: its key as stored, bytes, since SQLite keeps whatever text it is
/// given, and a row whose key is not UTF-8 is one to report (and delete), not one that stops
/// the run.
#[derive(diesel::QueryableByName)]
struct RawStoredRow {
    #[diesel(sql_type = Binary)]
    key: Vec<u8>,
    #[diesel(sql_type = Nullable<Binary>)]
    data: Option<Vec<u8>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    reference: Option<i64>,
}

/// A storage row as `verify` compares it.
#[derive(Debug, Clone)]
pub(crate) struct StoredRow {
    pub(crate) key: String,
    /// The data as stored: bytes, since SQLite keeps what it is given, and a row whose data
    /// is not UTF-8 is one to report (and repair), not one that stops the run.
    data: Option<Vec<u8>>,
    /// The row's reference, where its table has an integer `key_suffix_column`.
    pub(crate) reference: Option<i64>,
}

impl StoredRow {
    /// The data as text; bytes that are not UTF-8 become U+FFFD, so that such a row compares
    /// as stale and a repair rewrites it.
    pub(crate) fn data(&self) -> Option<String> {
        self.data
            .as_deref()
            .map(|data| String::from_utf8_lossy(data).into_owned())
    }
}

/// A storage row whose key is not UTF-8: no key pubsync writes (SQLite keeps whatever text
/// it is given), so no source row gives it.
#[derive(Debug, Clone)]
pub(crate) struct UnreadableRow {
    /// The key's bytes.
    pub(crate) key: Vec<u8>,
    /// The row's reference, where its table has an integer `key_suffix_column`.
    pub(crate) reference: Option<i64>,
}

impl UnreadableRow {
    /// The key as a report names it: UTF-8 as it is, every other byte as `\xNN`.
    pub(crate) fn shown(&self) -> String {
        let mut shown = String::new();
        for chunk in self.key.utf8_chunks() {
            shown.push_str(chunk.valid());
            for byte in chunk.invalid() {
                shown.push_str(&format!("\\x{byte:02x}"));
            }
        }
        shown
    }
}

/// Storage rows as read, those whose key is UTF-8 apart from those whose key is not.
#[derive(Debug, Default)]
pub(crate) struct StoredRows {
    /// The rows whose key is UTF-8, in the order read.
    pub(crate) rows: Vec<StoredRow>,
    /// The others.
    pub(crate) unreadable: Vec<UnreadableRow>,
}

impl FromIterator<RawStoredRow> for StoredRows {
    fn from_iter<I: IntoIterator<Item = RawStoredRow>>(raw: I) -> Self {
        let mut rows = Self::default();
        for row in raw {
            match String::from_utf8(row.key) {
                Ok(key) => rows.rows.push(StoredRow {
                    key,
                    data: row.data,
                    reference: row.reference,
                }),
                Err(error) => rows.unreadable.push(UnreadableRow {
                    key: error.into_bytes(),
                    reference: row.reference,
                }),
            }
        }
        rows
    }
}

/// A page of a storage table in key order, and the key the next page starts after.
#[derive(Debug, Default)]
pub(crate) struct StoragePage {
    pub(crate) rows: StoredRows,
    /// The last key of the page as stored; `None` when the page is empty.
    pub(crate) last: Option<Vec<u8>>,
}

/// `column` as a 64-bit integer (a shop's id column is often a 32-bit one).
fn as_bigint(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("CAST({column} AS SIGNED)"),
        Dialect::Sqlite | Dialect::Postgres => format!("CAST({column} AS BIGINT)"),
    }
}

/// `column` as a 64-bit integer where its value is one, `NULL` where it is not: a storage
/// table's `key_suffix_column` may be a text column (the health check's is), which a plain
/// cast refuses on PostgreSQL and turns into 0 elsewhere.
fn integer_or_null(dialect: Dialect, column: &str) -> String {
    match dialect {
        // An integer column is cast as it is; only text is looked at.
        Dialect::Postgres => format!(
            "CASE WHEN pg_typeof({column}) IN ('bigint'::regtype, 'integer'::regtype, \
             'smallint'::regtype) THEN CAST(CAST({column} AS TEXT) AS BIGINT) \
             WHEN CAST({column} AS TEXT) ~ '^-{{0,1}}[0-9]{{1,18}}$' \
             THEN CAST(CAST({column} AS TEXT) AS BIGINT) END"
        ),
        // MySQL casts a 19-digit number out of range to the largest, with a warning.
        Dialect::Mysql => format!(
            "CASE WHEN CAST({column} AS CHAR) REGEXP '^-{{0,1}}[0-9]{{1,19}}$' \
             THEN CAST({column} AS SIGNED) END"
        ),
        Dialect::Sqlite => format!(
            "CASE WHEN CAST(CAST({column} AS INTEGER) AS TEXT) = CAST({column} AS TEXT) \
             THEN CAST({column} AS INTEGER) END"
        ),
    }
}

/// How many rows `table` has, and how many of them have an `id_column` up to `upto`.
pub(crate) fn count(
    database: &Database,
    table: &str,
    id_column: &str,
    upto: Option<i64>,
) -> Result<(u64, u64), DatabaseError> {
    let dialect = database.dialect();
    let (table_q, column) = (dialect.quote(table), dialect.quote(id_column));
    let mut statements = vec![Statement::new(format!(
        "SELECT COUNT(*) AS n FROM {table_q}"
    ))];
    if let Some(upto) = upto {
        statements.push(
            Statement::new(format!(
                "SELECT COUNT(*) AS n FROM {table_q} WHERE {column} <= ?"
            ))
            .bind(Bind::BigInt(upto)),
        );
    }
    let counts: Vec<u64> = with_connection!(database, |conn| {
        let mut counts = Vec::new();
        for statement in statements {
            let row = statement
                .get_result::<Count>(conn)
                .map_err(DatabaseError::query(format!("count the rows of {table}")))?;
            counts.push(u64::try_from(row.n).unwrap_or(0));
        }
        Ok::<_, DatabaseError>(counts)
    })?;
    Ok((counts[0], counts.get(1).copied().unwrap_or(0)))
}

/// The next `limit` ids of `table` after `after`, in order.
pub(crate) fn source_ids(
    database: &Database,
    table: &str,
    id_column: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<i64>, DatabaseError> {
    let dialect = database.dialect();
    let column = dialect.quote(id_column);
    let statement = Statement::new(format!(
        "SELECT {} AS id FROM {} WHERE {column} > ? ORDER BY {column} LIMIT ?",
        as_bigint(dialect, &column),
        dialect.quote(table)
    ))
    .bind(Bind::BigInt(after))
    .bind(Bind::BigInt(i64::try_from(limit).unwrap_or(i64::MAX)));
    with_connection!(database, |conn| {
        statement
            .load::<Id>(conn)
            .map(|rows| rows.into_iter().map(|row| row.id).collect())
            .map_err(DatabaseError::query(format!("read the ids of {table}")))
    })
}

/// Which of `ids` are ids of `table`.
pub(crate) fn existing_ids(
    database: &Database,
    table: &str,
    id_column: &str,
    ids: &[i64],
) -> Result<Vec<i64>, DatabaseError> {
    let dialect = database.dialect();
    let column = dialect.quote(id_column);
    let statements: Vec<Statement> = bind_list(dialect, ids)
        .iter()
        .map(|list| {
            list.statement(format!(
                "SELECT {} AS id FROM {} WHERE {}",
                as_bigint(dialect, &column),
                dialect.quote(table),
                list.condition(&column)
            ))
        })
        .collect();
    let found: Vec<Id> = load_all(database, statements, &format!("look up ids of {table}"))?;
    Ok(found.into_iter().map(|row| row.id).collect())
}

/// The columns `verify` reads of a storage row.
fn stored_columns(dialect: Dialect, table: &SynchronizationDefinition) -> String {
    let reference = match table.key_suffix_column {
        Some(column) => integer_or_null(dialect, &dialect.quote(column)),
        None => "NULL".to_owned(),
    };
    format!(
        "{} AS {}, {} AS {}, {reference} AS reference",
        dialect.quote(storage_table::KEY),
        dialect.quote("key"),
        dialect.quote(storage_table::DATA),
        dialect.quote("data"),
    )
}

/// The next `limit` rows of `table` after the key `after` (empty starts), in key order;
/// `after` is a key as stored, UTF-8 or not.
pub(crate) fn storage_page(
    database: &Database,
    table: &SynchronizationDefinition,
    after: &[u8],
    limit: usize,
) -> Result<StoragePage, DatabaseError> {
    let dialect = database.dialect();
    let key = dialect.quote(storage_table::KEY);
    let (after_placeholder, after) = stored_text(dialect, after);
    let statement = Statement::new(format!(
        "SELECT {} FROM {} WHERE {key} > {after_placeholder} ORDER BY {key} LIMIT ?",
        stored_columns(dialect, table),
        dialect.quote(table.table)
    ))
    .bind(after)
    .bind(Bind::BigInt(i64::try_from(limit).unwrap_or(i64::MAX)));
    let raw: Vec<RawStoredRow> = with_connection!(database, |conn| {
        statement
            .load::<RawStoredRow>(conn)
            .map_err(DatabaseError::query(format!(
                "read a page of {}",
                table.table
            )))
    })?;
    let last = raw.last().map(|row| row.key.clone());
    Ok(StoragePage {
        rows: raw.into_iter().collect(),
        last,
    })
}

/// Whether `table`'s `key_suffix_column` is an integer column, so that its values are ids
/// (the source ids, as a rule): a text reference column (the health check's holds a key) is
/// compared as text, and its rows are never looked up by source ids.
pub(crate) fn integer_reference(
    database: &Database,
    table: &SynchronizationDefinition,
) -> Result<bool, DatabaseError> {
    let Some(column) = table.key_suffix_column else {
        return Ok(false);
    };
    Ok(database
        .table_columns(table.table)?
        .into_iter()
        .flatten()
        .any(|found| found.name == column && found.family == TypeFamily::Integer))
}

/// The rows of `table` whose reference is one of `references`; `integer` says whether the
/// reference column is an integer one ([`integer_reference`]), else they are compared as text.
pub(crate) fn storage_rows_of(
    database: &Database,
    table: &SynchronizationDefinition,
    references: &[i64],
    integer: bool,
) -> Result<StoredRows, DatabaseError> {
    match table.key_suffix_column {
        Some(column) if integer => rows_where(database, table, column, references),
        Some(column) => {
            let texts: Vec<String> = references.iter().map(i64::to_string).collect();
            rows_where(database, table, column, &texts)
        }
        None => Ok(StoredRows::default()),
    }
}

/// The rows of `table` whose key is one of `keys`.
pub(crate) fn storage_rows_by_key(
    database: &Database,
    table: &SynchronizationDefinition,
    keys: &[String],
) -> Result<StoredRows, DatabaseError> {
    rows_where(database, table, storage_table::KEY, keys)
}

/// The rows of `table` whose `column` is one of `values`.
fn rows_where<V: ListValue>(
    database: &Database,
    table: &SynchronizationDefinition,
    column: &str,
    values: &[V],
) -> Result<StoredRows, DatabaseError> {
    let dialect = database.dialect();
    let statements: Vec<Statement> = bind_list(dialect, values)
        .iter()
        .map(|list| {
            list.statement(format!(
                "SELECT {} FROM {} WHERE {}",
                stored_columns(dialect, table),
                dialect.quote(table.table),
                list.condition(&dialect.quote(column))
            ))
        })
        .collect();
    let raw: Vec<RawStoredRow> = load_all(
        database,
        statements,
        &format!("read rows of {}", table.table),
    )?;
    Ok(raw.into_iter().collect())
}

/// The rows of every one of `statements` (the shares of one list), in order.
fn load_all<R: FromRow>(
    database: &Database,
    statements: Vec<Statement>,
    operation: &str,
) -> Result<Vec<R>, DatabaseError> {
    with_connection!(database, |conn| {
        let mut rows = Vec::new();
        for statement in statements {
            rows.extend(
                statement
                    .load::<R>(conn)
                    .map_err(DatabaseError::query(operation))?,
            );
        }
        Ok::<_, DatabaseError>(rows)
    })
}

/// Which of `keys` are alias keys of `table`'s rows.
pub(crate) fn alias_keys(
    database: &Database,
    table: &SynchronizationDefinition,
    keys: &[String],
) -> Result<Vec<String>, DatabaseError> {
    if table.mappings.is_empty() {
        return Ok(Vec::new());
    }
    let dialect = database.dialect();
    let statements: Vec<Statement> = bind_list(dialect, keys)
        .iter()
        .map(|list| {
            let mut statement = Statement::new(format!(
                "SELECT {} AS {} FROM {} WHERE {} = ? AND {}",
                dialect.quote(storage_alias::ALIAS_KEY),
                dialect.quote("key"),
                dialect.quote(storage_alias::TABLE),
                dialect.quote(storage_alias::STORAGE_TABLE),
                list.condition(&dialect.quote(storage_alias::ALIAS_KEY))
            ));
            statement.push(Bind::Text(table.table.to_owned()));
            list.bind_to(&mut statement);
            statement
        })
        .collect();
    let found: Vec<Key> = load_all(database, statements, "look up alias keys")?;
    Ok(found.into_iter().map(|row| row.key).collect())
}

/// The rows of `table` whose key is one of `keys` (as stored, not UTF-8): deletes them, with
/// the sync outbox rows their deletion records, in one transaction; returns how many.
pub(crate) fn delete_unreadable(
    database: &Database,
    table: &SynchronizationDefinition,
    keys: &[Vec<u8>],
) -> Result<usize, DatabaseError> {
    let dialect = database.dialect();
    let statements: Vec<[Statement; 2]> = keys
        .iter()
        .map(|key| delete_unreadable_row(dialect, table.table, key))
        .collect();
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| {
            let mut deleted = 0;
            for [row, recorded] in &statements {
                deleted += row
                    .clone()
                    .execute(conn)
                    .map_err(DatabaseError::query(format!("delete from {}", table.table)))?;
                recorded
                    .clone()
                    .execute(conn)
                    .map_err(DatabaseError::query(
                        "take the deleted row out of the sync outbox",
                    ))?;
            }
            Ok::<_, DatabaseError>(deleted)
        })
    })
}

/// Records a `write` of each row of `table` whose key is one of `keys` in the sync outbox,
/// with its data as it is now; returns how many rows it recorded.
///
/// The rows are locked first (shared), in the same transaction: a publisher's uncommitted
/// change of one of them is waited for, so the data recorded is the newest and its version,
/// the clock after the wait, is newer than that change's. A change after the lock waits for
/// this transaction and carries a newer version still. On SQLite the write transaction's
/// lock does the same. Writers wait for at most this one chunk.
pub(crate) fn export(
    database: &Database,
    table: &SynchronizationDefinition,
    keys: &[String],
) -> Result<usize, DatabaseError> {
    let dialect = database.dialect();
    let key = dialect.quote(storage_table::KEY);
    let target = dialect.quote(table.table);
    let lock_clause = match dialect {
        Dialect::Sqlite => None,
        Dialect::Postgres => Some("FOR SHARE"),
        Dialect::Mysql => Some("LOCK IN SHARE MODE"),
    };
    let column_or_null = |present: bool, column: &str| {
        if present {
            dialect.quote(column)
        } else {
            "NULL".to_owned()
        }
    };
    // In the order the `SELECT` below gives them.
    let columns = SYNC_OUTBOX
        .written_columns()
        .iter()
        .map(|column| dialect.quote(column))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements: Vec<(Option<Statement>, Statement)> = Vec::new();
    for list in bind_list(dialect, keys) {
        let lock = lock_clause.map(|clause| {
            list.statement(format!(
                "SELECT {key} AS {} FROM {target} WHERE {} {clause}",
                dialect.quote("key"),
                list.condition(&key)
            ))
        });
        let mut insert = Statement::new(format!(
            "INSERT INTO {} ({columns}) SELECT ?, {key}, '{}', {}, NULL, {}, {}, {} FROM {target} \
             WHERE {} AND {} IS NOT NULL",
            dialect.quote(sync_outbox::TABLE),
            sync_outbox::WRITE,
            dialect.quote(storage_table::DATA),
            column_or_null(table.store, "store"),
            column_or_null(table.locale, "locale"),
            dialect.clock_micros(),
            list.condition(&key),
            dialect.quote(storage_table::DATA),
        ));
        insert.push(Bind::Text(table.table.to_owned()));
        list.bind_to(&mut insert);
        statements.push((lock, insert));
    }
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| {
            let mut recorded = 0;
            for (lock, insert) in &statements {
                if let Some(lock) = lock {
                    lock.clone()
                        .load::<Key>(conn)
                        .map_err(DatabaseError::query(format!(
                            "lock rows of {}",
                            table.table
                        )))?;
                }
                recorded += insert
                    .clone()
                    .execute(conn)
                    .map_err(DatabaseError::query(format!(
                        "export rows of {} to the sync outbox",
                        table.table
                    )))?;
            }
            Ok::<_, DatabaseError>(recorded)
        })
    })
}

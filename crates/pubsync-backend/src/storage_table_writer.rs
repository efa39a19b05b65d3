//! Writes storage tables: the rows a publisher computed, keyed by the key builder.
//!
//! A row is upserted on its unique `key`; a row whose `data` is unchanged is not rewritten
//! (its `updated_at` stays), which keeps re-publishing cheap and, on the sync path, quiet.
//!
//! Tables whose `synchronization` behaviour declares `mappings` also keep their rows' alias
//! keys, in the same transaction: the row's `alias_keys` column, and the side table
//! `pubsync_storage_alias` that database storage resolves alias keys through with an index.
//! Unlike the original, which merges new alias keys into the old ones (so a changed SKU keeps
//! its old alias for ever), a row holds only its current aliases. Tables without mappings run
//! no extra statement. The statements themselves, per dialect, are in `sql`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use diesel::RunQueryDsl as _;
use diesel::sql_types::Text;
use pubsync_database::{
    Bind, Database, DatabaseError, Dialect, Statement, WriteTransaction as _, bind_list, bucketed,
    with_connection,
};
use pubsync_shared::key::{KeyBuilders, SynchronizationData};
use pubsync_shared::message::TIMESTAMP_FIELD;
use pubsync_shared::synchronization::SynchronizationDefinition;
use pubsync_shared::version::Version;
use serde_json::{Map, Value};

use crate::listener::HandlerError;

/// Storage rows upserted per statement: a chunk takes the largest size that fits, so each
/// table's upsert comes in four shapes, each prepared once per connection (see
/// [`Statement`]). A multi-row statement is re-parsed in full each time otherwise, which on
/// SQLite cost about as much as the writes.
mod sql;

mod lock;
mod recording;
mod refusals;

pub use recording::{RecordedRow, RecordedWrite, Recording};
pub use refusals::{Refusal, Refusals};

pub(crate) use sql::delete_unreadable_row;
use sql::{
    Columns, KeyRow, delete_aliases, delete_rows, insert_aliases_sql, replaced_rows, upsert_sql,
};

const UPSERT_CHUNKS: [usize; 4] = [500, 100, 20, 1];

/// Alias rows inserted per statement (four parameters each).
const ALIAS_CHUNK: usize = 500;

/// The value of a storage table's `key_suffix_column`, which is also the key's reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// Writes storage tables: the storage-table half of a publisher's work (the key-value store is
/// written by the sync path, never here).
#[derive(Debug, Clone)]
pub struct StorageTableWriter {
    database: Database,
    keys: Arc<KeyBuilders>,
    /// The application's definitions by table, which win over the one a publisher passes.
    definitions: Arc<HashMap<&'static str, &'static SynchronizationDefinition>>,
    /// Set on a recording writer: writes are recorded here instead of written.
    recorder: Option<Recording>,
    /// The largest `data` of a row, in bytes of JSON; a larger one fails the write, or with
    /// `refusals` is refused alone.
    max_data_bytes: Option<usize>,
    /// Set on a refusing writer: rows it will not store are recorded here, and the others
    /// written.
    refusals: Option<Refusals>,
}

impl StorageTableWriter {
    /// A writer into `database`, building keys with `keys`.
    pub fn new(database: Database, keys: Arc<KeyBuilders>) -> Self {
        Self {
            database,
            keys,
            definitions: Arc::default(),
            recorder: None,
            max_data_bytes: None,
            refusals: None,
        }
    }

    /// The writer refusing rows whose `data` is longer than `limit` bytes of JSON: the write
    /// fails with an error naming the key, so that its event goes the way of every failing
    /// event (retries, then the error queue with the reason) instead of storing a payload
    /// the key-value store and every reader would choke on. The original only warns (at
    /// 256 KB).
    pub fn with_max_data_bytes(mut self, limit: usize) -> Self {
        self.max_data_bytes = Some(limit);
        self
    }

    /// The writer with the application's storage-table `definitions`: a publisher writing a
    /// table passes its own crate's definition, which a project may have overridden (another
    /// queue group, a mapping); the application's definition of that table is the one used.
    pub fn with_definitions(
        mut self,
        definitions: impl IntoIterator<Item = &'static SynchronizationDefinition>,
    ) -> Self {
        self.definitions = Arc::new(
            definitions
                .into_iter()
                .map(|definition| (definition.table, definition))
                .collect(),
        );
        self
    }

    /// A writer like this one that writes nothing: every write it is asked for is recorded in
    /// the returned [`Recording`] instead, and [`StorageTableWriter::publish`] takes no lock.
    pub fn recording(&self) -> (Self, Recording) {
        let recording = Recording::default();
        let writer = Self {
            recorder: Some(recording.clone()),
            ..self.clone()
        };
        (writer, recording)
    }

    /// A writer like this one that refuses a row it will not store (see
    /// [`with_max_data_bytes`](Self::with_max_data_bytes)) without failing the write: every
    /// row of that row's entity is left as it was, the other entities are written, and the
    /// refusal is recorded in the returned [`Refusals`]. The caller must look there after
    /// each successful call: a refused entity is a failure that returned `Ok`.
    pub fn refusing(&self) -> (Self, Refusals) {
        let refusals = Refusals::default();
        let writer = Self {
            refusals: Some(refusals.clone()),
            ..self.clone()
        };
        (writer, refusals)
    }

    /// The definition of `table`'s table this writer uses.
    fn definition<'a>(
        &self,
        table: &'a SynchronizationDefinition,
    ) -> &'a SynchronizationDefinition {
        self.definitions.get(table.table).copied().unwrap_or(table)
    }

    /// The storage key of `row` in `table`.
    pub fn key(&self, table: &SynchronizationDefinition, row: &RowKey) -> String {
        let table = self.definition(table);
        let data = SynchronizationData {
            reference: row.reference.as_key_part(),
            ..key_data(table, row)
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
        self.write_given(table, rows, deletes, &[])
    }

    /// Makes `rows` the only rows of the `references` in `table`, in one transaction: upserts
    /// them and deletes every other row whose `key_suffix_column` is one of `references`.
    ///
    /// This is how an entity published as several rows (one per store and locale) loses the
    /// rows it no longer has, such as those of a store it was unassigned from, without the
    /// publisher reading them first. `rows` must belong to `references`.
    pub fn replace(
        &self,
        table: &SynchronizationDefinition,
        references: &[Reference],
        rows: &[StorageRow],
    ) -> Result<WriteOutcome, DatabaseError> {
        self.write_given(table, rows, &[], references)
    }

    /// Publishes the entities `references` of `table`: locks them against every other
    /// publisher of the same entities (see [`lock`]), calls `read`, which re-reads them from
    /// the source tables and computes their rows, writes what it returns, commits, and only
    /// then releases the locks. Two publishers of one entity thus never interleave: the one
    /// that reads second reads what the first committed, or later, and commits last.
    ///
    /// `read` runs inside the write transaction, on other connections of the pool: it may only
    /// read (on SQLite the transaction holds the database's write lock, so a write of its own
    /// would wait for itself). With [`Publication::replace`] every other row of `references`
    /// is deleted, as [`StorageTableWriter::replace`] does.
    pub fn publish(
        &self,
        table: &SynchronizationDefinition,
        references: &[Reference],
        read: impl FnOnce() -> Result<Publication, HandlerError>,
    ) -> Result<WriteOutcome, HandlerError> {
        if let Some(recorder) = &self.recorder {
            let publication = read()?;
            let replacing = if publication.replace { references } else { &[] };
            recorder.record(
                self,
                table,
                &publication.rows,
                &publication.deletes,
                replacing,
            );
            return Ok(WriteOutcome::default());
        }
        self.write(table, references, Input::Read(Box::new(read)))
            .map_err(|failure| match failure {
                Failure::Database(error) => Box::new(error) as HandlerError,
                Failure::Read(error) => error,
            })
    }

    fn write_given(
        &self,
        table: &SynchronizationDefinition,
        rows: &[StorageRow],
        deletes: &[RowKey],
        replacing: &[Reference],
    ) -> Result<WriteOutcome, DatabaseError> {
        if let Some(recorder) = &self.recorder {
            recorder.record(self, table, rows, deletes, replacing);
            return Ok(WriteOutcome::default());
        }
        let input = Input::Given {
            rows,
            deletes,
            replacing,
        };
        self.write(table, &[], input)
            .map_err(|failure| match failure {
                Failure::Database(error) => error,
                Failure::Read(_) => unreachable!("given rows are not read"),
            })
    }

    /// Writes `input` into `table` in one transaction, holding the entity locks of `lock`
    /// from its start until it is over.
    fn write(
        &self,
        table: &SynchronizationDefinition,
        lock: &[Reference],
        input: Input<'_>,
    ) -> Result<WriteOutcome, Failure> {
        let table = self.definition(table);
        let dialect = self.database.dialect();
        let locks = lock::acquire(dialect, &lock::lock_keys(table.table, lock));
        let release = if locks.is_empty() {
            None
        } else {
            lock::release(dialect)
        };
        with_connection!(self.database, |conn| {
            let result = conn.write_transaction(|conn| {
                if dialect == Dialect::Postgres && !locks.is_empty() {
                    // The rows `replace` looks up must include what the publisher before
                    // committed while this one waited for its locks: a snapshot per statement,
                    // whatever the server's default isolation.
                    Statement::new("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .execute(conn)
                        .map_err(DatabaseError::query("set the isolation level"))?;
                }
                for statement in &locks {
                    if dialect == Dialect::Mysql {
                        let acquired: Vec<lock::Acquired> =
                            statement
                                .clone()
                                .load(conn)
                                .map_err(DatabaseError::query(format!(
                                    "lock entities of {}",
                                    table.table
                                )))?;
                        if acquired.first().and_then(|row| row.acquired) != Some(1) {
                            return Err(Failure::Read(
                                format!(
                                    "another publisher of {} held its entities for more than {} s",
                                    table.table,
                                    lock::MYSQL_LOCK_TIMEOUT_SECONDS
                                )
                                .into(),
                            ));
                        }
                    } else {
                        statement
                            .clone()
                            .execute(conn)
                            .map_err(DatabaseError::query(format!(
                                "lock entities of {}",
                                table.table
                            )))?;
                    }
                }
                let publication;
                let (rows, deletes, replacing) = match input {
                    Input::Given {
                        rows,
                        deletes,
                        replacing,
                    } => (rows, deletes, replacing),
                    Input::Read(read) => {
                        publication = read().map_err(Failure::Read)?;
                        let replacing = if publication.replace { lock } else { &[] };
                        (&publication.rows[..], &publication.deletes[..], replacing)
                    }
                };
                let columns = Columns::of(table);
                let mut upserts = self.upserts(table, &columns, rows);
                let refused = self.refuse(table, &mut upserts)?;
                let kept: Vec<Reference>;
                let replacing = if refused.is_empty() {
                    replacing
                } else {
                    kept = replacing
                        .iter()
                        .filter(|reference| !refused.contains(reference))
                        .cloned()
                        .collect();
                    &kept[..]
                };
                let mut delete_keys: Vec<String> = deletes
                    .iter()
                    .filter(|key| !refused.contains(&key.reference))
                    .map(|key| self.key(table, key))
                    .collect();
                let mut outcome = WriteOutcome::default();
                let written: HashSet<&str> =
                    upserts.iter().map(|upsert| upsert.key.as_str()).collect();
                let mut unreadable_keys = Vec::new();
                for statement in replaced_rows(dialect, table, replacing) {
                    let existing: Vec<KeyRow> = statement
                        .load(conn)
                        .map_err(DatabaseError::query(format!("read {}", table.table)))?;
                    for row in existing {
                        match String::from_utf8(row.key) {
                            Ok(key) if written.contains(key.as_str()) => {}
                            Ok(key) => delete_keys.push(key),
                            Err(error) => unreadable_keys.push(error.into_bytes()),
                        }
                    }
                }
                for key in unreadable_keys {
                    tracing::warn!(table = table.table, key = %String::from_utf8_lossy(&key), "deleting a storage row whose key is not UTF-8");
                    let [row, recorded] = delete_unreadable_row(dialect, table.table, &key);
                    outcome.deleted += row
                        .execute(conn)
                        .map_err(DatabaseError::query(format!("delete from {}", table.table)))?;
                    recorded.execute(conn).map_err(DatabaseError::query(
                        "take the deleted row out of the sync outbox",
                    ))?;
                }
                for range in bucketed(upserts.len(), &UPSERT_CHUNKS) {
                    let chunk = &upserts[range];
                    outcome.written += upsert_statement(dialect, table, &columns, chunk)
                        .execute(conn)
                        .map_err(DatabaseError::query(format!("upsert into {}", table.table)))?;
                    if !columns.alias_keys {
                        continue;
                    }
                    // The chunk's rows give up their alias rows and take their current ones;
                    // an alias another row held moves to the row that holds it now.
                    let keys: Vec<&str> = chunk.iter().map(|upsert| upsert.key.as_str()).collect();
                    for list in bind_list(dialect, &keys) {
                        delete_aliases(dialect, table.table, &list)
                            .execute(conn)
                            .map_err(DatabaseError::query(format!(
                                "delete aliases of {}",
                                table.table
                            )))?;
                    }
                    let aliases = distinct_aliases(chunk);
                    for aliases in aliases.chunks(ALIAS_CHUNK) {
                        let sql = insert_aliases_sql(dialect, aliases.len());
                        let mut query = diesel::sql_query(sql).into_boxed();
                        for (alias_key, storage_key, value) in aliases {
                            query = query
                                .bind::<Text, _>(*alias_key)
                                .bind::<Text, _>(table.table)
                                .bind::<Text, _>(*storage_key)
                                .bind::<Text, _>(*value);
                        }
                        query.execute(conn).map_err(DatabaseError::query(format!(
                            "write aliases of {}",
                            table.table
                        )))?;
                    }
                }
                for list in bind_list(dialect, &delete_keys) {
                    outcome.deleted += delete_rows(dialect, table.table, &list)
                        .execute(conn)
                        .map_err(DatabaseError::query(format!("delete from {}", table.table)))?;
                    if columns.alias_keys {
                        delete_aliases(dialect, table.table, &list)
                            .execute(conn)
                            .map_err(DatabaseError::query(format!(
                                "delete aliases of {}",
                                table.table
                            )))?;
                    }
                }
                Ok::<_, Failure>(outcome)
            });
            if let Some(release) = &release {
                release
                    .clone()
                    .execute(conn)
                    .map_err(DatabaseError::query("release entity locks"))?;
            }
            result
        })
    }

    /// Takes the rows whose data is over the size limit out of `upserts`, with every other
    /// row of their entities, and returns those entities; without a limit, none. A writer
    /// that is not [`refusing`](Self::refusing) fails instead.
    fn refuse(
        &self,
        table: &SynchronizationDefinition,
        upserts: &mut Vec<Upsert<'_>>,
    ) -> Result<HashSet<Reference>, DatabaseError> {
        let mut refused = HashSet::new();
        let Some(limit) = self.max_data_bytes else {
            return Ok(refused);
        };
        for large in upserts.iter().filter(|upsert| upsert.data.len() > limit) {
            let reason = format!(
                "its data is {} bytes of JSON, more than the {limit} allowed ([sync] max_payload_bytes)",
                large.data.len()
            );
            let Some(refusals) = &self.refusals else {
                return Err(DatabaseError::Refused {
                    operation: format!("writing {} into {}", large.key, table.table),
                    reason,
                });
            };
            let reference = &large.row.key.reference;
            if refused.insert(reference.clone()) {
                refusals.record(Refusal {
                    table: table.table.to_owned(),
                    reference: reference.clone(),
                    reason: format!("{} refused: {reason}", large.key),
                });
            }
        }
        if !refused.is_empty() {
            upserts.retain(|upsert| !refused.contains(&upsert.row.key.reference));
        }
        Ok(refused)
    }

    /// The rows to upsert, with their keys, data and alias keys.
    fn upserts<'a>(
        &self,
        table: &SynchronizationDefinition,
        columns: &Columns,
        rows: &'a [StorageRow],
    ) -> Vec<Upsert<'a>> {
        let timestamp = Version::now().as_seconds();
        rows.iter()
            .map(|row| {
                let (aliases, alias_keys) = if columns.alias_keys {
                    let (aliases, column) = row_aliases(table, &self.keys, row, timestamp);
                    (aliases, Some(column))
                } else {
                    (Vec::new(), None)
                };
                Upsert {
                    key: self.key(table, &row.key),
                    data: serde_json::to_string(&row.data).expect("json serialises"),
                    alias_keys,
                    aliases,
                    row,
                }
            })
            .collect()
    }
}

/// The upsert of `chunk`, its values bound.
fn upsert_statement(
    dialect: Dialect,
    table: &SynchronizationDefinition,
    columns: &Columns,
    chunk: &[Upsert<'_>],
) -> Statement {
    let mut statement = Statement::new(upsert_sql(dialect, table, columns, chunk.len()));
    for Upsert {
        key,
        data,
        alias_keys,
        row,
        ..
    } in chunk
    {
        statement
            .push(Bind::Text(key.clone()))
            .push(Bind::Text(data.clone()));
        match (&columns.reference, &row.key.reference) {
            (Some(_), Reference::Int(value)) => {
                statement.push(Bind::BigInt(*value));
            }
            (Some(_), Reference::Text(value)) => {
                statement.push(Bind::Text(value.clone()));
            }
            (Some(_), Reference::None) => {
                statement.push(Bind::NullableText(None));
            }
            (None, _) => {}
        }
        if table.store {
            statement.push(Bind::NullableText(row.key.store.clone()));
        }
        if table.locale {
            statement.push(Bind::NullableText(row.key.locale.clone()));
        }
        if columns.alias_keys {
            statement.push(Bind::NullableText(alias_keys.clone()));
        }
    }
    statement
}

/// What a write is given: rows computed already, or a read that computes them once the
/// entity locks are held.
enum Input<'a> {
    Given {
        rows: &'a [StorageRow],
        deletes: &'a [RowKey],
        replacing: &'a [Reference],
    },
    Read(Box<dyn FnOnce() -> Result<Publication, HandlerError> + 'a>),
}

/// Why a write failed: the database, or the publisher's read.
enum Failure {
    Database(DatabaseError),
    Read(HandlerError),
}

impl From<DatabaseError> for Failure {
    fn from(error: DatabaseError) -> Self {
        Self::Database(error)
    }
}

impl From<diesel::result::Error> for Failure {
    fn from(error: diesel::result::Error) -> Self {
        Self::Database(error.into())
    }
}

/// The rows a publisher computed for its entities, as [`StorageTableWriter::publish`] writes
/// them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Publication {
    rows: Vec<StorageRow>,
    deletes: Vec<RowKey>,
    replace: bool,
}

impl Publication {
    /// Upserts `rows` and deletes the rows of `deletes`.
    pub fn apply(rows: Vec<StorageRow>, deletes: Vec<RowKey>) -> Self {
        Self {
            rows,
            deletes,
            replace: false,
        }
    }

    /// Makes `rows` the only rows of the published references: every other row of theirs is
    /// deleted.
    pub fn replace(rows: Vec<StorageRow>) -> Self {
        Self {
            rows,
            deletes: Vec::new(),
            replace: true,
        }
    }
}

/// The store and locale of `row` that go into its keys: only those `table` has.
fn key_data(table: &SynchronizationDefinition, row: &RowKey) -> SynchronizationData {
    SynchronizationData {
        reference: None,
        store: row.store.clone().filter(|_| table.store),
        locale: row.locale.clone().filter(|_| table.locale),
    }
}

/// The alias keys of `row` in `table` with their values, `{"id":…,"_timestamp":…}` as JSON
/// text, and the row's `alias_keys` column: a JSON object of the same.
fn row_aliases(
    table: &SynchronizationDefinition,
    keys: &KeyBuilders,
    row: &StorageRow,
    timestamp: f64,
) -> (Vec<(String, String)>, String) {
    let entries = match &row.data {
        Value::Object(data) => keys.alias_entries(table, &key_data(table, &row.key), data),
        _ => Vec::new(),
    };
    let mut column = Map::new();
    let aliases = entries
        .into_iter()
        .map(|(alias_key, id)| {
            let mut value = Map::new();
            value.insert("id".to_owned(), id);
            value.insert(TIMESTAMP_FIELD.to_owned(), timestamp.into());
            let value = Value::Object(value);
            let text = value.to_string();
            column.insert(alias_key.clone(), value);
            (alias_key, text)
        })
        .collect();
    (aliases, Value::Object(column).to_string())
}

/// One row to upsert, with what its statements bind.
struct Upsert<'a> {
    key: String,
    data: String,
    /// The `alias_keys` column, for tables with mappings.
    alias_keys: Option<String>,
    /// The row's alias keys and their values (JSON text).
    aliases: Vec<(String, String)>,
    row: &'a StorageRow,
}

/// `(alias_key, storage_key, value)` of every alias of `chunk`, each alias key once: the last
/// row that claims it wins (PostgreSQL refuses to upsert one key twice in a statement).
fn distinct_aliases<'a>(chunk: &'a [Upsert<'_>]) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut aliases: Vec<(&str, &str, &str)> = Vec::new();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for upsert in chunk {
        for (alias_key, value) in &upsert.aliases {
            let alias = (alias_key.as_str(), upsert.key.as_str(), value.as_str());
            match position.get(alias_key.as_str()) {
                Some(&index) => aliases[index] = alias,
                None => {
                    position.insert(alias_key, aliases.len());
                    aliases.push(alias);
                }
            }
        }
    }
    aliases
}

#[cfg(test)]
mod tests;

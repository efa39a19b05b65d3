//! The two outboxes, read and emptied the same way: the outbox of captured changes (relayed by
//! [`crate::relay`]) and the sync outbox of storage-row changes (relayed by [`crate::sync`]).
//!
//! A relay reads a chunk of rows in id order, hands them on, and only then deletes the rows it
//! read. A crash in between hands them on again, which idempotent consumers shrug off. On
//! PostgreSQL and MySQL rows are deleted by their ids, never by a range: a row with a lower id
//! that commits later is not skipped. On SQLite rows commit in the order of their ids (one
//! writer at a time, ids never reused), so a chunk read there is the whole range of its ids,
//! and is deleted as that range.
//!
//! On PostgreSQL and MySQL a relay *claims* its chunk ([`Outbox::claim`]): it reads the rows
//! `FOR UPDATE SKIP LOCKED` in a transaction that stays open until they are handed on and
//! deleted, so that several workers share the outbox, each row relayed by one of them, instead
//! of all of them relaying the same oldest rows. The locks hold back no writer: capture only
//! inserts, and MySQL reads at `READ COMMITTED`, which takes no gap locks. SQLite has one
//! writer at a time, and a transaction held open there would hold back every writer (the
//! database queue's too), so there a relay reads and deletes without a claim.

use diesel::Connection as _;
use diesel::RunQueryDsl as _;
use diesel::connection::SimpleConnection as _;
use pubsync_database::names::{outbox, sync_outbox};
use pubsync_database::{
    Bind, Database, DatabaseError, Dialect, FromRow, Statement, WriteTransaction as _, bind_list,
    with_connection,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An outbox table: its name, its id column, and the columns a relay reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outbox {
    /// What errors call it: `outbox`, `sync outbox`.
    name: &'static str,
    table: &'static str,
    id_column: &'static str,
    columns: &'static [&'static str],
}

/// The outbox the capture triggers write.
pub(crate) const EVENT_OUTBOX: Outbox = Outbox {
    name: "outbox",
    table: outbox::TABLE,
    id_column: outbox::ID,
    columns: &[outbox::ID, outbox::DATA],
};

/// The outbox the storage tables' sync triggers write.
pub(crate) const SYNC_OUTBOX: Outbox = Outbox {
    name: "sync outbox",
    table: sync_outbox::TABLE,
    id_column: sync_outbox::ID,
    columns: &[
        sync_outbox::ID,
        sync_outbox::STORAGE_TABLE,
        sync_outbox::STORAGE_KEY,
        sync_outbox::OPERATION,
        sync_outbox::DATA,
        sync_outbox::PREVIOUS_DATA,
        sync_outbox::STORE,
        sync_outbox::LOCALE,
        sync_outbox::VERSION,
    ],
};

impl Outbox {
    /// The columns a row is written with: all but the generated id, in the order of
    /// `columns`.
    pub(crate) fn written_columns(self) -> &'static [&'static str] {
        &self.columns[1..]
    }

    /// The first `limit` rows in id order, above `after` when it is given; with `lock`, the
    /// clause that claims them.
    fn chunk_statement(self, limit: usize, after: Option<i64>, lock: &str) -> Statement {
        let (columns, table, id) = (self.columns.join(", "), self.table, self.id_column);
        let statement = match after {
            Some(after) => Statement::new(format!(
                "SELECT {columns} FROM {table} WHERE {id} > ? ORDER BY {id} LIMIT ?{lock}"
            ))
            .bind(Bind::BigInt(after)),
            None => Statement::new(format!(
                "SELECT {columns} FROM {table} ORDER BY {id} LIMIT ?{lock}"
            )),
        };
        statement.bind(Bind::BigInt(limit as i64))
    }

    /// The first `limit` rows in id order, above `after` when it is given.
    fn read_chunk<R: FromRow>(
        self,
        database: &Database,
        limit: usize,
        after: Option<i64>,
    ) -> Result<Vec<R>, DatabaseError> {
        let statement = self.chunk_statement(limit, after, "");
        with_connection!(database, |conn| {
            statement
                .load::<R>(conn)
                .map_err(DatabaseError::query(format!("read the {}", self.name)))
        })
    }

    /// Claims the first `limit` rows in id order that no other relay holds (see the module
    /// documentation): they are this relay's until [`Claim::relayed`] deletes them, or until
    /// the claim is dropped, which hands them back untouched. `id_of` reads a row's id.
    ///
    /// `after`, when given, is the last id of a claim of this relay's that is still being
    /// handed on, whose rows a claim taken beside it must not take again. PostgreSQL and MySQL
    /// skip them as locked; SQLite, which does not lock them, reads above `after`: there rows
    /// commit in the order of their ids (one writer at a time, ids never reused), so nothing
    /// below it is left behind.
    pub(crate) async fn claim<R>(
        self,
        database: &Database,
        limit: usize,
        after: Option<i64>,
        id_of: fn(&R) -> i64,
    ) -> Result<Claim<R>, DatabaseError>
    where
        R: FromRow + Send + 'static,
    {
        if database.dialect() == Dialect::Sqlite {
            let rows: Vec<R> = database
                .blocking(move |db| self.read_chunk(db, limit, after))
                .await?;
            return Ok(Claim::new(self, database, rows, id_of, None));
        }
        let (rows_sent, rows_received) = oneshot::channel();
        let (relayed, relayed_received) = oneshot::channel::<()>();
        let statement = self.chunk_statement(limit, None, " FOR UPDATE SKIP LOCKED");
        let db = database.clone();
        let holder = tokio::task::spawn_blocking(move || {
            let operation = format!("claim {} rows", self.name);
            with_connection!(db, |conn| {
                if db.dialect() == Dialect::Mysql {
                    conn.batch_execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .map_err(DatabaseError::query(operation.as_str()))?;
                }
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let rows = match statement.load::<R>(conn) {
                        Ok(rows) => rows,
                        Err(error) => {
                            let _ = rows_sent
                                .send(Err(DatabaseError::query(operation.as_str())(error)));
                            return Ok(());
                        }
                    };
                    let ids: Vec<i64> = rows.iter().map(id_of).collect();
                    if ids.is_empty() || rows_sent.send(Ok(rows)).is_err() {
                        return Ok(());
                    }
                    if relayed_received.blocking_recv().is_err() {
                        // Not relayed: the rows go back as they were.
                        return Ok(());
                    }
                    for statement in self.delete_statements(db.dialect(), &ids) {
                        statement.execute(conn)?;
                    }
                    Ok(())
                })
                .map_err(DatabaseError::query(operation.as_str()))
            })
        });
        match rows_received.await {
            Ok(Ok(rows)) => Ok(Claim::new(
                self,
                database,
                rows,
                id_of,
                Some(Held { relayed, holder }),
            )),
            Ok(Err(error)) => {
                holder.await.ok();
                Err(error)
            }
            Err(_) => match holder.await {
                Ok(result) => result.and(Ok(Claim::new(self, database, Vec::new(), id_of, None))),
                Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
            },
        }
    }

    /// Whether the outbox holds no row.
    pub(crate) fn is_empty(self, database: &Database) -> Result<bool, DatabaseError> {
        #[derive(diesel::QueryableByName)]
        #[allow(dead_code)]
        struct Id {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
        }
        let sql = format!(
            "SELECT {} AS id FROM {} LIMIT 1",
            self.id_column, self.table
        );
        with_connection!(database, |conn| {
            Statement::new(sql.as_str())
                .load::<Id>(conn)
                .map(|rows| rows.is_empty())
                .map_err(DatabaseError::query(format!("look into the {}", self.name)))
        })
    }

    /// Deletes the rows of a chunk SQLite read, whose ids are `ids` (in order), in one
    /// transaction: the range from the first to the last, which is those rows and no other
    /// (a row written since has a higher id, see [`Outbox::claim`]) and costs SQLite one
    /// walk along the table instead of a look-up per id.
    fn delete_read(self, database: &Database, ids: &[i64]) -> Result<(), DatabaseError> {
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(());
        };
        let sql = format!(
            "DELETE FROM {} WHERE {id} >= ? AND {id} <= ?",
            self.table,
            id = self.id_column
        );
        let statement = Statement::new(sql)
            .bind(Bind::BigInt(*first))
            .bind(Bind::BigInt(*last));
        let operation = format!("delete relayed {} rows", self.name);
        with_connection!(database, |conn| {
            conn.write_transaction(|conn| {
                statement
                    .execute(conn)
                    .map_err(DatabaseError::query(operation.as_str()))
            })
        })
        .map(drop)
    }

    /// The statements that delete the rows whose ids are `ids`.
    fn delete_statements(self, dialect: Dialect, ids: &[i64]) -> Vec<Statement> {
        bind_list(dialect, ids)
            .iter()
            .map(|list| {
                list.statement(format!(
                    "DELETE FROM {} WHERE {}{}",
                    self.table,
                    list.condition(self.id_column),
                    list.index_order(self.id_column)
                ))
            })
            .collect()
    }
}

/// A chunk of outbox rows one relay holds (see [`Outbox::claim`]).
pub(crate) struct Claim<R> {
    outbox: Outbox,
    database: Database,
    /// The rows, in id order; empty when the outbox held none that was free.
    pub(crate) rows: Vec<R>,
    ids: Vec<i64>,
    /// Where the rows are held in an open transaction.
    held: Option<Held>,
}

/// A claim's open transaction: the word that the rows were relayed, and the thread holding
/// the transaction, which deletes them on that word and commits.
struct Held {
    relayed: oneshot::Sender<()>,
    holder: JoinHandle<Result<(), DatabaseError>>,
}

impl<R> Claim<R> {
    fn new(
        outbox: Outbox,
        database: &Database,
        rows: Vec<R>,
        id_of: fn(&R) -> i64,
        held: Option<Held>,
    ) -> Self {
        let ids = rows.iter().map(id_of).collect();
        Self {
            outbox,
            database: database.clone(),
            rows,
            ids,
            held,
        }
    }

    /// The ids of the claimed rows.
    pub(crate) fn ids(&self) -> &[i64] {
        &self.ids
    }

    /// Deletes the claimed rows: they were handed on.
    pub(crate) async fn relayed(self) -> Result<(), DatabaseError> {
        match self.held {
            Some(Held { relayed, holder }) => {
                let _ = relayed.send(());
                match holder.await {
                    Ok(result) => result,
                    Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
                }
            }
            // Only SQLite reads without holding: its chunk is deleted as the range it was.
            None => {
                let (outbox, ids) = (self.outbox, self.ids);
                self.database
                    .blocking(move |db| outbox.delete_read(db, &ids))
                    .await
            }
        }
    }
}

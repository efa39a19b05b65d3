//! The two outboxes, read and emptied the same way: the outbox of captured changes (relayed by
//! [`crate::relay`]) and the sync outbox of storage-row changes (relayed by [`crate::sync`]).
//!
//! A relay reads a chunk of rows in id order, hands them on, and only then deletes the rows it
//! read, by id. A crash in between hands them on again, which idempotent consumers shrug off.
//! Rows are deleted by their ids, never by a range: a row with a lower id that commits later
//! is not skipped.

use diesel::RunQueryDsl as _;
use pubsync_database::names::{outbox, sync_outbox};
use pubsync_database::{
    Bind, Database, DatabaseError, FromRow, Statement, WriteTransaction as _, bind_list,
    with_connection,
};

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

    /// The first `limit` rows in id order.
    pub(crate) fn read_chunk<R: FromRow>(
        self,
        database: &Database,
        limit: usize,
    ) -> Result<Vec<R>, DatabaseError> {
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT ?",
            self.columns.join(", "),
            self.table,
            self.id_column
        );
        let statement = Statement::new(sql).bind(Bind::BigInt(limit as i64));
        with_connection!(database, |conn| {
            statement
                .load::<R>(conn)
                .map_err(DatabaseError::query(format!("read the {}", self.name)))
        })
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

    /// Deletes the rows whose ids are `ids`, in one transaction.
    pub(crate) fn delete(self, database: &Database, ids: &[i64]) -> Result<(), DatabaseError> {
        let lists = bind_list(database.dialect(), ids);
        let operation = format!("delete relayed {} rows", self.name);
        let statements: Vec<Statement> = lists
            .iter()
            .map(|list| {
                list.statement(format!(
                    "DELETE FROM {} WHERE {}{}",
                    self.table,
                    list.condition(self.id_column),
                    list.index_order(self.id_column)
                ))
            })
            .collect();
        with_connection!(database, |conn| {
            conn.write_transaction(|conn| {
                for statement in statements {
                    statement
                        .execute(conn)
                        .map_err(DatabaseError::query(operation.as_str()))?;
                }
                Ok(())
            })
        })
    }
}

//! The rows of the queue table, and the blocking functions that run the [`Statements`] on a
//! connection of the [`Database`]: insert messages, take (lease) them, settle them and count
//! them. Inserts, takes and settlements each run in one write transaction.

use diesel::RunQueryDsl as _;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Binary, Integer, Text};
use pubsync_database::{
    Database, DatabaseError, Dialect, Statement, WriteTransaction as _, bind_list, now_millis,
    with_connection,
};
use pubsync_queue_extension::{DeliveryTag, Settlement};

use crate::statements::Statements;

/// A message to insert.
pub(crate) struct NewRow<'a> {
    pub(crate) queue: &'a str,
    pub(crate) body: &'a [u8],
    pub(crate) available_at: i64,
}

#[derive(diesel::QueryableByName)]
pub(crate) struct TakenRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id_queue_message: i64,
    #[diesel(sql_type = Binary)]
    pub(crate) body: Vec<u8>,
    #[diesel(sql_type = Integer)]
    pub(crate) delivery_count: i32,
    /// Unix milliseconds.
    #[diesel(sql_type = BigInt)]
    pub(crate) available_at: i64,
}

#[derive(diesel::QueryableByName)]
struct RowId {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id_queue_message: i64,
}

#[derive(diesel::QueryableByName)]
pub(crate) struct Counts {
    #[diesel(sql_type = BigInt)]
    pub(crate) ready: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) total: i64,
}

/// `sql` as a query whose parameters are bound one by one in a loop, for `conn`'s backend.
fn boxed_query<'f, C: diesel::Connection>(
    _conn: &C,
    sql: String,
) -> BoxedSqlQuery<'f, C::Backend, SqlQuery> {
    diesel::sql_query(sql).into_boxed()
}

/// Inserts `rows` with multi-row `INSERT`s on `$conn`, inside the caller's transaction.
macro_rules! insert_chunks {
    ($conn:ident, $statements:expr, $rows:expr) => {{
        let mut result: diesel::QueryResult<()> = Ok(());
        for chunk in $rows.chunks($statements.rows_per_insert()) {
            let mut query = boxed_query($conn, $statements.insert(chunk.len()));
            for row in chunk {
                query = query
                    .bind::<Text, _>(row.queue)
                    .bind::<Binary, _>(row.body)
                    .bind::<BigInt, _>(row.available_at);
            }
            if let Err(error) = query.execute($conn) {
                result = Err(error);
                break;
            }
        }
        result
    }};
}

/// Runs `statements` in order on `conn`, inside the caller's transaction; returns the rows
/// they changed.
fn run_all<C>(conn: &mut C, statements: Vec<Statement>) -> diesel::QueryResult<usize>
where
    C: diesel::Connection,
    Statement: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    let mut changed = 0;
    for statement in statements {
        changed += statement.execute(conn)?;
    }
    Ok(changed)
}

pub(crate) fn insert_rows(
    database: &Database,
    statements: &Statements,
    rows: &[NewRow<'_>],
) -> Result<(), DatabaseError> {
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| insert_chunks!(conn, statements, rows))
            .map_err(DatabaseError::query("insert messages"))
    })
}

pub(crate) fn take_rows(
    database: &Database,
    statements: &Statements,
    queue: &str,
    consumer_id: &str,
    lease_millis: i64,
    limit: i64,
    peek_first: bool,
) -> Result<Vec<TakenRow>, DatabaseError> {
    with_connection!(database, |conn| {
        if peek_first {
            let now = now_millis();
            let ready = diesel::sql_query(statements.peek())
                .bind::<Text, _>(queue)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(now)
                .load::<RowId>(conn)
                .map_err(DatabaseError::query("look for messages"))?;
            if ready.is_empty() {
                return Ok(Vec::new());
            }
        }
        conn.write_transaction(|conn| {
            let now = now_millis();
            if statements.dialect == Dialect::Mysql {
                // No `UPDATE … RETURNING` and no `LIMIT` in an `IN` subquery: lock the rows
                // (skipping other consumers' locks), lease them by id, then read them.
                let ids: Vec<i64> = diesel::sql_query(statements.select_for_take())
                    .bind::<Text, _>(queue)
                    .bind::<BigInt, _>(now)
                    .bind::<BigInt, _>(now)
                    .bind::<BigInt, _>(limit)
                    .load::<RowId>(conn)?
                    .into_iter()
                    .map(|row| row.id_queue_message)
                    .collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut taken = Vec::with_capacity(ids.len());
                for list in bind_list(statements.dialect, &ids) {
                    statements
                        .lease_ids(&list, consumer_id, now.saturating_add(lease_millis))
                        .execute(conn)?;
                    taken.extend(statements.fetch_ids(&list).load::<TakenRow>(conn)?);
                }
                return Ok(taken);
            }
            diesel::sql_query(statements.take())
                .bind::<Text, _>(consumer_id)
                .bind::<BigInt, _>(now.saturating_add(lease_millis))
                .bind::<Text, _>(queue)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(limit)
                .load::<TakenRow>(conn)
        })
        .map_err(DatabaseError::query("take messages"))
    })
}

/// Settles in one transaction; returns how many acknowledged rows were deleted.
pub(crate) fn settle_rows(
    database: &Database,
    statements: &Statements,
    queue: &str,
    error_queue: &str,
    consumer_id: &str,
    settlement: &Settlement,
) -> Result<usize, DatabaseError> {
    let now = now_millis();
    let new_rows: Vec<NewRow<'_>> = settlement
        .error
        .iter()
        .map(|body| NewRow {
            queue: error_queue,
            body,
            available_at: now,
        })
        .chain(settlement.retry.iter().map(|(body, delay)| NewRow {
            queue,
            body,
            available_at: now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        }))
        .collect();
    let ids = |tags: &[DeliveryTag]| -> Vec<i64> {
        tags.iter()
            .filter_map(|tag| i64::try_from(tag.0).ok())
            .collect()
    };
    let acknowledge: Vec<Statement> = bind_list(statements.dialect, &ids(&settlement.acknowledge))
        .iter()
        .map(|list| statements.acknowledge(list, queue, consumer_id))
        .collect();
    let release: Vec<Statement> = bind_list(statements.dialect, &ids(&settlement.release))
        .iter()
        .map(|list| statements.release(list, queue, consumer_id))
        .collect();
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| {
            insert_chunks!(conn, statements, new_rows)?;
            let deleted = run_all(conn, acknowledge)?;
            run_all(conn, release)?;
            Ok(deleted)
        })
        .map_err(DatabaseError::query("settle messages"))
    })
}

/// Clears every lease `consumer_id` holds; returns how many.
pub(crate) fn release_all_rows(
    database: &Database,
    statements: &Statements,
    consumer_id: &str,
) -> Result<usize, DatabaseError> {
    let statement = statements.release_all(consumer_id);
    with_connection!(database, |conn| statement
        .execute(conn)
        .map_err(DatabaseError::query("release leased messages")))
}

pub(crate) fn count_rows(
    database: &Database,
    statements: &Statements,
    queue: &str,
) -> Result<Counts, DatabaseError> {
    let now = now_millis();
    with_connection!(database, |conn| {
        diesel::sql_query(statements.depth())
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(now)
            .bind::<Text, _>(queue)
            .get_result::<Counts>(conn)
            .map_err(DatabaseError::query("count messages"))
    })
}

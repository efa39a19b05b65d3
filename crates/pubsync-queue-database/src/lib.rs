//! A durable queue kept in the application database: the queue of the embedded default, where
//! pubsync runs on one database and no broker.
//!
//! [`DatabaseQueue`] implements the [`Queue`] contract over one table,
//! `pubsync_queue_message`, with one row per message. A consumer takes rows with a *lease*
//! (`lease_owner`, `lease_until`); a row whose lease runs out before it is settled is delivered
//! again, so a worker that dies loses nothing.
//!
//! This crate does not create the table (`pubsync setup` applies the generated migrations from
//! `schema/pubsync_queue.schema.xml`), does not decode bodies, and does not extend leases: a
//! chunk must be settled within the lease or it is delivered to another consumer as well.
//!
//! It runs on SQLite, PostgreSQL and MySQL/MariaDB. The statements are built in one place
//! (the private `Statements`), from [`Dialect`]'s placeholders and quoting; the
//! database-specific parts (how rows are taken, bind-parameter limits) are marked there, and
//! lists of message ids are bound as `pubsync_database::bind_list` binds them.
#![deny(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl as _;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Binary, Integer, Text};
use pubsync_database::names::queue_message;
use pubsync_database::{
    Bind, BoundList, Database, DatabaseError, Dialect, Statement, WriteTransaction as _, bind_list,
    now_millis, with_connection,
};
use pubsync_queue_extension::{
    Delivery, DeliveryTag, Queue, QueueDepth, QueueError, SendError, Settlement, error_queue_name,
};

#[cfg(feature = "testing")]
pub mod testing;

/// The table that holds the messages.
pub const TABLE: &str = queue_message::TABLE;

/// The longest queue name the table holds (`queue_name VARCHAR(255)`), in bytes.
pub const MAX_QUEUE_NAME_BYTES: usize = 255;

/// The first pause between two polls of an empty queue; it doubles up to
/// [`DatabaseQueueOptions::max_poll_interval`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Most rows in one multi-row `INSERT`, whatever the bind-parameter limit allows; keeps
/// statement texts small.
const MAX_ROWS_PER_INSERT: usize = 1_000;

/// What can go wrong in this crate beyond the driver's own errors; found as the `source` of a
/// [`QueueError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseQueueError {
    /// The queue table has not been created.
    #[error("table {table} does not exist in {url}; run `pubsync setup` to create it")]
    MissingTable {
        /// The missing table.
        table: &'static str,
        /// The database (password removed).
        url: String,
    },
}

/// Settings of a [`DatabaseQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseQueueOptions {
    /// How long a received message stays invisible to other consumers. A message not settled
    /// within it is delivered again (to any consumer, this one included). Default 30 s; at
    /// least 1 ms is used.
    pub lease: Duration,
    /// The longest pause between two polls while `receive` waits on an empty queue. Polls start
    /// a few milliseconds apart and back off to this. Default 100 ms; at least 1 ms is used.
    pub max_poll_interval: Duration,
}

impl Default for DatabaseQueueOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            max_poll_interval: Duration::from_millis(100),
        }
    }
}

/// A durable queue in the table `pubsync_queue_message` of a [`Database`].
///
/// Semantics, on top of the [`Queue`] contract:
/// - **Send**: all bodies of one call are inserted in one write transaction (multi-row
///   `INSERT`s, chunked to respect the database's bind-parameter limit): either all are durable
///   or none is, and a failed send hands every body back.
/// - **Receive** takes, in one write transaction, up to `max` rows of the queue that are
///   available (`available_at <= now`) and not leased (no lease, or a lease that ran out),
///   oldest id first. It leases them to this instance (`lease_owner` = [`consumer_id`],
///   `lease_until` = now + [`lease`]) and counts the delivery. When none is available it polls
///   again with backoff until `wait` is over, then returns an empty chunk. A message is
///   `redelivered` when it was delivered before (its lease ran out, or it was released). The
///   [`DeliveryTag`] is the row id. Dropping a `receive` future while it runs can lease a chunk
///   nobody sees; it comes back after the lease.
/// - **Settle** runs in one write transaction: error bodies go to `<queue>.error` (available at
///   once), retry bodies back to the queue (available after their delay), acknowledged rows are
///   deleted, released rows lose their lease and are delivered again. Only rows this instance
///   still holds are acknowledged or released: a consumer whose lease ran out cannot delete or
///   release a message another consumer holds now (its acknowledgement is dropped with a
///   warning; the message is processed twice, which at-least-once allows). A tag both
///   acknowledged and released is acknowledged.
/// - **Depth**: `ready` counts messages available now and not leased; `pending` counts leased
///   messages and retries waiting for their delay.
/// - **Declare** only checks: the queue and error-queue names fit the table, and the table
///   exists (or it fails, saying to run `pubsync setup`). Queues need no other set-up.
/// - A killed worker loses nothing: its leased messages come back after the lease.
///
/// Leases compare times of the clocks of the consumers' machines ([`now_millis`]); consumers
/// on several machines need synchronised clocks, with a lease well above their skew.
///
/// Errors: a database that cannot be reached, a pool that is exhausted, or a locked database
/// give [`QueueError::Unavailable`] (transient); other failures
/// [`QueueError::Operation`], with a [`DatabaseQueueError::MissingTable`] source when the table
/// is missing. All blocking work runs through [`Database::blocking`].
///
/// [`consumer_id`]: DatabaseQueue::consumer_id
/// [`lease`]: DatabaseQueueOptions::lease
#[derive(Debug)]
pub struct DatabaseQueue {
    database: Database,
    options: DatabaseQueueOptions,
    consumer_id: Arc<str>,
    statements: Arc<Statements>,
}

impl DatabaseQueue {
    /// A queue over `database`, with a new consumer id.
    pub fn new(database: Database, options: DatabaseQueueOptions) -> Self {
        let options = DatabaseQueueOptions {
            lease: options.lease.max(Duration::from_millis(1)),
            max_poll_interval: options.max_poll_interval.max(Duration::from_millis(1)),
        };
        let statements = Arc::new(Statements::new(database.dialect()));
        Self {
            database,
            options,
            consumer_id: new_consumer_id().into(),
            statements,
        }
    }

    /// The id this instance writes into `lease_owner`: unique per instance (process id, start
    /// time, counter), at most 64 bytes.
    pub fn consumer_id(&self) -> &str {
        &self.consumer_id
    }

    /// The settings in use.
    pub fn options(&self) -> &DatabaseQueueOptions {
        &self.options
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    fn lease_millis(&self) -> i64 {
        i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Turns a database error into a queue error: transient ones into `Unavailable`, a missing
    /// table into an error that says what to do.
    fn queue_error(
        &self,
        queue: &str,
        operation: &'static str,
        error: DatabaseError,
    ) -> QueueError {
        if error.is_transient() {
            return QueueError::Unavailable {
                backend: format!("database {}", self.database.url()),
                source: Box::new(error),
            };
        }
        let source: pubsync_queue_extension::BoxError = if self.statements.is_missing_table(&error)
        {
            Box::new(self.missing_table())
        } else {
            Box::new(error)
        };
        QueueError::Operation {
            queue: queue.to_owned(),
            operation,
            source,
        }
    }

    fn missing_table(&self) -> DatabaseQueueError {
        DatabaseQueueError::MissingTable {
            table: TABLE,
            url: self.database.url().redacted(),
        }
    }

    /// One attempt to take up to `max` messages. With `peek_first`, a cheap read checks that
    /// something is ready before the write lock is taken, so idle pollers do not queue up on it.
    async fn take(
        &self,
        queue: &str,
        max: usize,
        peek_first: bool,
    ) -> Result<Vec<Delivery>, QueueError> {
        let statements = Arc::clone(&self.statements);
        let consumer_id = Arc::clone(&self.consumer_id);
        let lease_millis = self.lease_millis();
        let queue_name = queue.to_owned();
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let rows = self
            .database
            .blocking(move |database| {
                take_rows(
                    database,
                    &statements,
                    &queue_name,
                    &consumer_id,
                    lease_millis,
                    limit,
                    peek_first,
                )
            })
            .await
            .map_err(|error| self.queue_error(queue, "receive", error))?;
        let mut deliveries: Vec<Delivery> = rows
            .into_iter()
            .map(|row| Delivery {
                queue: queue.to_owned(),
                tag: DeliveryTag(u64::try_from(row.id_queue_message).unwrap_or_default()),
                body: row.body,
                redelivered: row.delivery_count > 1,
            })
            .collect();
        deliveries.sort_unstable_by_key(|delivery| delivery.tag);
        Ok(deliveries)
    }
}

impl Queue for DatabaseQueue {
    async fn declare(&self, queues: &[String]) -> Result<(), QueueError> {
        for queue in queues {
            validate_queue_name(queue)?;
            if error_queue_name(queue).len() > MAX_QUEUE_NAME_BYTES {
                return Err(QueueError::InvalidName {
                    name: queue.clone(),
                    reason: "its error queue name `<name>.error` is longer than 255 bytes",
                });
            }
        }
        let names = queues.join(", ");
        let exists = self
            .database
            .blocking(|database| database.table_exists(TABLE))
            .await
            .map_err(|error| self.queue_error(&names, "declare", error))?;
        if exists {
            Ok(())
        } else {
            Err(QueueError::Operation {
                queue: names,
                operation: "declare",
                source: Box::new(self.missing_table()),
            })
        }
    }

    async fn send(&self, queue: &str, bodies: Vec<Vec<u8>>) -> Result<(), SendError> {
        if let Err(source) = validate_queue_name(queue) {
            return Err(SendError { bodies, source });
        }
        if bodies.is_empty() {
            return Ok(());
        }
        let statements = Arc::clone(&self.statements);
        let queue_name = queue.to_owned();
        let (result, bodies) = self
            .database
            .blocking(move |database| {
                let now = now_millis();
                let rows: Vec<NewRow<'_>> = bodies
                    .iter()
                    .map(|body| NewRow {
                        queue: &queue_name,
                        body,
                        available_at: now,
                    })
                    .collect();
                let result = insert_rows(database, &statements, &rows);
                drop(rows);
                (result, bodies)
            })
            .await;
        result.map_err(|error| SendError {
            bodies,
            source: self.queue_error(queue, "send", error),
        })
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        validate_queue_name(queue)?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + wait;
        let mut pause = FIRST_POLL_INTERVAL.min(self.options.max_poll_interval);
        let mut peek_first = false;
        loop {
            let chunk = self.take(queue, max, peek_first).await?;
            if !chunk.is_empty() {
                return Ok(chunk);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(chunk);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(self.options.max_poll_interval);
            peek_first = true;
        }
    }

    async fn settle(&self, queue: &str, settlement: Settlement) -> Result<(), QueueError> {
        validate_queue_name(queue)?;
        let error_queue = error_queue_name(queue);
        if !settlement.error.is_empty() {
            validate_queue_name(&error_queue)?;
        }
        if settlement.is_empty() {
            return Ok(());
        }
        let statements = Arc::clone(&self.statements);
        let consumer_id = Arc::clone(&self.consumer_id);
        let queue_name = queue.to_owned();
        let acknowledged = settlement.acknowledge.len();
        let deleted = self
            .database
            .blocking(move |database| {
                settle_rows(
                    database,
                    &statements,
                    &queue_name,
                    &error_queue,
                    &consumer_id,
                    &settlement,
                )
            })
            .await
            .map_err(|error| self.queue_error(queue, "settle", error))?;
        if deleted < acknowledged {
            tracing::warn!(
                queue = %queue,
                consumer = %self.consumer_id,
                acknowledged,
                deleted,
                "some acknowledged messages were not deleted: their lease ran out and they were delivered again"
            );
        }
        Ok(())
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, QueueError> {
        validate_queue_name(queue)?;
        let statements = Arc::clone(&self.statements);
        let queue_name = queue.to_owned();
        let counts = self
            .database
            .blocking(move |database| count_rows(database, &statements, &queue_name))
            .await
            .map_err(|error| self.queue_error(queue, "depth", error))?;
        let ready = u64::try_from(counts.ready).unwrap_or_default();
        let total = u64::try_from(counts.total).unwrap_or_default();
        Ok(QueueDepth {
            ready,
            pending: total.saturating_sub(ready),
        })
    }
}

fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    let reason = if name.is_empty() {
        "a queue name cannot be empty"
    } else if name.len() > MAX_QUEUE_NAME_BYTES {
        "a queue name has at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(QueueError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

fn new_consumer_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    // At most 10 + 1 + 20 + 1 + 20 bytes: fits `lease_owner VARCHAR(64)`.
    format!("{}-{}-{counter}", std::process::id(), now_millis())
}

/// A message to insert.
struct NewRow<'a> {
    queue: &'a str,
    body: &'a [u8],
    available_at: i64,
}

#[derive(diesel::QueryableByName)]
struct TakenRow {
    #[diesel(sql_type = BigInt)]
    id_queue_message: i64,
    #[diesel(sql_type = Binary)]
    body: Vec<u8>,
    #[diesel(sql_type = Integer)]
    delivery_count: i32,
}

#[derive(diesel::QueryableByName)]
struct RowId {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id_queue_message: i64,
}

#[derive(diesel::QueryableByName)]
struct Counts {
    #[diesel(sql_type = BigInt)]
    ready: i64,
    #[diesel(sql_type = BigInt)]
    total: i64,
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

fn insert_rows(
    database: &Database,
    statements: &Statements,
    rows: &[NewRow<'_>],
) -> Result<(), DatabaseError> {
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| insert_chunks!(conn, statements, rows))
            .map_err(DatabaseError::query("insert messages"))
    })
}

fn take_rows(
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
fn settle_rows(
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

fn count_rows(
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

/// The statements of the queue, for one dialect. Everything that differs between databases
/// is here.
#[derive(Debug)]
struct Statements {
    dialect: Dialect,
    table: String,
}

impl Statements {
    fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            table: dialect.quote(TABLE),
        }
    }

    /// Most bind parameters one statement may carry. SQLite's default
    /// `SQLITE_MAX_VARIABLE_NUMBER` is 32,766 since 3.32 (the bundled build is newer);
    /// PostgreSQL's and MySQL's protocols count parameters in 16 bits.
    fn bind_limit(&self) -> usize {
        match self.dialect {
            Dialect::Sqlite => 32_766,
            Dialect::Postgres | Dialect::Mysql => 65_535,
        }
    }

    /// Rows per `INSERT`: three parameters each.
    fn rows_per_insert(&self) -> usize {
        (self.bind_limit() / 3).min(MAX_ROWS_PER_INSERT)
    }

    /// `INSERT` of `rows` messages; binds queue name, body, available_at per row.
    fn insert(&self, rows: usize) -> String {
        let values = (0..rows)
            .map(|row| format!("({})", self.dialect.placeholders(row * 3 + 1, 3)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} (queue_name, body, available_at) VALUES {values}",
            self.table
        )
    }

    /// The condition of a message that can be received now; binds queue name, now, now from
    /// parameter `first` on.
    fn receivable(&self, first: usize) -> String {
        let p = |i: usize| self.dialect.placeholder(first + i);
        format!(
            "queue_name = {} AND available_at <= {} AND (lease_until IS NULL OR lease_until < {})",
            p(0),
            p(1),
            p(2)
        )
    }

    /// Whether a message can be received now; binds queue name, now, now.
    fn peek(&self) -> String {
        format!(
            "SELECT id_queue_message FROM {} WHERE {} LIMIT 1",
            self.table,
            self.receivable(1)
        )
    }

    /// Leases and returns up to a limit of receivable messages, oldest first; binds lease
    /// owner, lease until, queue name, now, now, limit. Rows come back in no particular order.
    fn take(&self) -> String {
        let p = |i: usize| self.dialect.placeholder(i);
        let lock = match self.dialect {
            // SQLite has one writer at a time: the write transaction the caller holds is the lock.
            Dialect::Sqlite => "",
            // Concurrent consumers skip each other's rows instead of waiting on them.
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            // MySQL takes in three steps instead (`select_for_take`, `lease_ids`, `fetch_ids`).
            Dialect::Mysql => " FOR UPDATE SKIP LOCKED",
        };
        format!(
            "UPDATE {table} SET lease_owner = {owner}, lease_until = {until}, delivery_count = delivery_count + 1 \
             WHERE id_queue_message IN (SELECT id_queue_message FROM {table} WHERE {receivable} \
             ORDER BY id_queue_message LIMIT {limit}{lock}) \
             RETURNING id_queue_message, body, delivery_count",
            table = self.table,
            owner = p(1),
            until = p(2),
            receivable = self.receivable(3),
            limit = p(6),
        )
    }

    /// MySQL's first take step: locks up to a limit of receivable messages, oldest first,
    /// skipping rows other consumers hold; binds queue name, now, now, limit.
    fn select_for_take(&self) -> String {
        format!(
            "SELECT id_queue_message FROM {} WHERE {} ORDER BY id_queue_message LIMIT {} FOR UPDATE SKIP LOCKED",
            self.table,
            self.receivable(1),
            self.dialect.placeholder(4)
        )
    }

    /// MySQL's second take step: leases the messages of `ids` to `owner` until `until`.
    fn lease_ids(&self, ids: &BoundList, owner: &str, until: i64) -> Statement {
        let mut statement = Statement::new(format!(
            "UPDATE {} SET lease_owner = ?, lease_until = ?, delivery_count = delivery_count + 1 \
             WHERE {}{}",
            self.table,
            ids.condition(queue_message::ID),
            ids.index_order(queue_message::ID)
        ));
        statement
            .push(Bind::Text(owner.to_owned()))
            .push(Bind::BigInt(until));
        ids.bind_to(&mut statement);
        statement
    }

    /// MySQL's last take step: reads the messages of `ids`.
    fn fetch_ids(&self, ids: &BoundList) -> Statement {
        ids.statement(format!(
            "SELECT id_queue_message, body, delivery_count FROM {} WHERE {}",
            self.table,
            ids.condition(queue_message::ID)
        ))
    }

    /// Deletes the messages of `ids` that `consumer_id` holds on `queue`.
    fn acknowledge(&self, ids: &BoundList, queue: &str, consumer_id: &str) -> Statement {
        self.held(
            format!("DELETE FROM {} WHERE", self.table),
            ids,
            queue,
            consumer_id,
        )
    }

    /// Clears the lease of the messages of `ids` that `consumer_id` holds on `queue`.
    fn release(&self, ids: &BoundList, queue: &str, consumer_id: &str) -> Statement {
        self.held(
            format!(
                "UPDATE {} SET lease_owner = NULL, lease_until = NULL WHERE",
                self.table
            ),
            ids,
            queue,
            consumer_id,
        )
    }

    /// `<head> queue_name = ? AND lease_owner = ? AND <id in ids>`, bound.
    fn held(&self, head: String, ids: &BoundList, queue: &str, consumer_id: &str) -> Statement {
        let mut statement = Statement::new(format!(
            "{head} queue_name = ? AND lease_owner = ? AND {}{}",
            ids.condition(queue_message::ID),
            ids.index_order(queue_message::ID)
        ));
        statement
            .push(Bind::Text(queue.to_owned()))
            .push(Bind::Text(consumer_id.to_owned()));
        ids.bind_to(&mut statement);
        statement
    }

    /// Counts receivable and all messages of a queue; binds now, now, queue name.
    fn depth(&self) -> String {
        let p = |i: usize| self.dialect.placeholder(i);
        format!(
            "SELECT COUNT(CASE WHEN available_at <= {} AND (lease_until IS NULL OR lease_until < {}) THEN 1 END) AS ready, \
             COUNT(*) AS total FROM {} WHERE queue_name = {}",
            p(1),
            p(2),
            self.table,
            p(3)
        )
    }

    /// Whether `error` says that the queue table does not exist.
    fn is_missing_table(&self, error: &DatabaseError) -> bool {
        let DatabaseError::Query {
            source: diesel::result::Error::DatabaseError(_, info),
            ..
        } = error
        else {
            return false;
        };
        let message = info.message();
        match self.dialect {
            Dialect::Sqlite => message.contains("no such table"),
            Dialect::Postgres => message.contains("does not exist") && message.contains(TABLE),
            Dialect::Mysql => message.contains("doesn't exist") && message.contains(TABLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_every_bind_limit() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres, Dialect::Mysql] {
            let statements = Statements::new(dialect);
            assert!(statements.rows_per_insert() * 3 <= statements.bind_limit());
            assert!(statements.rows_per_insert() > 0);
        }
    }

    #[test]
    fn statements_number_postgres_placeholders_in_bind_order() {
        let statements = Statements::new(Dialect::Postgres);
        assert_eq!(
            statements.insert(2),
            "INSERT INTO \"pubsync_queue_message\" (queue_name, body, available_at) VALUES ($1, $2, $3), ($4, $5, $6)"
        );
        let take = statements.take();
        for (i, fragment) in [
            "lease_owner = $1",
            "lease_until = $2",
            "queue_name = $3",
            "available_at <= $4",
            "lease_until < $5",
            "LIMIT $6 FOR UPDATE SKIP LOCKED",
        ]
        .iter()
        .enumerate()
        {
            assert!(take.contains(fragment), "{i}: {fragment} in {take}");
        }
        let ids = &bind_list(Dialect::Postgres, &[1_i64, 2])[0];
        assert!(statements.acknowledge(ids, "event", "me").sql().ends_with(
            "lease_owner = ? AND id_queue_message = ANY((SELECT CAST(? AS BIGINT[]))::BIGINT[])"
        ));
        assert!(statements.depth().ends_with("WHERE queue_name = $3"));
    }

    #[test]
    fn sqlite_statements_take_no_row_locks() {
        let take = Statements::new(Dialect::Sqlite).take();
        assert!(!take.contains("FOR UPDATE"), "{take}");
        assert!(take.contains("RETURNING id_queue_message, body, delivery_count"));
    }

    #[test]
    fn names_must_fit_the_table() {
        assert!(validate_queue_name("event").is_ok());
        assert!(validate_queue_name(&"q".repeat(255)).is_ok());
        assert!(matches!(
            validate_queue_name(""),
            Err(QueueError::InvalidName { .. })
        ));
        assert!(matches!(
            validate_queue_name(&"q".repeat(256)),
            Err(QueueError::InvalidName { .. })
        ));
    }

    #[test]
    fn consumer_ids_are_unique_and_fit_lease_owner() {
        let a = new_consumer_id();
        let b = new_consumer_id();
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
        assert!(a.starts_with(&format!("{}-", std::process::id())));
    }
}

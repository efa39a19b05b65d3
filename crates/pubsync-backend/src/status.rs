//! What is waiting where: the outboxes' backlogs with the age of their oldest row, and the
//! depth of every queue and its error queue. `pubsync status` prints it; the worker's
//! `/metrics` exports it as gauges.

use std::time::Duration;

use diesel::sql_types::{BigInt, Double, Nullable};
use pubsync_database::names::{outbox, sync_outbox};
use pubsync_database::{Database, DatabaseError, Dialect, with_connection};
use pubsync_queue_extension::{Queue, QueueError};

use pubsync_storage_extension::KeyValueWriter;

use crate::error_queue::error_queue_of;
use crate::worker::{Worker, WorkerError};

/// Rows waiting in an outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Backlog {
    /// How many.
    pub rows: u64,
    /// How long the oldest has waited; `None` when there is none.
    pub oldest_age: Option<Duration>,
}

/// Messages of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    /// The queue, as the modules name it (without prefix).
    pub name: String,
    /// Ready to be taken.
    pub ready: u64,
    /// Taken and not settled, or waiting out a retry delay.
    pub in_flight: u64,
    /// In its error queue.
    pub error: u64,
}

/// The backlog of the outbox of captured changes.
pub fn outbox_backlog(database: &Database) -> Result<Backlog, DatabaseError> {
    let age = match database.dialect() {
        Dialect::Sqlite => "(julianday('now') - julianday(MIN(created_at))) * 86400.0".to_owned(),
        Dialect::Postgres => {
            "EXTRACT(EPOCH FROM (LOCALTIMESTAMP - MIN(created_at)))::float8".to_owned()
        }
        Dialect::Mysql => {
            "TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) / 1000000e0".to_owned()
        }
    };
    backlog(database, outbox::TABLE, &age, "outbox")
}

/// The backlog of the sync outbox of storage-row changes, aged by each row's `version` (the
/// clock time of the change in microseconds).
pub fn sync_outbox_backlog(database: &Database) -> Result<Backlog, DatabaseError> {
    let now_micros = match database.dialect() {
        Dialect::Sqlite => "((julianday('now') - 2440587.5) * 86400000000.0)",
        Dialect::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::float8",
        Dialect::Mysql => "(UNIX_TIMESTAMP(NOW(6)) * 1000000e0)",
    };
    let age = format!("({now_micros} - MIN({})) / 1000000e0", sync_outbox::VERSION);
    backlog(database, sync_outbox::TABLE, &age, "sync outbox")
}

fn backlog(
    database: &Database,
    table: &str,
    age_seconds: &str,
    what: &str,
) -> Result<Backlog, DatabaseError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Nullable<Double>)]
        age: Option<f64>,
    }
    let sql = format!(
        "SELECT COUNT(*) AS n, CAST({age_seconds} AS {}) AS age FROM {}",
        double_type(database.dialect()),
        database.dialect().quote(table)
    );
    let row = with_connection!(database, |conn| {
        diesel::RunQueryDsl::get_result::<Row>(diesel::sql_query(&sql), conn)
            .map_err(DatabaseError::query(format!("measure the {what} backlog")))
    })?;
    Ok(Backlog {
        rows: u64::try_from(row.n).unwrap_or(0),
        oldest_age: row
            .age
            .filter(|_| row.n > 0)
            .map(|age| Duration::from_secs_f64(age.max(0.0))),
    })
}

fn double_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "REAL",
        Dialect::Postgres => "DOUBLE PRECISION",
        Dialect::Mysql => "DOUBLE",
    }
}

/// The depth of each of `queues` and of its error queue, on `queue`.
pub async fn queue_status<Q: Queue>(
    queue: &Q,
    queues: &[String],
) -> Result<Vec<QueueStatus>, QueueError> {
    let mut statuses = Vec::with_capacity(queues.len());
    for name in queues {
        let depth = queue.depth(name).await?;
        let (_, error_name) = error_queue_of(name);
        let error = queue.depth(&error_name).await?;
        statuses.push(QueueStatus {
            name: name.clone(),
            ready: depth.ready,
            in_flight: depth.pending,
            error: error.ready + error.pending,
        });
    }
    Ok(statuses)
}

/// Everything waiting, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// Every queue the worker sends to or processes ([`Worker::declared_queues`]).
    pub queues: Vec<QueueStatus>,
    /// The outbox of captured changes.
    pub outbox: Backlog,
    /// The sync outbox.
    pub sync_outbox: Backlog,
}

impl<Q: Queue, W: KeyValueWriter> Worker<Q, W> {
    /// What is waiting in the outboxes and in every queue of this worker.
    pub async fn status(&self) -> Result<Status, WorkerError> {
        let (outbox, sync_outbox) = self
            .database
            .blocking(|database| {
                Ok::<_, DatabaseError>((outbox_backlog(database)?, sync_outbox_backlog(database)?))
            })
            .await?;
        let queues = queue_status(&self.queue, &self.declared_queues()).await?;
        Ok(Status {
            queues,
            outbox,
            sync_outbox,
        })
    }
}

//! The queue itself: [`DatabaseQueue`], its settings [`DatabaseQueueOptions`], and its
//! implementation of the [`Queue`] contract. Each operation checks the queue name, then runs
//! its blocking database work (the functions of `rows`) through [`Database::blocking`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use pubsync_database::{Database, now_millis};
use pubsync_queue_extension::{
    Delivery, DeliveryTag, Queue, QueueDepth, QueueError, SendError, Settlement, error_queue_name,
};

use crate::rows::{NewRow, count_rows, insert_rows, release_all_rows, settle_rows, take_rows};
use crate::statements::Statements;
use crate::{MAX_QUEUE_NAME_BYTES, TABLE};

/// The first pause between two polls of an empty queue; it doubles up to
/// [`DatabaseQueueOptions::max_poll_interval`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(2);

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
/// [`DatabaseQueueError::MissingTable`]: crate::DatabaseQueueError::MissingTable
#[derive(Debug)]
pub struct DatabaseQueue {
    pub(crate) database: Database,
    options: DatabaseQueueOptions,
    consumer_id: Arc<str>,
    pub(crate) statements: Arc<Statements>,
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
                available_at: u64::try_from(row.available_at)
                    .ok()
                    .map(|millis| UNIX_EPOCH + Duration::from_millis(millis)),
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

    async fn release_held(&self) -> Result<u64, QueueError> {
        let statements = Arc::clone(&self.statements);
        let consumer_id = Arc::clone(&self.consumer_id);
        let released = self
            .database
            .blocking(move |database| release_all_rows(database, &statements, &consumer_id))
            .await
            .map_err(|error| self.queue_error("*", "release", error))?;
        Ok(released as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! The outbox relay: moves captured changes from the outbox table to the event queues.
//!
//! One pass reads a chunk of outbox rows in id order, turns each into the event messages of
//! its listeners (many events per message, see `DESIGN-NOTES.md`), sends them, and only then
//! deletes the rows it read, by id. A crash between sending and deleting sends those events
//! again; consumers are idempotent, so that is harmless. Rows are deleted by their ids, never
//! by a range: a row with a lower id that commits later is not skipped.

use std::collections::BTreeMap;

use diesel::RunQueryDsl as _;
use diesel::sql_types::{BigInt, Text};
use pubsync_database::{Database, DatabaseError, WriteTransaction as _, with_connection};
use pubsync_queue_extension::{Queue, SendError, error_queue_name};
use pubsync_shared::event::EventEntityTransfer;
use pubsync_shared::message::EventQueueMessage;
use serde_json::json;

use crate::listener::EventCollection;
use crate::{DEFAULT_EVENT_QUEUE, OUTBOX_TABLE};

/// Settings of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Outbox rows read per pass (the original's `TRIGGER_CHUNK_SIZE`).
    pub chunk_size: usize,
    /// Events carried in one queue message. 1 with `spryker_compatible` is the original's
    /// one-message-per-event-and-listener format.
    pub events_per_message: usize,
    /// Writes messages in the original's one-event format.
    pub spryker_compatible: bool,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            events_per_message: 500,
            spryker_compatible: false,
        }
    }
}

/// Why a relay pass failed. The outbox rows stay and are relayed by a later pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Reading or deleting outbox rows failed.
    #[error("outbox: {0}")]
    Database(#[from] DatabaseError),
    /// The event queue did not take the messages.
    #[error("relaying the outbox: {0}")]
    Send(#[from] SendError),
}

impl RelayError {
    /// Whether a later pass may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => error.is_transient(),
            Self::Send(error) => error.source.is_transient(),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    id_event_behavior_entity_change: i64,
    #[diesel(sql_type = Text)]
    data: String,
}

/// Moves the outbox to the event queues.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    database: Database,
    config: RelayConfig,
}

/// What one relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Outbox rows read and deleted.
    pub rows: usize,
    /// Messages sent.
    pub messages: usize,
    /// Rows that could not be read as events and went to the error queue.
    pub malformed: usize,
}

impl OutboxRelay {
    /// A relay over `database`'s outbox.
    pub fn new(database: Database, config: RelayConfig) -> Self {
        Self { database, config }
    }

    /// Relays one chunk of the outbox. Returns what it did; `rows == 0` means the outbox was
    /// empty.
    pub async fn relay_once<Q: Queue>(
        &self,
        listeners: &EventCollection,
        queue: &Q,
    ) -> Result<RelayPass, RelayError> {
        let limit = self.config.chunk_size as i64;
        let rows = self
            .database
            .blocking(move |db| read_outbox(db, limit))
            .await?;
        if rows.is_empty() {
            return Ok(RelayPass::default());
        }
        let ids: Vec<i64> = rows
            .iter()
            .map(|row| row.id_event_behavior_entity_change)
            .collect();
        let (messages, malformed) = self.messages_for(listeners, rows);
        let mut pass = RelayPass {
            rows: ids.len(),
            malformed,
            ..RelayPass::default()
        };
        for (queue_name, bodies) in messages {
            pass.messages += bodies.len();
            queue.send(&queue_name, bodies).await?;
        }
        self.database
            .blocking(move |db| delete_outbox_rows(db, &ids))
            .await?;
        Ok(pass)
    }

    /// Whether the outbox holds rows.
    pub async fn is_empty(&self) -> Result<bool, DatabaseError> {
        Ok(self
            .database
            .blocking(|db| read_outbox(db, 1))
            .await?
            .is_empty())
    }

    /// Groups the rows' events by queue, listener and event name (keeping their order within a
    /// group) and packs each group into messages. Rows that are not events become messages for
    /// the error queue of the default event queue, with the reason.
    fn messages_for(
        &self,
        listeners: &EventCollection,
        rows: Vec<OutboxRow>,
    ) -> (BTreeMap<String, Vec<Vec<u8>>>, usize) {
        let mut groups: BTreeMap<(String, String, String), Vec<EventEntityTransfer>> =
            BTreeMap::new();
        let mut messages: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        let mut malformed = 0;
        for row in rows {
            let transfer = match serde_json::from_str::<EventEntityTransfer>(&row.data) {
                Ok(transfer) if !transfer.event.is_empty() => transfer,
                Ok(_) => {
                    malformed += 1;
                    messages
                        .entry(error_queue_name(DEFAULT_EVENT_QUEUE))
                        .or_default()
                        .push(malformed_row(&row, "no event name"));
                    continue;
                }
                Err(error) => {
                    malformed += 1;
                    messages
                        .entry(error_queue_name(DEFAULT_EVENT_QUEUE))
                        .or_default()
                        .push(malformed_row(&row, &error.to_string()));
                    continue;
                }
            };
            let registrations = listeners.listeners(&transfer.event);
            if registrations.is_empty() {
                tracing::debug!(event = %transfer.event, id = ?transfer.id, "no listener for event");
            }
            for registration in registrations {
                let group = (
                    registration.queue.clone(),
                    registration.publisher.name().to_owned(),
                    transfer.event.clone(),
                );
                groups.entry(group).or_default().push(transfer.clone());
            }
        }
        for ((queue_name, listener, event_name), transfers) in groups {
            let bodies = messages.entry(queue_name).or_default();
            if self.config.spryker_compatible {
                bodies.extend(transfers.into_iter().map(|t| {
                    EventQueueMessage::spryker_compatible(&listener, &event_name, t).encode()
                }));
            } else {
                for chunk in transfers.chunks(self.config.events_per_message.max(1)) {
                    bodies.push(
                        EventQueueMessage::batch(&listener, &event_name, chunk.to_vec()).encode(),
                    );
                }
            }
        }
        (messages, malformed)
    }
}

fn malformed_row(row: &OutboxRow, reason: &str) -> Vec<u8> {
    tracing::error!(
        outbox_id = row.id_event_behavior_entity_change,
        reason,
        "outbox row is not an event"
    );
    serde_json::to_vec(&json!({
        "errorMessage": format!("outbox row {} is not an event: {reason}", row.id_event_behavior_entity_change),
        "outboxId": row.id_event_behavior_entity_change,
        "data": row.data,
    }))
    .expect("json serialises")
}

fn read_outbox(database: &Database, limit: i64) -> Result<Vec<OutboxRow>, DatabaseError> {
    let sql = format!(
        "SELECT id_event_behavior_entity_change, data FROM {OUTBOX_TABLE} ORDER BY id_event_behavior_entity_change LIMIT {}",
        database.dialect().placeholder(1)
    );
    with_connection!(database, |conn| {
        diesel::sql_query(&sql)
            .bind::<BigInt, _>(limit)
            .load::<OutboxRow>(conn)
            .map_err(DatabaseError::query("read the outbox"))
    })
}

fn delete_outbox_rows(database: &Database, ids: &[i64]) -> Result<(), DatabaseError> {
    delete_by_ids(
        database,
        OUTBOX_TABLE,
        "id_event_behavior_entity_change",
        ids,
        "delete relayed outbox rows",
    )
}

/// Deletes the rows of `table` whose `id_column` is in `ids`, in one transaction, by id (never
/// by range: a row with a lower id that commits later must not be skipped).
pub(crate) fn delete_by_ids(
    database: &Database,
    table: &str,
    id_column: &str,
    ids: &[i64],
    operation: &str,
) -> Result<(), DatabaseError> {
    let dialect = database.dialect();
    with_connection!(database, |conn| {
        conn.write_transaction(|conn| {
            for chunk in ids.chunks(1000) {
                let sql = format!(
                    "DELETE FROM {table} WHERE {id_column} IN ({})",
                    dialect.placeholders(1, chunk.len())
                );
                let mut query = diesel::sql_query(sql).into_boxed();
                for id in chunk {
                    query = query.bind::<BigInt, _>(*id);
                }
                query
                    .execute(conn)
                    .map_err(DatabaseError::query(operation))?;
            }
            Ok(())
        })
    })
}

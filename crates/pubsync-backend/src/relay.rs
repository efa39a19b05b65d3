//! The outbox relay: moves captured changes from the outbox table to the event queues.
//!
//! One pass reads a chunk of outbox rows in id order ([`crate::outbox`]), turns each into the
//! event messages of its listeners (many events per message: a broker carries messages, not
//! events, per second), sends them, and only then deletes the rows it read, by id. A crash
//! between sending and deleting sends those events again; consumers are idempotent, so that
//! is harmless.
//!
//! With direct publishing ([`OutboxRelay::publish_once`]) a pass hands the events to their
//! listeners in this process instead, and only what fails travels on the event queue. That
//! saves the queue round trip where the queue would be the same database as the outbox: the
//! outbox already is a durable queue there.

use std::collections::BTreeMap;
use std::sync::Arc;

use diesel::sql_types::{BigInt, Binary};
use pubsync_database::{Database, DatabaseError};
use pubsync_queue_extension::{Queue, QueueError, SendError, Settlement, error_queue_name};
use pubsync_shared::event::EventEntityTransfer;
use pubsync_shared::message::{ErrorQueueMessage, EventQueueMessage};

use crate::DEFAULT_EVENT_QUEUE;
use crate::consumer::{ChunkOutcome, EventBatch, EventConsumer};
use crate::listener::{EventCollection, Publisher};
use crate::outbox::{Claim, EVENT_OUTBOX};

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
    /// The event queue did not take the retry or error messages of a direct publish.
    #[error("publishing the outbox: {0}")]
    Queue(#[from] QueueError),
}

impl RelayError {
    /// Whether a later pass may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => error.is_transient(),
            Self::Send(error) => error.source.is_transient(),
            Self::Queue(error) => error.is_transient(),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    id_event_behavior_entity_change: i64,
    /// The row's bytes as stored: SQLite keeps what it is given, valid UTF-8 or not, and a
    /// row that is not must reach the error queue as it is instead of failing the chunk.
    #[diesel(sql_type = Binary)]
    data: Vec<u8>,
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
        let mut claim = self.claim_chunk().await?;
        if claim.rows.is_empty() {
            return Ok(RelayPass::default());
        }
        let (messages, counts) = self.messages_for(listeners, std::mem::take(&mut claim.rows));
        let mut pass = RelayPass {
            rows: claim.ids().len(),
            malformed: counts.malformed,
            ..RelayPass::default()
        };
        for (queue_name, bodies) in messages {
            pass.messages += bodies.len();
            queue.send(&queue_name, bodies).await?;
        }
        claim.relayed().await?;
        counts.record();
        Ok(pass)
    }

    /// The next chunk of outbox rows in id order that no other relay holds.
    async fn claim_chunk(&self) -> Result<Claim<OutboxRow>, DatabaseError> {
        EVENT_OUTBOX
            .claim(
                &self.database,
                self.config.chunk_size,
                None,
                |row: &OutboxRow| row.id_event_behavior_entity_change,
            )
            .await
    }

    /// Whether the outbox holds rows.
    pub async fn is_empty(&self) -> Result<bool, DatabaseError> {
        self.database.blocking(|db| EVENT_OUTBOX.is_empty(db)).await
    }

    /// Publishes one chunk of the outbox in this process, without the event queue (direct
    /// publishing): the rows' events go straight to their listeners, as a consumer would hand
    /// them over, and the rows are deleted once every listener has returned. Events that fail
    /// take the consumer's path from there: a retry message on their queue, then its error
    /// queue. A crash before the delete publishes the rows again, which idempotent publishers
    /// shrug off. Returns what the pass did; `rows == 0` means the outbox was empty.
    pub async fn publish_once<Q: Queue>(
        &self,
        listeners: &EventCollection,
        consumer: &EventConsumer,
        queue: &Q,
    ) -> Result<(RelayPass, ChunkOutcome), RelayError> {
        let mut claim = self.claim_chunk().await?;
        if claim.rows.is_empty() {
            return Ok(Default::default());
        }
        let routed = route(listeners, std::mem::take(&mut claim.rows));
        let counts = RoutedCounts {
            captured: routed.captured,
            malformed: routed.malformed.len(),
        };
        let mut pass = RelayPass {
            rows: claim.ids().len(),
            malformed: counts.malformed,
            ..RelayPass::default()
        };
        let mut batches: BTreeMap<&str, EventBatch> = BTreeMap::new();
        for ((queue_name, _, event_name), (publisher, transfers)) in routed.groups {
            batches
                .entry(queue_name)
                .or_default()
                .add(&publisher, event_name, transfers, 0);
        }
        let mut outcome = ChunkOutcome::default();
        for (queue_name, batch) in batches {
            let mut settlement = Settlement::default();
            let handled = consumer.handle(queue_name, batch, &mut settlement).await;
            outcome.handled += handled.handled;
            outcome.collapsed += handled.collapsed;
            outcome.retried += handled.retried;
            outcome.failed += handled.failed;
            pass.messages += settlement.retry.len() + settlement.error.len();
            queue.settle(queue_name, settlement).await?;
        }
        if !routed.malformed.is_empty() {
            pass.messages += routed.malformed.len();
            queue
                .send(&error_queue_name(DEFAULT_EVENT_QUEUE), routed.malformed)
                .await?;
        }
        claim.relayed().await?;
        counts.record();
        Ok((pass, outcome))
    }

    /// Packs the rows' events into messages for their queues (many events per message, or the
    /// original's one event per message with `spryker_compatible`). Rows that are not events
    /// become messages for the error queue of the default event queue, with the reason.
    fn messages_for(
        &self,
        listeners: &EventCollection,
        rows: Vec<OutboxRow>,
    ) -> (BTreeMap<String, Vec<Vec<u8>>>, RoutedCounts) {
        let routed = route(listeners, rows);
        let counts = RoutedCounts {
            captured: routed.captured,
            malformed: routed.malformed.len(),
        };
        let mut messages: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        if counts.malformed > 0 {
            messages.insert(error_queue_name(DEFAULT_EVENT_QUEUE), routed.malformed);
        }
        for ((queue_name, listener, event_name), (_, transfers)) in routed.groups {
            let bodies = messages.entry(queue_name.to_owned()).or_default();
            if self.config.spryker_compatible {
                bodies.extend(transfers.into_iter().map(|t| {
                    EventQueueMessage::spryker_compatible(listener, event_name, t).encode()
                }));
            } else {
                for chunk in transfers.chunks(self.config.events_per_message.max(1)) {
                    bodies.push(
                        EventQueueMessage::batch(listener, event_name, chunk.to_vec()).encode(),
                    );
                }
            }
        }
        (messages, counts)
    }
}

/// What a chunk's routing counted, for the metrics once the chunk is relayed: a chunk given
/// back (its send failed, the process stopped) is counted when it is relayed again.
struct RoutedCounts {
    captured: BTreeMap<String, u64>,
    malformed: usize,
}

impl RoutedCounts {
    fn record(self) {
        crate::metrics::captured(self.captured);
        crate::metrics::failed(DEFAULT_EVENT_QUEUE, self.malformed);
    }
}

/// A chunk of outbox rows, routed: each listener's events by queue, listener name and event
/// name (in outbox order within a group), and the error messages of rows that are not events.
/// The names are borrowed from the listener collection: routing allocates nothing per event.
struct Routed<'a> {
    groups: BTreeMap<RouteKey<'a>, (Arc<dyn Publisher>, Vec<EventEntityTransfer>)>,
    malformed: Vec<Vec<u8>>,
    /// The events by source table.
    captured: BTreeMap<String, u64>,
}

/// `(queue, listener name, event name)`.
type RouteKey<'a> = (&'a str, &'a str, &'a str);

fn route(listeners: &EventCollection, rows: Vec<OutboxRow>) -> Routed<'_> {
    let mut routed = Routed {
        groups: BTreeMap::new(),
        malformed: Vec::new(),
        captured: BTreeMap::new(),
    };
    for row in rows {
        let data = match std::str::from_utf8(&row.data) {
            Ok(data) => data,
            Err(error) => {
                let reason = format!("not valid UTF-8 ({error})");
                routed.malformed.push(malformed_row(&row, &reason));
                continue;
            }
        };
        let transfer = match EventEntityTransfer::from_outbox(data) {
            Ok(transfer) if !transfer.event.is_empty() => transfer,
            Ok(_) => {
                routed.malformed.push(malformed_row(&row, "no event name"));
                continue;
            }
            Err(error) => {
                routed
                    .malformed
                    .push(malformed_row(&row, &error.to_string()));
                continue;
            }
        };
        match routed.captured.get_mut(transfer.name.as_str()) {
            Some(count) => *count += 1,
            None => {
                routed.captured.insert(transfer.name.clone(), 1);
            }
        }
        let Some((event_name, registrations)) = listeners.listeners_with_name(&transfer.event)
        else {
            tracing::debug!(event = %transfer.event, id = ?transfer.id, "no listener for event");
            continue;
        };
        let mut transfer = Some(transfer);
        for (index, registration) in registrations.iter().enumerate() {
            let key = (
                registration.queue.as_str(),
                registration.publisher.name(),
                event_name,
            );
            // The last listener takes the event itself, the others a copy.
            let event = if index + 1 == registrations.len() {
                transfer.take()
            } else {
                transfer.clone()
            };
            routed
                .groups
                .entry(key)
                .or_insert_with(|| (registration.publisher.clone(), Vec::new()))
                .1
                .extend(event);
        }
    }
    routed
}

fn malformed_row(row: &OutboxRow, reason: &str) -> Vec<u8> {
    let id = row.id_event_behavior_entity_change;
    tracing::error!(outbox_id = id, reason, "outbox row is not an event");
    ErrorQueueMessage::new(format!("outbox row {id} is not an event: {reason}"))
        .with("outboxId", id)
        .with_bytes("data", &row.data)
        .encode()
}

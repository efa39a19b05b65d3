//! `publish:trigger-events`: re-publishes a resource's entities from its trigger source.
//!
//! Each chunk of ids becomes events of the source's event, one per id, handed to the event's
//! listeners as the worker's direct publishing hands them (failures take the retry and error
//! queues), or sent to their event queues for the workers. Beside the publishing, the sync
//! outbox is relayed (a few chunks behind at most), so with direct synchronization the keys
//! are written as the run goes, the database and the key-value store working at once. Without
//! ids, the source table is walked by id; where the walk is, is recorded every second and
//! when the run stops, and a run that was stopped resumes after it (one that died resumes a
//! little earlier, which re-publishes what did not change).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pubsync_queue_extension::{Queue, Settlement};
use pubsync_shared::event::EventEntityTransfer;
use pubsync_shared::message::EventQueueMessage;
use pubsync_storage_extension::KeyValueWriter;

use tokio::sync::watch;

use super::{Cursor, Ending, Progress, SourcePages, Stop, TriggerSource, pages};
use crate::consumer::{ChunkOutcome, EventBatch};
use crate::worker::{Worker, WorkerError};

/// How `publish:trigger-events` runs.
#[derive(Debug, Clone)]
pub struct TriggerOptions {
    /// Ids per chunk (events handed over at once).
    pub chunk_size: usize,
    /// Send the events to the event queues for the workers instead of publishing them here.
    pub enqueue: bool,
    /// Start from the first id even where an earlier run stopped.
    pub restart: bool,
}

impl Default for TriggerOptions {
    fn default() -> Self {
        Self {
            chunk_size: 1000,
            enqueue: false,
            restart: false,
        }
    }
}

/// What `publish:trigger-events` did for one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerReport {
    /// The resource.
    pub resource: String,
    /// Events triggered (ids).
    pub triggered: usize,
    /// What publishing them did (direct publishing).
    pub outcome: ChunkOutcome,
    /// Where an earlier, stopped run was resumed, if it was.
    pub resumed_after: Option<i64>,
    /// Sync outbox rows relayed after the chunks.
    pub sync_relayed: usize,
    /// Whether every chunk was done.
    pub ending: Option<Ending>,
}

/// Re-publishes `source`'s entities: `ids` when given (in chunks, as given), otherwise every
/// id of the source table, keyset-paged from where a stopped run left off. Unless the events
/// are enqueued, the sync outbox is relayed beside the publishing, at most [`RELAY_LEAD`]
/// chunks behind it, and once more at the end.
pub async fn trigger_events<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    source: &TriggerSource,
    ids: Option<&[i64]>,
    options: &TriggerOptions,
    progress: &dyn Progress,
    stop: &Stop,
) -> Result<TriggerReport, WorkerError> {
    let mut report = TriggerReport {
        resource: source.resource.to_owned(),
        ..TriggerReport::default()
    };
    let run = Run {
        worker,
        source,
        options,
        progress,
        stop,
    };
    if options.enqueue {
        report.ending = Some(run.publish(ids, &mut report, None).await?);
        return Ok(report);
    }
    let (published, published_seen) = watch::channel(0);
    let (relayed_through, pace) = watch::channel(0);
    let pace = Pace {
        published,
        relayed_through: pace,
    };
    let publishing = run.publish(ids, &mut report, Some(pace));
    let relaying = relay_beside(worker, published_seen, relayed_through);
    // Both run to their end: a chunk cut off in the middle could lose the retries of its
    // failed events. A failed relay stops the publishing after its chunk; a failed
    // publishing ends the relay after one more pass.
    let (ending, relayed) = tokio::join!(publishing, relaying);
    let (ending, relayed) = (ending?, relayed?);
    report.ending = Some(ending);
    report.sync_relayed = relayed;
    Ok(report)
}

/// How often a walk over the source table records where it is, at most.
const CURSOR_INTERVAL: Duration = Duration::from_secs(1);

/// How many chunks the publishing may be ahead of the sync relay: enough for the two to work
/// at once, few enough that a stopped run has little left to relay.
pub const RELAY_LEAD: u64 = 2;

/// One `publish:trigger-events` run over one source.
struct Run<'a, Q: Queue, W: KeyValueWriter> {
    worker: &'a Worker<Q, W>,
    source: &'a TriggerSource,
    options: &'a TriggerOptions,
    progress: &'a dyn Progress,
    stop: &'a Stop,
}

/// Between the publishing and the sync relay beside it: how many chunks were published, and
/// through which of them the relay has relayed the sync outbox.
struct Pace {
    published: watch::Sender<u64>,
    relayed_through: watch::Receiver<u64>,
}

impl Pace {
    /// Waits until publishing one more chunk keeps the relay at most [`RELAY_LEAD`] behind;
    /// `false` when the relay is gone, which only its failure ends.
    async fn wait_for_relay(&mut self) -> bool {
        // The chunk about to be published is number `next`.
        let next = *self.published.borrow() + 1;
        self.relayed_through
            .wait_for(|relayed| relayed + RELAY_LEAD >= next)
            .await
            .is_ok()
    }

    /// A chunk was published.
    fn published(&self) {
        self.published.send_modify(|published| *published += 1);
    }
}

impl<Q: Queue, W: KeyValueWriter> Run<'_, Q, W> {
    /// Publishes `ids`, or every id of the source table, chunk by chunk; with `pace`, never
    /// more than [`RELAY_LEAD`] chunks ahead of the relay, which it tells of each chunk.
    async fn publish(
        &self,
        ids: Option<&[i64]>,
        report: &mut TriggerReport,
        mut pace: Option<Pace>,
    ) -> Result<Ending, WorkerError> {
        let (worker, source) = (self.worker, self.source);
        let chunk_size = self.options.chunk_size.max(1);
        if let Some(ids) = ids {
            self.progress.start(source.resource, ids.len() as u64, 0);
            for chunk in ids.chunks(chunk_size) {
                // Stopped, or the relay failed (its error ends the run).
                if self.stop.requested()
                    || !self.publish_chunk(chunk, report, pace.as_mut()).await?
                {
                    return self.stopped(None).await;
                }
                self.progress.advance(chunk.len() as u64);
            }
            self.progress.finish();
            return Ok(Ending::Complete);
        }
        let cursor = Cursor::new("trigger-events", source.resource);
        let resumed = cursor
            .load(&worker.database, self.options.restart)
            .await?
            .and_then(|value| value.parse::<i64>().ok());
        report.resumed_after = resumed;
        let (table, column) = (source.table, source.id_column);
        let (total, done) = worker
            .database
            .blocking(move |db| pages::count(db, table, column, resumed))
            .await?;
        self.progress.start(source.resource, total, done);
        let mut pages = SourcePages::new(source, resumed, chunk_size);
        // The last id published and not recorded yet, and when the cursor was last recorded:
        // recording it is a write, which on SQLite waits for the database's one writer, so it
        // is recorded every `CURSOR_INTERVAL` and when the run stops. A run that dies in
        // between publishes the chunks since again when resumed, which changes nothing.
        let mut unsaved = None;
        let mut saved_at = Instant::now();
        loop {
            if self.stop.requested() {
                return self.stopped(unsaved.map(|last| (&cursor, last))).await;
            }
            let Some(ids) = pages.next(&worker.database).await? else {
                break;
            };
            if !self.publish_chunk(&ids, report, pace.as_mut()).await? {
                // The relay failed, and its error ends the run; this chunk is the next run's.
                return self.stopped(unsaved.map(|last| (&cursor, last))).await;
            }
            unsaved = Some(ids[ids.len() - 1]);
            if saved_at.elapsed() >= CURSOR_INTERVAL
                && let Some(last) = unsaved.take()
            {
                cursor.save(&worker.database, last.to_string()).await?;
                saved_at = Instant::now();
            }
            self.progress.advance(ids.len() as u64);
        }
        cursor.clear(&worker.database).await?;
        self.progress.finish();
        Ok(Ending::Complete)
    }

    /// Ends a run that stops before its end; a walk records `unsaved`, the last id it
    /// published and has not recorded yet, so that the next run resumes after it.
    async fn stopped(&self, unsaved: Option<(&Cursor, i64)>) -> Result<Ending, WorkerError> {
        if let Some((cursor, last)) = unsaved {
            cursor.save(&self.worker.database, last.to_string()).await?;
        }
        self.progress.finish();
        Ok(Ending::Stopped)
    }

    /// Triggers the source's event for each of `ids`, first waiting for the relay when
    /// `pace` holds it to the publishing; `false`, without publishing, when the relay failed.
    async fn publish_chunk(
        &self,
        ids: &[i64],
        report: &mut TriggerReport,
        mut pace: Option<&mut Pace>,
    ) -> Result<bool, WorkerError> {
        if let Some(pace) = pace.as_deref_mut()
            && !pace.wait_for_relay().await
        {
            return Ok(false);
        }
        let transfers = self.source.events(ids.iter().copied());
        report.triggered += ids.len();
        let outcome = dispatch(
            self.worker,
            self.source.event,
            transfers,
            self.options.enqueue,
        )
        .await?;
        if let Some(pace) = pace {
            pace.published();
        }
        report.outcome.messages += outcome.messages;
        report.outcome.handled += outcome.handled;
        report.outcome.retried += outcome.retried;
        report.outcome.failed += outcome.failed;
        report.outcome.collapsed += outcome.collapsed;
        Ok(true)
    }
}

/// Relays the sync outbox while the publishing beside it publishes, after each chunk it
/// publishes, and once more when it is over (`published` closed): what the publishing
/// changed is on its way to the key-value store as the run goes. Returns the rows relayed.
async fn relay_beside<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    mut published: watch::Receiver<u64>,
    relayed_through: watch::Sender<u64>,
) -> Result<usize, WorkerError> {
    let mut relayed = 0;
    loop {
        let through = *published.borrow_and_update();
        relayed += worker.relay_sync_outbox().await?;
        relayed_through.send_replace(through);
        if published.changed().await.is_err() {
            return Ok(relayed + worker.relay_sync_outbox().await?);
        }
    }
}

/// Hands `transfers`, instances of `event`, to every listener of `event`: here, as direct
/// publishing does (what fails goes to the listener's queue for a retry, then to its error
/// queue), or, with `enqueue`, as messages on the listeners' event queues.
pub(crate) async fn dispatch<Q: Queue, W: KeyValueWriter>(
    worker: &Worker<Q, W>,
    event: &str,
    transfers: Vec<EventEntityTransfer>,
    enqueue: bool,
) -> Result<ChunkOutcome, WorkerError> {
    let registrations = worker.listeners.listeners(event);
    let mut outcome = ChunkOutcome::default();
    if enqueue {
        let per_message = worker.config.relay.events_per_message.max(1);
        for registration in registrations {
            let bodies: Vec<Vec<u8>> = transfers
                .chunks(per_message)
                .map(|chunk| {
                    EventQueueMessage::batch(registration.publisher.name(), event, chunk.to_vec())
                        .encode()
                })
                .collect();
            outcome.messages += bodies.len();
            worker
                .queue
                .send(&registration.queue, bodies)
                .await
                .map_err(|error| WorkerError::Queue(error.source))?;
        }
        return Ok(outcome);
    }
    let mut batches: BTreeMap<&str, EventBatch> = BTreeMap::new();
    for registration in registrations {
        batches.entry(registration.queue.as_str()).or_default().add(
            &registration.publisher,
            event,
            transfers.iter().cloned(),
            0,
        );
    }
    for (queue_name, batch) in batches {
        let mut settlement = Settlement::default();
        let handled = worker
            .consumer
            .handle(queue_name, batch, &mut settlement)
            .await;
        outcome.handled += handled.handled;
        outcome.collapsed += handled.collapsed;
        outcome.retried += handled.retried;
        outcome.failed += handled.failed;
        worker.queue.settle(queue_name, settlement).await?;
    }
    Ok(outcome)
}

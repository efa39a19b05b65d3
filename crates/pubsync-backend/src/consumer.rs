//! The event consumer: what happens to one chunk of event queue messages.
//!
//! 1. Each message is decoded; one that cannot be (malformed, unknown listener) goes to
//!    `<queue>.error` with the reason.
//! 2. Events for the same listener, event name and id are collapsed into one (their modified
//!    columns united), so an entity changed ten times in a chunk is published once.
//! 3. Each listener is called once per event name with all its events (`handle_bulk`), those
//!    that failed before (retries) apart from the others, so that a known bad entity does not
//!    fail a bulk of new events again. When a call fails, the failing events are isolated
//!    (`isolate`): the entities a writer refused are pinned on their events, and a bulk that
//!    fails as a whole is halved until they are found, so that one bad entity neither holds
//!    back the others nor costs its chunk a call per event.
//! 4. An event that fails alone is sent back to the queue with a growing delay while its retry
//!    budget lasts, then to `<queue>.error` with the reason.
//! 5. Only then is the chunk settled in one call: acknowledgements together with the retry and
//!    error messages. Publishers commit before they return, so nothing is acknowledged before
//!    its work is committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pubsync_queue_extension::{Delivery, Queue, QueueError, Settlement};
use pubsync_shared::event::EventEntityTransfer;
use pubsync_shared::message::{ErrorQueueMessage, EventQueueMessage};

use crate::listener::{EventCollection, PublishContext, Publisher};
use crate::queue_policy::QueuePolicies;

mod isolate;

/// Settings of the event consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Messages taken per chunk (the original's `EVENT_CHUNK`), at most: see
    /// [`max_chunk_events`](Self::max_chunk_events).
    pub chunk_size: usize,
    /// How often an event that fails is tried again before it goes to the error queue.
    pub max_retries: u32,
    /// The delay before the first retry; it doubles with each further retry.
    pub retry_delay: Duration,
    /// The most events one `handle_bulk` call gets; a larger group is handed over in slices.
    pub max_bulk: usize,
    /// About how many events a chunk may hold: with many events per message, a chunk takes
    /// fewer messages than `chunk_size`, so that the events of a chunk (about 1 KB each once
    /// decoded) stay within the worker's memory budget whatever the backlog.
    pub max_chunk_events: usize,
    /// Per-queue chunk sizes, concurrency and retries, where they differ from the above.
    pub queues: QueuePolicies,
}

/// The longest a retry waits, however often it has been retried: a day.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);

impl ConsumerConfig {
    /// Messages to take per chunk when each carries up to `events_per_message` events.
    pub fn messages_per_chunk(&self, events_per_message: usize) -> usize {
        self.queue_messages_per_chunk(crate::DEFAULT_EVENT_QUEUE, events_per_message)
    }

    /// Messages to take per chunk of `queue` ([`QueuePolicy::chunk_size`](crate::QueuePolicy::chunk_size) or `chunk_size`) when
    /// each carries up to `events_per_message` events.
    pub fn queue_messages_per_chunk(&self, queue: &str, events_per_message: usize) -> usize {
        let by_events = self.max_chunk_events / events_per_message.max(1);
        let chunk_size = self.queues.get(queue).chunk_size.unwrap_or(self.chunk_size);
        chunk_size.min(by_events).max(1)
    }

    /// How a failing event of `queue` is retried: how many times, and the delay of retry
    /// number `retry` (counted from 0), which doubles each time up to [`MAX_RETRY_DELAY`].
    pub fn retry_policy(&self, queue: &str, retry: u32) -> (u32, Duration) {
        let policy = self.queues.get(queue);
        let delay = policy
            .retry_delay
            .unwrap_or(self.retry_delay)
            .saturating_mul(2u32.saturating_pow(retry))
            .min(MAX_RETRY_DELAY);
        (policy.max_retries.unwrap_or(self.max_retries), delay)
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            chunk_size: 500,
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            max_bulk: 1000,
            max_chunk_events: 10_000,
            queues: QueuePolicies::default(),
        }
    }
}

/// What processing one chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkOutcome {
    /// Messages in the chunk.
    pub messages: usize,
    /// Events handled successfully, after collapsing.
    pub handled: usize,
    /// Events collapsed into another event of the same entity.
    pub collapsed: usize,
    /// Events sent back for a retry.
    pub retried: usize,
    /// Events and messages sent to the error queue.
    pub failed: usize,
}

/// Handles chunks of event messages with the registered listeners.
#[derive(Debug, Clone)]
pub struct EventConsumer {
    pub(crate) context: PublishContext,
    listeners: Arc<EventCollection>,
    config: ConsumerConfig,
}

struct Group {
    publisher: Arc<dyn Publisher>,
    /// The events, handed to the publisher as slices of this vector (no copies).
    transfers: Vec<EventEntityTransfer>,
    /// How often each event (same index) was tried before.
    retries: Vec<u32>,
    by_id: HashMap<i64, usize>,
}

impl Group {
    /// Moves the events tried before behind the others, keeping each part's order, and
    /// returns how many were not (`by_id` no longer applies).
    fn retried_last(&mut self) -> usize {
        let fresh = self.retries.iter().filter(|&&retry| retry == 0).count();
        if fresh == 0 || fresh == self.retries.len() {
            return fresh;
        }
        let mut events: Vec<(EventEntityTransfer, u32)> = std::mem::take(&mut self.transfers)
            .into_iter()
            .zip(std::mem::take(&mut self.retries))
            .collect();
        events.sort_by_key(|(_, retry)| *retry > 0);
        (self.transfers, self.retries) = events.into_iter().unzip();
        self.by_id.clear();
        fresh
    }
}

/// The events of one queue, grouped by listener and event name, with repeated events about the
/// same entity collapsed into one: what a chunk of messages (or, with direct publishing, of
/// outbox rows) holds once decoded.
#[derive(Default)]
pub(crate) struct EventBatch {
    groups: BTreeMap<(String, String), Group>,
    collapsed: usize,
}

impl EventBatch {
    /// Adds `transfers`, instances of `event_name` for `publisher`, tried `retry` times so far.
    pub(crate) fn add(
        &mut self,
        publisher: &Arc<dyn Publisher>,
        event_name: &str,
        transfers: impl IntoIterator<Item = EventEntityTransfer>,
        retry: u32,
    ) {
        let key = (publisher.name().to_owned(), event_name.to_owned());
        let group = self.groups.entry(key).or_insert_with(|| Group {
            publisher: publisher.clone(),
            transfers: Vec::new(),
            retries: Vec::new(),
            by_id: HashMap::new(),
        });
        for transfer in transfers {
            match transfer.id.and_then(|id| group.by_id.get(&id).copied()) {
                Some(index) => {
                    group.transfers[index].absorb(transfer);
                    group.retries[index] = group.retries[index].min(retry);
                    self.collapsed += 1;
                }
                None => {
                    if let Some(id) = transfer.id {
                        group.by_id.insert(id, group.transfers.len());
                    }
                    group.transfers.push(transfer);
                    group.retries.push(retry);
                }
            }
        }
    }
}

impl EventConsumer {
    /// A consumer calling `listeners` with `context`.
    pub fn new(
        context: PublishContext,
        listeners: Arc<EventCollection>,
        config: ConsumerConfig,
    ) -> Self {
        Self {
            context,
            listeners,
            config,
        }
    }

    /// The consumer's settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Processes `deliveries`, received from `queue_name`, and settles them. With `keep`, the
    /// listeners run but every message is released back to the queue instead (debugging, the
    /// original's `queue:task:start -k`), and nothing goes to the retry or error path.
    pub async fn process<Q: Queue>(
        &self,
        queue: &Q,
        queue_name: &str,
        deliveries: Vec<Delivery>,
        keep: bool,
    ) -> Result<ChunkOutcome, QueueError> {
        let mut outcome = ChunkOutcome {
            messages: deliveries.len(),
            ..ChunkOutcome::default()
        };
        let mut settlement = Settlement::default();
        let mut batch = EventBatch::default();

        for delivery in deliveries {
            if keep {
                settlement.release.push(delivery.tag);
            } else {
                settlement.acknowledge.push(delivery.tag);
            }
            let message = match EventQueueMessage::decode(&delivery.body) {
                Ok(message) => message,
                Err(error) => {
                    tracing::error!(queue = queue_name, error = %error, "event message cannot be read");
                    outcome.failed += 1;
                    settlement
                        .error
                        .push(undecodable_body(&delivery.body, &error.to_string()));
                    continue;
                }
            };
            let Some(registration) = self.listeners.listener(&message.listener_name) else {
                let reason = format!(
                    "no listener named {:?} is registered",
                    message.listener_name
                );
                tracing::error!(queue = queue_name, listener = %message.listener_name, "{reason}");
                outcome.failed += 1;
                settlement.error.push(
                    EventQueueMessage {
                        error_message: Some(reason),
                        ..message
                    }
                    .encode(),
                );
                continue;
            };
            let (retry, event_name) = (message.retry, message.event_name.clone());
            batch.add(
                &registration.publisher,
                &event_name,
                message.into_transfers(),
                retry,
            );
        }

        crate::metrics::failed(queue_name, outcome.failed);
        let handled = self.handle(queue_name, batch, &mut settlement).await;
        outcome.handled += handled.handled;
        outcome.collapsed += handled.collapsed;
        if keep {
            settlement.retry.clear();
            settlement.error.clear();
        } else {
            outcome.retried += handled.retried;
            outcome.failed += handled.failed;
        }
        queue.settle(queue_name, settlement).await?;
        Ok(outcome)
    }

    /// Calls the listeners of `batch`, whose events belong to `queue_name`, and adds what
    /// failed to `settlement`: a retry with a growing delay while an event's retry budget
    /// lasts, then the error queue with the reason. Returns the counts (no `messages`).
    pub(crate) async fn handle(
        &self,
        queue_name: &str,
        batch: EventBatch,
        settlement: &mut Settlement,
    ) -> ChunkOutcome {
        let mut outcome = ChunkOutcome {
            collapsed: batch.collapsed,
            ..ChunkOutcome::default()
        };
        let max_bulk = self.config.max_bulk.max(1);
        for ((listener, event_name), mut group) in batch.groups {
            let handled_before = outcome.handled;
            let fresh = group.retried_last();
            let group = Arc::new(group);
            let slices = [0..fresh, fresh..group.transfers.len()]
                .into_iter()
                .flat_map(|part| {
                    part.clone()
                        .step_by(max_bulk)
                        .map(move |first| first..(first + max_bulk).min(part.end))
                });
            for slice in slices {
                let first = slice.start;
                let context = self.context.clone();
                let event = event_name.clone();
                let shared = group.clone();
                let bulk = slice.clone();
                let failures = tokio::task::spawn_blocking(move || {
                    let transfers = &shared.transfers[bulk];
                    isolate::handle_isolating(&*shared.publisher, &context, &event, transfers)
                })
                .await
                .expect("handle_isolating catches panics");
                outcome.handled += slice.len() - failures.len();
                for (index, reason) in failures {
                    let (transfer, retry) = (
                        &group.transfers[first + index],
                        group.retries[first + index],
                    );
                    let mut message =
                        EventQueueMessage::batch(&listener, &event_name, vec![transfer.clone()]);
                    message.retry = retry;
                    let (max_retries, delay) = self.config.retry_policy(queue_name, retry);
                    if retry < max_retries {
                        tracing::warn!(queue = queue_name, listener = %listener, event = %event_name, id = ?transfer.id,
                            retry = retry + 1, error = %reason, "event failed, retrying");
                        message.retry += 1;
                        message.retry_message = Some(format!("Retry on: {reason}"));
                        settlement.retry.push((message.encode(), delay));
                        outcome.retried += 1;
                    } else {
                        tracing::error!(queue = queue_name, listener = %listener, event = %event_name, id = ?transfer.id,
                            retries = retry, error = %reason, "event failed, moved to the error queue");
                        message.error_message = Some(reason);
                        settlement.error.push(message.encode());
                        outcome.failed += 1;
                    }
                }
            }
            crate::metrics::published(&listener, outcome.handled - handled_before);
        }
        crate::metrics::retried(queue_name, outcome.retried);
        crate::metrics::failed(queue_name, outcome.failed);
        outcome
    }
}

/// The error-queue message of an event message that cannot be read, its body kept as text.
fn undecodable_body(body: &[u8], reason: &str) -> Vec<u8> {
    ErrorQueueMessage::new(reason)
        .with("body", String::from_utf8_lossy(body).into_owned())
        .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_retries_by_its_own_policy_and_never_waits_longer_than_a_day() {
        let mut config = ConsumerConfig::default();
        assert_eq!(config.retry_policy("event", 0), (3, Duration::from_secs(1)));
        assert_eq!(config.retry_policy("event", 2), (3, Duration::from_secs(4)));
        let slow = config.queues.entry("slow");
        slow.max_retries = Some(10);
        slow.retry_delay = Some(Duration::from_secs(3600));
        assert_eq!(
            config.retry_policy("slow", 1),
            (10, Duration::from_secs(7200))
        );
        assert_eq!(config.retry_policy("slow", 9), (10, MAX_RETRY_DELAY));
        assert_eq!(
            config.retry_policy("event", 1),
            (3, Duration::from_secs(2)),
            "other queues keep the worker's policy"
        );
        config.queues.entry("small").chunk_size = Some(7);
        assert_eq!(config.queue_messages_per_chunk("small", 1), 7);
        assert_eq!(config.queue_messages_per_chunk("event", 1), 500);
    }

    #[test]
    fn a_chunk_of_batched_messages_is_bounded_by_its_events() {
        let config = ConsumerConfig::default();
        assert_eq!(
            config.messages_per_chunk(1),
            500,
            "the original's chunk of 500"
        );
        assert_eq!(
            config.messages_per_chunk(500),
            20,
            "20 messages of 500 events"
        );
        assert_eq!(config.messages_per_chunk(100_000), 1, "always at least one");
    }
}

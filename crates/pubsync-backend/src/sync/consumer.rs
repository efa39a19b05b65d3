//! The sync consumer: applies chunks of sync queue messages to the key-value store.

use pubsync_queue_extension::{Delivery, Queue, Settlement};
use pubsync_shared::message::{ErrorQueueMessage, SyncMessage};
use pubsync_storage_extension::{KeyValueWriter, StorageChange, StorageError};
use serde_json::Value;

use super::SyncError;
use super::guard::SyncGuard;
use crate::metrics::Synced;

/// What one sync chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Queue messages in the chunk.
    pub messages: usize,
    /// Changes applied to storage (older ones skipped are not counted).
    pub applied: usize,
    /// Messages sent to the error queue.
    pub failed: usize,
}

/// Applies chunks of sync messages to storage.
#[derive(Debug, Clone)]
pub struct SyncConsumer {
    guard: SyncGuard,
}

impl SyncConsumer {
    /// A consumer applying what `guard` lets through.
    pub fn new(guard: SyncGuard) -> Self {
        Self { guard }
    }

    /// Applies `deliveries` of `queue_name` to `writer` and settles them. Each message is
    /// checked first ([`SyncGuard`]); one that fails goes to the error queue with the reason,
    /// beside the rest of its body. Every change of the chunk goes in one `apply` call; when
    /// storage refuses it for a reason other than being unreachable, each message is applied
    /// alone and those that still fail go to the error queue with the reason, so one bad
    /// message does not hold back the chunk. When storage is unreachable the chunk is released
    /// and the error returned.
    pub async fn process<Q: Queue, W: KeyValueWriter>(
        &self,
        queue: &Q,
        queue_name: &str,
        deliveries: Vec<Delivery>,
        writer: &W,
    ) -> Result<SyncOutcome, SyncError> {
        let mut outcome = SyncOutcome {
            messages: deliveries.len(),
            ..SyncOutcome::default()
        };
        let mut settlement = Settlement::default();
        let mut decoded: Vec<(&Delivery, Vec<StorageChange>)> = Vec::new();
        let mut stamp = self.guard.stamp();
        for delivery in &deliveries {
            match SyncMessage::decode_batch(&delivery.body) {
                Ok(messages) => {
                    let mut changes = Vec::with_capacity(messages.len());
                    for message in &messages {
                        match self.guard.check(message, &mut stamp) {
                            Ok(change) => changes.push(change),
                            Err(reason) => {
                                tracing::error!(queue = queue_name, key = %message.payload().key, reason, "sync message refused");
                                outcome.failed += 1;
                                settlement
                                    .error
                                    .push(sync_error_body(&message.encode(), &reason));
                            }
                        }
                    }
                    if changes.is_empty() {
                        settlement.acknowledge.push(delivery.tag);
                    } else {
                        decoded.push((delivery, changes));
                    }
                }
                Err(error) => {
                    tracing::error!(queue = queue_name, error = %error, "sync message cannot be read");
                    outcome.failed += 1;
                    settlement
                        .error
                        .push(sync_error_body(&delivery.body, &error.to_string()));
                    settlement.acknowledge.push(delivery.tag);
                }
            }
        }
        let all: Vec<StorageChange> = decoded
            .iter()
            .flat_map(|(_, changes)| changes.iter().cloned())
            .collect();
        let synced = Synced::of(&all);
        match writer.apply(all).await {
            Ok(applied) => {
                synced.record();
                outcome.applied = applied;
                settlement
                    .acknowledge
                    .extend(decoded.iter().map(|(delivery, _)| delivery.tag));
            }
            Err(error) if error.is_transient() => {
                return Err(release_all(queue, queue_name, &deliveries, error).await);
            }
            Err(error) => {
                tracing::warn!(queue = queue_name, error = %error, "bulk storage write failed, writing messages one by one");
                for (delivery, changes) in decoded {
                    let synced = Synced::of(&changes);
                    match writer.apply(changes).await {
                        Ok(applied) => {
                            synced.record();
                            outcome.applied += applied;
                        }
                        Err(error) if error.is_transient() => {
                            return Err(release_all(queue, queue_name, &deliveries, error).await);
                        }
                        Err(error) => {
                            tracing::error!(queue = queue_name, error = %error, "sync message moved to the error queue");
                            outcome.failed += 1;
                            settlement
                                .error
                                .push(sync_error_body(&delivery.body, &error.to_string()));
                        }
                    }
                    settlement.acknowledge.push(delivery.tag);
                }
            }
        }
        crate::metrics::failed(queue_name, outcome.failed);
        queue.settle(queue_name, settlement).await?;
        Ok(outcome)
    }
}

/// Puts a whole chunk back (storage is unreachable) and returns why.
async fn release_all<Q: Queue>(
    queue: &Q,
    queue_name: &str,
    deliveries: &[Delivery],
    error: StorageError,
) -> SyncError {
    let release = Settlement {
        release: deliveries.iter().map(|d| d.tag).collect(),
        ..Settlement::default()
    };
    match queue.settle(queue_name, release).await {
        Ok(()) => error.into(),
        Err(queue_error) => queue_error.into(),
    }
}

/// The error-queue message of a sync message that cannot be applied: its body is kept as the
/// JSON it is, or as text when it is not JSON.
fn sync_error_body(body: &[u8], reason: &str) -> Vec<u8> {
    let original = serde_json::from_slice::<Value>(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    ErrorQueueMessage::new(reason)
        .with("body", original)
        .encode()
}

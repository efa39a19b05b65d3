//! The queue contract: what pubsync needs from a message queue, whichever carries it (the
//! application database on the embedded default, RabbitMQ in production).
//!
//! A queue is named (`event`, `sync.storage.hello`); every queue `q` has an error queue
//! `q.error` and a retry path that brings a message back to `q` after a delay. Delivery is
//! at least once: a message received and not settled comes back (after the lease runs out, or
//! when the consumer's connection closes), so consumers must be idempotent.
//!
//! The contract does not decode bodies: that is the backend's business.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

use std::future::Future;
use std::time::{Duration, SystemTime};

#[cfg(feature = "testing")]
pub mod conformance;
mod prefixed;

pub use prefixed::Prefixed;

/// A boxed error from an implementation's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong talking to a queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue's server or database could not be reached or dropped the connection.
    #[error("queue backend unavailable ({backend}): {source}")]
    Unavailable {
        /// Which backend, with its address where known.
        backend: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// An operation on a queue failed.
    #[error("queue {queue:?}: {operation} failed: {source}")]
    Operation {
        /// The queue.
        queue: String,
        /// What was attempted (`send`, `receive`, `settle`, …).
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A queue name that cannot be used.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
}

impl QueueError {
    /// Whether trying again later may succeed (lost connections, busy databases).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// A failed send: the messages come back to the caller, so nothing is dropped.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct SendError {
    /// The bodies that were to be sent. Some may have arrived: sending them again is safe
    /// because consumers are idempotent.
    pub bodies: Vec<Vec<u8>>,
    /// Why the send failed.
    #[source]
    pub source: QueueError,
}

/// Identifies one received message to the implementation that delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag(pub u64);

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The queue it came from.
    pub queue: String,
    /// How to settle it.
    pub tag: DeliveryTag,
    /// The body as sent.
    pub body: Vec<u8>,
    /// Whether it was delivered before and not settled (its consumer died or released it).
    pub redelivered: bool,
    /// Since when it could be received: when it was sent, or, for a retry, when its delay ran
    /// out; `None` where the backend does not record it (a message another client sent to
    /// RabbitMQ without a timestamp). Accurate to the second on RabbitMQ.
    pub available_at: Option<SystemTime>,
}

/// What becomes of the messages of one received chunk, settled together.
///
/// Implementations make the retry and error messages durable before the acknowledgements
/// take effect (in one transaction where they can), so a crash in between duplicates a message
/// but never loses one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Done with: removed from the queue.
    pub acknowledge: Vec<DeliveryTag>,
    /// Put back unchanged, to be delivered again (`queue:task:start --keep`).
    pub release: Vec<DeliveryTag>,
    /// New messages to deliver on this queue again after their delay.
    pub retry: Vec<(Vec<u8>, Duration)>,
    /// New messages for this queue's error queue, `<queue>.error`.
    pub error: Vec<Vec<u8>>,
}

impl Settlement {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.acknowledge.is_empty()
            && self.release.is_empty()
            && self.retry.is_empty()
            && self.error.is_empty()
    }
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready to be received now.
    pub ready: u64,
    /// Received and not yet settled, or waiting out a retry delay.
    pub pending: u64,
}

impl QueueDepth {
    /// Whether nothing is ready, in flight or waiting.
    pub fn is_empty(&self) -> bool {
        self.ready == 0 && self.pending == 0
    }
}

/// What [`error_queue_name`] puts after a queue's name.
pub const ERROR_QUEUE_SUFFIX: &str = ".error";

/// The name of `queue`'s error queue.
pub fn error_queue_name(queue: &str) -> String {
    format!("{queue}{ERROR_QUEUE_SUFFIX}")
}

/// A message queue.
pub trait Queue: Send + Sync + 'static {
    /// Creates `queues`, their error queues and retry paths where the backend needs that.
    /// Calling it again is harmless.
    fn declare(&self, queues: &[String]) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Sends `bodies` to `queue`, in order. When it returns `Ok`, every message is durable.
    fn send(
        &self,
        queue: &str,
        bodies: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Receives up to `max` messages, waiting up to `wait` for the first; an empty chunk means
    /// none arrived in time. Received messages stay invisible to other consumers until they
    /// are settled, or come back if this consumer dies.
    fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, QueueError>> + Send;

    /// Settles received messages of `queue`.
    fn settle(
        &self,
        queue: &str,
        settlement: Settlement,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// How many messages `queue` holds.
    fn depth(&self, queue: &str) -> impl Future<Output = Result<QueueDepth, QueueError>> + Send;

    /// Gives back every message this instance received and has not settled, on every queue,
    /// so that other consumers get them now rather than when they would come back by
    /// themselves; returns how many it gave back, where the backend can tell. For a consumer
    /// that stops without finishing the chunk in hand.
    fn release_held(&self) -> impl Future<Output = Result<u64, QueueError>> + Send;
}

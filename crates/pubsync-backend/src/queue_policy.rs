//! Per-queue settings: how many messages a chunk of one queue takes, how many chunks of it a
//! worker processes at once, and how its failing events are retried, where they differ from
//! the worker's own settings.

use std::collections::BTreeMap;
use std::time::Duration;

/// How one queue is consumed. Every field left `None` is the worker's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Messages taken per chunk.
    pub chunk_size: Option<usize>,
    /// Chunks of the queue processed at the same time by one worker process.
    pub workers: Option<usize>,
    /// Retries of a failing event (event queues only).
    pub max_retries: Option<u32>,
    /// The delay before the first retry, doubling with each further one (event queues only).
    pub retry_delay: Option<Duration>,
}

/// [`QueuePolicy`] by queue name (without the queue prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueuePolicies(BTreeMap<String, QueuePolicy>);

impl QueuePolicies {
    /// The policy of `queue`: all `None` unless one was set.
    pub fn get(&self, queue: &str) -> QueuePolicy {
        self.0.get(queue).copied().unwrap_or_default()
    }

    /// The policy of `queue`, to change.
    pub fn entry(&mut self, queue: &str) -> &mut QueuePolicy {
        self.0.entry(queue.to_owned()).or_default()
    }

    /// Every queue with a policy, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &QueuePolicy)> {
        self.0.iter().map(|(name, policy)| (name.as_str(), policy))
    }

    /// Chunks of `queue` processed at the same time: at least one.
    pub fn workers(&self, queue: &str) -> usize {
        self.get(queue).workers.unwrap_or(1).max(1)
    }
}

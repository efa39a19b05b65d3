//! [`Prefixed`]: a queue whose names all carry a prefix, so several applications (or tests) can
//! share one broker without seeing each other's messages.

use std::time::Duration;

use crate::{Delivery, Queue, QueueDepth, QueueError, SendError, Settlement};

/// `inner` with `prefix` put before every queue name (`shop1.` makes `event` `shop1.event`, and
/// its error queue `shop1.event.error`). Deliveries report the name without the prefix.
#[derive(Debug)]
pub struct Prefixed<Q> {
    inner: Q,
    prefix: String,
}

impl<Q: Queue> Prefixed<Q> {
    /// Wraps `inner`; an empty prefix changes nothing.
    pub fn new(inner: Q, prefix: impl Into<String>) -> Self {
        Self {
            inner,
            prefix: prefix.into(),
        }
    }

    /// The wrapped queue.
    pub fn inner(&self) -> &Q {
        &self.inner
    }

    fn name(&self, queue: &str) -> String {
        format!("{}{queue}", self.prefix)
    }
}

impl<Q: Queue> Queue for Prefixed<Q> {
    async fn declare(&self, queues: &[String]) -> Result<(), QueueError> {
        let names: Vec<String> = queues.iter().map(|queue| self.name(queue)).collect();
        self.inner.declare(&names).await
    }

    async fn send(&self, queue: &str, bodies: Vec<Vec<u8>>) -> Result<(), SendError> {
        self.inner.send(&self.name(queue), bodies).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let mut deliveries = self.inner.receive(&self.name(queue), max, wait).await?;
        for delivery in &mut deliveries {
            delivery.queue = queue.to_owned();
        }
        Ok(deliveries)
    }

    async fn settle(&self, queue: &str, settlement: Settlement) -> Result<(), QueueError> {
        self.inner.settle(&self.name(queue), settlement).await
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, QueueError> {
        self.inner.depth(&self.name(queue)).await
    }

    async fn release_held(&self) -> Result<u64, QueueError> {
        self.inner.release_held().await
    }
}

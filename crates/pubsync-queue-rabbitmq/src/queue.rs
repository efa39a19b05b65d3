//! The queue contract on RabbitMQ: declare, send with publisher confirms, receive from one
//! consumer channel per queue, settle (retries and errors published before acknowledging), and
//! depth.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicNackArguments, BasicQosArguments,
};
use pubsync_queue_extension::{
    Delivery, DeliveryTag, Queue, QueueDepth, QueueError, SendError, Settlement, error_queue_name,
};

use crate::channel::{Consumer, Events, Outgoing, Publisher, channel_failure, lock};
use crate::connection::Session;
use crate::rabbit_queue::Inner;
use crate::topology::{
    ERROR_ROUTING_KEY, MAIN_ROUTING_KEY, retry_delay_rung, retry_queue_name, retry_routing_key,
    rung_millis, validate_queue_name,
};
use crate::{RabbitQueue, RabbitQueueError};

/// Bits of a [`DeliveryTag`] that hold the AMQP delivery tag; the bits above hold the serial
/// number of the consumer channel. A channel delivers 2^40 messages (a year at 30k/s) before
/// it is replaced.
const AMQP_TAG_BITS: u32 = 40;
const AMQP_TAG_MASK: u64 = (1 << AMQP_TAG_BITS) - 1;

impl Queue for RabbitQueue {
    async fn declare(&self, queues: &[String]) -> Result<(), QueueError> {
        for queue in queues {
            validate_queue_name(queue)?;
            validate_queue_name(&error_queue_name(queue))?;
        }
        let inner = &self.inner;
        let session = inner.session()?;
        for queue in queues {
            inner
                .declare_topology(&session, queue)
                .await
                .map_err(|error| inner.queue_error(queue, "declare", error))?;
            lock(&inner.declared).insert(queue.clone());
        }
        Ok(())
    }

    async fn send(&self, queue: &str, bodies: Vec<Vec<u8>>) -> Result<(), SendError> {
        if let Err(source) = validate_queue_name(queue) {
            return Err(SendError { bodies, source });
        }
        if bodies.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let session = match inner.session() {
            Ok(session) => session,
            Err(source) => return Err(SendError { bodies, source }),
        };
        let messages: Vec<Outgoing<'_>> = bodies
            .iter()
            .map(|body| Outgoing {
                exchange: queue,
                routing_key: MAIN_ROUTING_KEY.to_owned(),
                body,
            })
            .collect();
        let result = inner.publish(&session, &messages).await;
        drop(messages);
        result.map_err(|error| SendError {
            bodies,
            source: inner.queue_error(queue, "send", error),
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
        self.inner
            .receive_from(queue, max, wait)
            .await
            .map_err(|error| self.inner.queue_error(queue, "receive", error))
    }

    async fn settle(&self, queue: &str, settlement: Settlement) -> Result<(), QueueError> {
        validate_queue_name(queue)?;
        if settlement.is_empty() {
            return Ok(());
        }
        self.inner
            .settle_on(queue, settlement)
            .await
            .map_err(|error| self.inner.queue_error(queue, "settle", error))
    }

    async fn depth(&self, queue: &str) -> Result<QueueDepth, QueueError> {
        validate_queue_name(queue)?;
        self.inner
            .depth_of(queue)
            .await
            .map_err(|error| self.inner.queue_error(queue, "depth", error))
    }

    /// Closes every consumer channel: the broker puts back what they hold unacknowledged,
    /// handed out or still in the prefetch window. The next `receive` starts a new consumer.
    async fn release_held(&self) -> Result<u64, QueueError> {
        let Ok(session) = self.inner.session() else {
            // No connection: the broker already put back what it had delivered.
            return Ok(0);
        };
        let consumers: Vec<Arc<Consumer>> = lock(&session.consumers)
            .drain()
            .map(|(_, consumer)| consumer)
            .collect();
        let mut held = 0;
        for consumer in consumers {
            {
                let mut buffer = lock(&consumer.buffer);
                held += (buffer.ready.len() + buffer.unsettled.len()) as u64;
                buffer.ready.clear();
                buffer.unsettled.clear();
                buffer.closed = true;
            }
            let closing = self
                .inner
                .round_trip("channel.close", consumer.channel.clone().close())
                .await;
            let failure = match closing {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error.to_string(),
                Err(error) => error.to_string(),
            };
            tracing::warn!(error = %failure, "closing a consumer channel failed: the broker puts its messages back when the connection closes");
        }
        Ok(held)
    }
}

impl Inner {
    /// Publishes with confirms on the session's publishing channel, reopening it as needed.
    pub(crate) async fn publish(
        &self,
        session: &Session,
        messages: &[Outgoing<'_>],
    ) -> Result<(), RabbitQueueError> {
        let mut publisher = session.publisher.lock().await;
        if !publisher.as_ref().is_some_and(Publisher::is_open) {
            *publisher = None;
            if !session.connection.is_open() {
                return Err(RabbitQueueError::Disconnected);
            }
            let opened = tokio::time::timeout(
                self.options.operation_timeout,
                Publisher::open(&session.connection),
            )
            .await
            .map_err(|_| RabbitQueueError::Timeout {
                operation: "confirm.select",
                timeout: self.options.operation_timeout,
            })??;
            *publisher = Some(opened);
        }
        let channel = publisher.as_mut().expect("opened above");
        let result = channel
            .publish_confirmed(&session.connection, messages, self.options.confirm_timeout)
            .await;
        match &result {
            // The channel is still in a known state after a nack or a return.
            Ok(()) | Err(RabbitQueueError::Nacked { .. } | RabbitQueueError::Unroutable { .. }) => {
            }
            Err(_) => *publisher = None,
        }
        result
    }

    /// The consumer of `queue` on this session, started when missing or closed.
    pub(crate) async fn consumer(
        &self,
        session: &Session,
        queue: &str,
    ) -> Result<Arc<Consumer>, RabbitQueueError> {
        if let Some(consumer) = lock(&session.consumers).get(queue)
            && consumer.is_open()
        {
            return Ok(consumer.clone());
        }
        let _creating = session.consumer_creation.lock().await;
        if let Some(consumer) = lock(&session.consumers).get(queue)
            && consumer.is_open()
        {
            return Ok(consumer.clone());
        }
        lock(&session.consumers).remove(queue);
        if !session.connection.is_open() {
            return Err(RabbitQueueError::Disconnected);
        }
        let channel = self
            .round_trip("channel.open", session.connection.open_channel(None))
            .await??;
        let (events, status) = Events::new();
        channel.register_callback(events).await?;
        let failed = |error| channel_failure(&session.connection, &status, Some(error));
        self.round_trip(
            "basic.qos",
            channel.basic_qos(BasicQosArguments::new(0, self.options.prefetch, false)),
        )
        .await?
        .map_err(failed)?;
        let (_consumer_tag, deliveries) = self
            .round_trip(
                "basic.consume",
                channel.basic_consume_rx(
                    BasicConsumeArguments::new(queue, "")
                        .manual_ack(true)
                        .finish(),
                ),
            )
            .await?
            .map_err(failed)?;
        let serial = (self.consumer_serial.fetch_add(1, Ordering::Relaxed) + 1)
            & (u64::MAX >> AMQP_TAG_BITS);
        let consumer = Arc::new(Consumer::start(serial, channel, status, deliveries));
        lock(&session.consumers).insert(queue.to_owned(), consumer.clone());
        Ok(consumer)
    }

    pub(crate) async fn receive_from(
        &self,
        queue: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, RabbitQueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        let session = lock(&self.session)
            .clone()
            .filter(|session| session.connection.is_open())
            .ok_or(RabbitQueueError::Disconnected)?;
        let consumer = self.consumer(&session, queue).await?;
        let mut taken = Vec::new();
        let mut recycle = false;
        loop {
            let arrived = consumer.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut buffer = lock(&consumer.buffer);
                while taken.len() < max {
                    let Some(received) = buffer.ready.pop_front() else {
                        break;
                    };
                    if received.amqp_tag > AMQP_TAG_MASK {
                        // Out of tag space for this channel: start a new one; the broker
                        // delivers this message again.
                        recycle = true;
                        continue;
                    }
                    buffer.unsettled.insert(received.amqp_tag);
                    taken.push(received);
                }
                if taken.len() >= max || recycle {
                    break;
                }
                if buffer.closed {
                    if taken.is_empty() {
                        drop(buffer);
                        lock(&session.consumers)
                            .retain(|_, current| !Arc::ptr_eq(current, &consumer));
                        return Err(channel_failure(&session.connection, &consumer.status, None));
                    }
                    break;
                }
            }
            let until = if taken.is_empty() {
                deadline
            } else {
                tokio::time::Instant::now() + self.options.receive_linger
            };
            if tokio::time::timeout_at(until, arrived).await.is_err() {
                break;
            }
        }
        if recycle {
            lock(&session.consumers).retain(|_, current| !Arc::ptr_eq(current, &consumer));
        }
        Ok(taken
            .into_iter()
            .map(|received| Delivery {
                queue: queue.to_owned(),
                tag: DeliveryTag(consumer.serial << AMQP_TAG_BITS | received.amqp_tag),
                body: received.body,
                redelivered: received.redelivered,
                available_at: received.sent_at,
            })
            .collect())
    }

    pub(crate) async fn settle_on(
        &self,
        queue: &str,
        settlement: Settlement,
    ) -> Result<(), RabbitQueueError> {
        let Settlement {
            acknowledge,
            release,
            retry,
            error,
        } = settlement;
        let current = lock(&self.session).clone();
        if !retry.is_empty() || !error.is_empty() {
            let session = current
                .as_ref()
                .filter(|session| session.connection.is_open())
                .ok_or(RabbitQueueError::Disconnected)?;
            let mut messages = Vec::with_capacity(retry.len() + error.len());
            for (body, delay) in &retry {
                let routing_key = match retry_delay_rung(*delay) {
                    None => MAIN_ROUTING_KEY.to_owned(),
                    Some(rung) => {
                        let rung = u64::try_from(rung.as_millis()).unwrap_or(u64::MAX);
                        self.ensure_retry_queue(session, queue, rung).await?;
                        retry_routing_key(rung)
                    }
                };
                messages.push(Outgoing {
                    exchange: queue,
                    routing_key,
                    body,
                });
            }
            for body in &error {
                messages.push(Outgoing {
                    exchange: queue,
                    routing_key: ERROR_ROUTING_KEY.to_owned(),
                    body,
                });
            }
            self.publish(session, &messages).await?;
        }
        if acknowledge.is_empty() && release.is_empty() {
            return Ok(());
        }
        let consumer = current.and_then(|session| lock(&session.consumers).get(queue).cloned());
        let acknowledged: BTreeSet<DeliveryTag> = acknowledge.into_iter().collect();
        let released: BTreeSet<DeliveryTag> = release
            .into_iter()
            .filter(|tag| !acknowledged.contains(tag))
            .collect();
        let mut stale = 0usize;
        let mut acks = Vec::new();
        let mut nacks = Vec::new();
        let mut multiple = false;
        match &consumer {
            None => stale = acknowledged.len() + released.len(),
            Some(consumer) => {
                let mut buffer = lock(&consumer.buffer);
                for (tags, into) in [(&acknowledged, &mut acks), (&released, &mut nacks)] {
                    for tag in tags {
                        let amqp_tag = tag.0 & AMQP_TAG_MASK;
                        if tag.0 >> AMQP_TAG_BITS == consumer.serial
                            && buffer.unsettled.remove(&amqp_tag)
                        {
                            into.push(amqp_tag);
                        } else {
                            stale += 1;
                        }
                    }
                }
                acks.sort_unstable();
                nacks.sort_unstable();
                // One `multiple` acknowledgement covers every unacknowledged delivery up to
                // the highest tag: allowed when none of those is still unsettled here.
                // Prefetched deliveries not yet handed out all have higher tags (the buffer
                // is in delivery order), and releases are sent before it.
                if let Some(&highest) = acks.last()
                    && acks.len() > 1
                {
                    multiple = buffer.unsettled.range(..=highest).next().is_none();
                }
            }
        }
        if stale > 0 {
            tracing::warn!(queue = %queue, stale, "ignoring delivery tags from a closed channel or already settled; the broker delivers those messages again");
        }
        let Some(consumer) = consumer else {
            return Ok(());
        };
        let mut failed = None;
        for tag in nacks {
            if let Err(error) = consumer
                .channel
                .basic_nack(BasicNackArguments::new(tag, false, true))
                .await
            {
                failed = Some(error);
            }
        }
        if multiple {
            let highest = *acks.last().expect("more than one");
            if let Err(error) = consumer
                .channel
                .basic_ack(BasicAckArguments::new(highest, true))
                .await
            {
                failed = Some(error);
            }
        } else {
            for tag in acks {
                if let Err(error) = consumer
                    .channel
                    .basic_ack(BasicAckArguments::new(tag, false))
                    .await
                {
                    failed = Some(error);
                }
            }
        }
        if let Some(error) = failed {
            // The channel is gone, and with it the deliveries: the broker sends them again.
            tracing::warn!(queue = %queue, error = %error, "could not settle on a closed channel; the broker delivers those messages again");
        }
        Ok(())
    }

    pub(crate) async fn depth_of(&self, queue: &str) -> Result<QueueDepth, RabbitQueueError> {
        let session = lock(&self.session)
            .clone()
            .filter(|session| session.connection.is_open())
            .ok_or(RabbitQueueError::Disconnected)?;
        let ready = {
            let mut admin = session.admin.lock().await;
            self.message_count(&session, &mut admin, queue)
                .await?
                .ok_or_else(|| RabbitQueueError::ChannelClosed {
                    code: 404,
                    text: format!("NOT_FOUND - no queue '{queue}'; declare it first"),
                })?
        };
        let mut pending = 0;
        if let Some(consumer) = lock(&session.consumers).get(queue) {
            let buffer = lock(&consumer.buffer);
            pending += (buffer.ready.len() + buffer.unsettled.len()) as u64;
        }
        // Every rung is declared before it is counted: a passive declare of a missing queue
        // closes the channel, and probing the ladder that way on every look at an idle queue
        // used up the connection's channel ids. Declared, a rung that other instances fill
        // is counted too; the first look at a queue declares its whole ladder, once.
        // An error queue has no retries.
        if queue.ends_with(pubsync_queue_extension::ERROR_QUEUE_SUFFIX) {
            return Ok(QueueDepth { ready, pending });
        }
        for rung in rung_millis() {
            self.ensure_retry_queue(&session, queue, rung).await?;
        }
        let mut admin = session.admin.lock().await;
        for rung in rung_millis() {
            let name = retry_queue_name(queue, Duration::from_millis(rung));
            if let Some(count) = self.message_count(&session, &mut admin, &name).await? {
                pending += count;
            }
        }
        Ok(QueueDepth { ready, pending })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_tags_keep_channel_and_amqp_tag_apart() {
        let serial = 7u64;
        let tag = serial << AMQP_TAG_BITS | 123_456;
        assert_eq!(tag >> AMQP_TAG_BITS, serial);
        assert_eq!(tag & AMQP_TAG_MASK, 123_456);
    }
}

//! What amqprs leaves to us on a channel: publisher-confirm tracking, the reason a channel was
//! closed, and a buffer between a consumer's unbounded receiver and `receive`.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{BasicPublishArguments, Channel, ConfirmSelectArguments, ConsumerMessage};
use amqprs::connection::Connection;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, DELIVERY_MODE_PERSISTENT, Nack, Return};
use tokio::sync::{Notify, mpsc, watch};

use crate::RabbitQueueError;

/// Locks a std mutex, ignoring poisoning (the data stays consistent: no panics while held).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the broker told us about a channel, updated by [`Events`].
#[derive(Debug, Default)]
pub(crate) struct ChannelStatus {
    /// Publish sequence numbers not yet confirmed (publisher channels).
    pub unconfirmed: BTreeSet<u64>,
    /// How many of the current batch the broker nacked.
    pub nacked: usize,
    /// How many of the current batch came back unroutable (`mandatory`).
    pub returned: usize,
    /// The broker closed the channel: reply code and text.
    pub closed: Option<(u16, String)>,
    /// The channel's dispatcher is gone (the channel or the connection closed).
    pub gone: bool,
}

/// The channel callback: records confirms, returns and closes into a watch, so that waiters
/// wake up. Register it before `confirm_select`.
pub(crate) struct Events {
    status: Arc<watch::Sender<ChannelStatus>>,
}

impl Events {
    pub(crate) fn new() -> (Self, Arc<watch::Sender<ChannelStatus>>) {
        let status = Arc::new(watch::Sender::new(ChannelStatus::default()));
        (
            Self {
                status: status.clone(),
            },
            status,
        )
    }

    fn settle_confirms(&self, delivery_tag: u64, multiple: bool, nack: bool) {
        self.status.send_modify(|status| {
            let settled = if multiple {
                let rest = status.unconfirmed.split_off(&(delivery_tag + 1));
                std::mem::replace(&mut status.unconfirmed, rest).len()
            } else {
                usize::from(status.unconfirmed.remove(&delivery_tag))
            };
            if nack {
                status.nacked += settled;
            }
        });
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.status.send_modify(|status| status.gone = true);
    }
}

#[async_trait::async_trait]
impl ChannelCallback for Events {
    async fn close(
        &mut self,
        _channel: &Channel,
        close: CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::debug!(code = close.reply_code(), reason = %close.reply_text(), "broker closed a channel");
        self.status.send_modify(|status| {
            status.closed = Some((close.reply_code(), close.reply_text().clone()));
        });
        Ok(())
    }

    async fn cancel(
        &mut self,
        _channel: &Channel,
        cancel: Cancel,
    ) -> Result<(), amqprs::error::Error> {
        tracing::warn!(consumer_tag = %cancel.consumer_tag(), "broker cancelled a consumer");
        self.status.send_modify(|status| {
            status.closed = Some((0, "consumer cancelled by the broker".to_owned()));
        });
        Ok(())
    }

    async fn flow(
        &mut self,
        _channel: &Channel,
        active: bool,
    ) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }

    async fn publish_ack(&mut self, _channel: &Channel, ack: Ack) {
        self.settle_confirms(ack.delivery_tag(), ack.mutiple(), false);
    }

    async fn publish_nack(&mut self, _channel: &Channel, nack: Nack) {
        self.settle_confirms(nack.delivery_tag(), nack.multiple(), true);
    }

    async fn publish_return(
        &mut self,
        _channel: &Channel,
        ret: Return,
        _basic_properties: BasicProperties,
        _content: Vec<u8>,
    ) {
        tracing::warn!(code = ret.reply_code(), reason = %ret.reply_text(), "broker returned an unroutable message");
        self.status.send_modify(|status| status.returned += 1);
    }
}

/// Why a channel operation failed.
pub(crate) fn channel_failure(
    connection: &Connection,
    status: &watch::Sender<ChannelStatus>,
    error: Option<amqprs::error::Error>,
) -> RabbitQueueError {
    if let Some((code, text)) = status.borrow().closed.clone() {
        return RabbitQueueError::ChannelClosed { code, text };
    }
    if !connection.is_open() {
        return RabbitQueueError::Disconnected;
    }
    match error {
        Some(error) => RabbitQueueError::Amqp(error),
        None => RabbitQueueError::Disconnected,
    }
}

/// A channel in confirm mode, and the sequence number of its next publish.
pub(crate) struct Publisher {
    pub channel: Channel,
    pub status: Arc<watch::Sender<ChannelStatus>>,
    next_sequence: u64,
}

/// One message to publish: routing key (on the queue's exchange) and body.
pub(crate) struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: String,
    pub body: &'a [u8],
}

impl Publisher {
    /// Opens a channel and puts it into confirm mode (callback first, then `confirm_select`).
    pub(crate) async fn open(connection: &Connection) -> Result<Self, RabbitQueueError> {
        let channel = connection.open_channel(None).await?;
        let (events, status) = Events::new();
        channel.register_callback(events).await?;
        channel
            .confirm_select(ConfirmSelectArguments::new(false))
            .await
            .map_err(|error| channel_failure(connection, &status, Some(error)))?;
        Ok(Self {
            channel,
            status,
            next_sequence: 1,
        })
    }

    pub(crate) fn is_open(&self) -> bool {
        self.channel.is_open() && self.channel.is_connection_open() && {
            let status = self.status.borrow();
            status.closed.is_none() && !status.gone
        }
    }

    /// Publishes persistent, mandatory messages and waits until the broker confirmed every one.
    /// Any failure (nack, unroutable, closed channel, timeout) fails the whole batch; the
    /// channel must not be used again after an error other than `Nacked` or `Unroutable`.
    pub(crate) async fn publish_confirmed(
        &mut self,
        connection: &Connection,
        messages: &[Outgoing<'_>],
        confirm_timeout: Duration,
    ) -> Result<(), RabbitQueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let first = self.next_sequence;
        let count = messages.len() as u64;
        self.status.send_modify(|status| {
            status.nacked = 0;
            status.returned = 0;
            status.unconfirmed.extend(first..first + count);
        });
        let mut properties = BasicProperties::default();
        properties.with_delivery_mode(DELIVERY_MODE_PERSISTENT);
        if let Ok(since_epoch) = SystemTime::now().duration_since(UNIX_EPOCH) {
            properties.with_timestamp(since_epoch.as_secs());
        }
        for message in messages {
            let arguments = BasicPublishArguments::new(message.exchange, &message.routing_key)
                .mandatory(true)
                .finish();
            self.next_sequence += 1;
            if let Err(error) = self
                .channel
                .basic_publish(properties.clone(), message.body.to_vec(), arguments)
                .await
            {
                return Err(channel_failure(connection, &self.status, Some(error)));
            }
        }
        let mut receiver = self.status.subscribe();
        let waited = tokio::time::timeout(
            confirm_timeout,
            receiver.wait_for(|status| {
                status.unconfirmed.is_empty() || status.closed.is_some() || status.gone
            }),
        )
        .await;
        // Copy what we need out of the watch's read guard before anything writes to it.
        let waited = waited.map(|result| {
            result.map(|status| (status.unconfirmed.len(), status.nacked, status.returned))
        });
        let outcome = match waited {
            Err(_) => Err(RabbitQueueError::ConfirmTimeout {
                timeout: confirm_timeout,
                unconfirmed: self.status.borrow().unconfirmed.len(),
            }),
            Ok(Err(_)) => Err(RabbitQueueError::Disconnected),
            Ok(Ok((unconfirmed, _, _))) if unconfirmed > 0 => {
                Err(channel_failure(connection, &self.status, None))
            }
            Ok(Ok((_, nacked, _))) if nacked > 0 => Err(RabbitQueueError::Nacked { count: nacked }),
            Ok(Ok((_, _, returned))) if returned > 0 => {
                Err(RabbitQueueError::Unroutable { count: returned })
            }
            Ok(Ok(_)) => Ok(()),
        };
        self.status.send_modify(|status| status.unconfirmed.clear());
        outcome
    }
}

/// One delivery taken from a consumer's channel.
pub(crate) struct Received {
    pub amqp_tag: u64,
    pub body: Vec<u8>,
    pub redelivered: bool,
    /// The `timestamp` property pubsync's publisher sets.
    pub sent_at: Option<SystemTime>,
}

/// The state shared between a consumer's pump task and `receive`/`settle`.
#[derive(Default)]
pub(crate) struct Buffer {
    /// Delivered by the broker, not yet handed out by `receive` (in delivery order).
    pub ready: VecDeque<Received>,
    /// Handed out and not yet settled (AMQP delivery tags of this channel).
    pub unsettled: BTreeSet<u64>,
    /// The channel closed: nothing more arrives, tags can no longer be settled.
    pub closed: bool,
}

/// A consumer: its own channel with a prefetch window, and a task that moves deliveries from
/// amqprs's unbounded receiver into [`Buffer`].
pub(crate) struct Consumer {
    /// Unique among this `RabbitQueue`'s consumers; the high bits of every `DeliveryTag`.
    pub serial: u64,
    pub channel: Channel,
    pub status: Arc<watch::Sender<ChannelStatus>>,
    pub buffer: Arc<Mutex<Buffer>>,
    pub arrived: Arc<Notify>,
}

impl Consumer {
    pub(crate) fn start(
        serial: u64,
        channel: Channel,
        status: Arc<watch::Sender<ChannelStatus>>,
        mut deliveries: mpsc::UnboundedReceiver<ConsumerMessage>,
    ) -> Self {
        let buffer = Arc::new(Mutex::new(Buffer::default()));
        let arrived = Arc::new(Notify::new());
        let (pump_buffer, pump_arrived) = (buffer.clone(), arrived.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while deliveries.recv_many(&mut batch, 1024).await > 0 {
                {
                    let mut buffer = lock(&pump_buffer);
                    for message in batch.drain(..) {
                        let (Some(deliver), Some(content)) = (message.deliver, message.content)
                        else {
                            continue;
                        };
                        let sent_at = message
                            .basic_properties
                            .as_ref()
                            .and_then(BasicProperties::timestamp)
                            .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds));
                        buffer.ready.push_back(Received {
                            amqp_tag: deliver.delivery_tag(),
                            body: content,
                            redelivered: deliver.redelivered(),
                            sent_at,
                        });
                    }
                }
                pump_arrived.notify_waiters();
            }
            // The channel is gone: what it delivered comes back from the broker (to any
            // consumer), so drop the local copies rather than process them twice.
            let mut buffer = lock(&pump_buffer);
            buffer.closed = true;
            buffer.ready.clear();
            buffer.unsettled.clear();
            drop(buffer);
            pump_arrived.notify_waiters();
        });
        Self {
            serial,
            channel,
            status,
            buffer,
            arrived,
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.channel.is_open()
            && self.channel.is_connection_open()
            && self.status.borrow().closed.is_none()
            && !lock(&self.buffer).closed
    }
}

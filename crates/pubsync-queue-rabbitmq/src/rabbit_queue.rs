//! [`RabbitQueue`], the handle on one connection to the broker: its shared state, connecting,
//! and deleting the queues and exchange of one pubsync queue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use amqprs::channel::{ExchangeDeleteArguments, QueueDeleteArguments};
use pubsync_queue_extension::{QueueError, error_queue_name};
use tokio::sync::oneshot;

use crate::channel::lock;
use crate::connection::{Session, keep_connected};
use crate::topology::{retry_queue_name, rung_millis, validate_queue_name};
use crate::{AmqpAddress, RabbitQueueOptions};

/// A queue on RabbitMQ; see the [crate documentation](crate) for the topology and guarantees.
///
/// Semantics, on top of the [`Queue`] contract:
/// - **Declare** creates the exchange, the queue and its error queue (retry queues come when
///   first needed), and remembers them to declare them again after a reconnect.
/// - **Send** publishes to the queue's exchange and returns once every message is confirmed;
///   one `send` at a time per instance uses the publishing channel.
/// - **Receive** starts, on the first call for a queue, a consumer on its own channel with the
///   prefetch window, and keeps it. It waits up to `wait` for the first delivery, then takes
///   what arrives within [`RabbitQueueOptions::receive_linger`] of the previous one, up to
///   `max`. Several instances (processes) on one queue share its messages.
/// - **Settle** publishes retries (to `q.retry.<ms>`, or straight to `q` for a zero delay) and
///   errors (to `q.error`) with confirms, then releases (`basic.nack` with requeue) and
///   acknowledges, with one `multiple` acknowledgement when the chunk allows it. A tag both
///   acknowledged and released is acknowledged. A [`DeliveryTag`] carries the serial number of
///   its consumer channel: tags from a channel that has closed since (a reconnect) are ignored
///   with a warning, as are tags already settled, since acknowledging a tag twice makes the
///   broker close the channel. Their messages are delivered again.
/// - **Depth**: `ready` is the queue's message count from a passive declare (messages not
///   delivered to any consumer). `pending` counts this instance's deliveries of the queue not
///   yet settled (including those prefetched and not yet handed out by `receive`) plus the
///   messages waiting in the queue's retry queues. Messages other consumers hold
///   unacknowledged are invisible over AMQP: only the management API reports them.
///
/// Errors: a closed connection, a timeout, or a broker shutting down give
/// [`QueueError::Unavailable`] (transient: the instance reconnects in the background); other
/// failures [`QueueError::Operation`] with a [`RabbitQueueError`] source.
///
/// [`Queue`]: pubsync_queue_extension::Queue
/// [`DeliveryTag`]: pubsync_queue_extension::DeliveryTag
/// [`RabbitQueueError`]: crate::RabbitQueueError
pub struct RabbitQueue {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("address", &self.inner.address)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) address: AmqpAddress,
    pub(crate) options: RabbitQueueOptions,
    /// The live connection and its channels; `None` while reconnecting.
    pub(crate) session: Mutex<Option<Arc<Session>>>,
    /// Queues declared through this instance, declared again after a reconnect.
    pub(crate) declared: Mutex<BTreeSet<String>>,
    /// Retry queues known to exist: queue name → rungs in milliseconds.
    pub(crate) retry_queues: Mutex<BTreeMap<String, BTreeSet<u64>>>,
    pub(crate) consumer_serial: AtomicU64,
    /// Dropped with the last `RabbitQueue`: stops the reconnection task.
    _stop: oneshot::Sender<()>,
}

impl RabbitQueue {
    /// Connects to the broker at `address`. Fails with [`QueueError::Unavailable`] when it
    /// cannot be reached (the caller may try again), and with [`QueueError::Operation`] for
    /// unusable options or a refused login.
    pub async fn connect(
        address: AmqpAddress,
        options: RabbitQueueOptions,
    ) -> Result<Self, QueueError> {
        options.validate().map_err(|error| QueueError::Operation {
            queue: String::new(),
            operation: "connect",
            source: Box::new(error),
        })?;
        let (stop, stopped) = oneshot::channel();
        let inner = Arc::new(Inner {
            address,
            options,
            session: Mutex::new(None),
            declared: Mutex::default(),
            retry_queues: Mutex::default(),
            consumer_serial: AtomicU64::new(0),
            _stop: stop,
        });
        let session = inner.open_session().await.map_err(|error| {
            let reason = error.to_string();
            if reason.contains("invalid peer certificate") {
                // Waiting will not make the broker's certificate trusted.
                return QueueError::Operation {
                    queue: String::new(),
                    operation: "connect",
                    source: format!(
                        "{reason} (the broker's certificate is not trusted: give its CA with \
                         ?cacertfile=<pem file>, or the name it is for with ?server_name_indication=)"
                    )
                    .into(),
                };
            }
            if error.is_connection_problem() {
                // RabbitMQ answers refused credentials (and an unknown vhost, to a client that
                // does not ask for a reason) by closing the connection mid-handshake, which
                // the client sees as a reset: say what that usually means.
                let closed = ["reset by peer", "UnexpectedEof", "end of file", "broken pipe"]
                    .iter()
                    .any(|sign| reason.contains(sign));
                let hint = if closed {
                    "the broker closed the connection during the handshake: check the user name, password and vhost"
                } else {
                    "check the host and port and that the broker runs (amqps:// needs its TLS port)"
                };
                let first = reason.split(": ").last().unwrap_or(&reason).to_owned();
                QueueError::Unavailable {
                    backend: format!("rabbitmq {}", inner.address),
                    source: format!("{first} ({hint})").into(),
                }
            } else {
                QueueError::Operation {
                    queue: String::new(),
                    operation: "connect",
                    source: Box::new(error),
                }
            }
        })?;
        let connection = session.connection.clone();
        *lock(&inner.session) = Some(session);
        tokio::spawn(keep_connected(Arc::downgrade(&inner), stopped, connection));
        Ok(Self { inner })
    }

    /// Parses `url` (see [`AmqpAddress`]) and connects.
    pub async fn connect_url(url: &str, options: RabbitQueueOptions) -> Result<Self, QueueError> {
        let address = AmqpAddress::parse(url).map_err(|error| QueueError::Operation {
            queue: String::new(),
            operation: "connect",
            source: Box::new(error),
        })?;
        Self::connect(address, options).await
    }

    /// The broker's address (without the password).
    pub fn address(&self) -> &AmqpAddress {
        &self.inner.address
    }

    /// The settings in use.
    pub fn options(&self) -> &RabbitQueueOptions {
        &self.inner.options
    }

    /// Whether the connection is up right now (it is re-established in the background).
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.session)
            .as_ref()
            .is_some_and(|session| session.connection.is_open())
    }

    /// Deletes `queue`'s queues (main, error, every retry queue) and its exchange, with the
    /// messages they hold, and forgets them. Missing ones are skipped.
    pub async fn delete(&self, queue: &str) -> Result<(), QueueError> {
        validate_queue_name(queue)?;
        let inner = &self.inner;
        let session = inner.session()?;
        lock(&inner.declared).remove(queue);
        lock(&inner.retry_queues).remove(queue);
        if let Some(consumer) = lock(&session.consumers).remove(queue) {
            drop(consumer);
        }
        let mut names = vec![queue.to_owned(), error_queue_name(queue)];
        names
            .extend(rung_millis().map(|rung| retry_queue_name(queue, Duration::from_millis(rung))));
        let mut admin = session.admin.lock().await;
        for name in &names {
            let channel = inner
                .admin_channel(&session, &mut admin)
                .await
                .map_err(|error| inner.queue_error(queue, "delete", error))?;
            let result = inner
                .round_trip(
                    "queue.delete",
                    channel
                        .channel
                        .queue_delete(QueueDeleteArguments::new(name)),
                )
                .await;
            if let Err(error) = inner.admin_result(&session, &mut admin, result) {
                return Err(inner.queue_error(queue, "delete", error));
            }
        }
        let channel = inner
            .admin_channel(&session, &mut admin)
            .await
            .map_err(|error| inner.queue_error(queue, "delete", error))?;
        let result = inner
            .round_trip(
                "exchange.delete",
                channel
                    .channel
                    .exchange_delete(ExchangeDeleteArguments::new(queue)),
            )
            .await;
        inner
            .admin_result(&session, &mut admin, result)
            .map_err(|error| inner.queue_error(queue, "delete", error))?;
        Ok(())
    }
}

//! The queue contract on RabbitMQ, with [amqprs]: [`RabbitQueue`].
//!
//! # Topology
//! For every declared queue `q` (following the original's RabbitMQ adapter, reference §8.4):
//! - a durable direct exchange `q`, through which every message of `q` is published;
//! - the durable queue `q`, bound with the routing key `""`;
//! - the durable error queue `q.error`, bound with `error`;
//! - retry queues `q.retry.<ms>`, bound with `retry.<ms>`, declared when a retry first needs
//!   them: messages wait there for `x-message-ttl` = `<ms>` and are then dead-lettered to the
//!   exchange `q` with the routing key `""`, back into `q`. Delays are rounded up to the ladder
//!   125 ms × 2^n ([`retry_delay_rung`]; the backend's 1 s × 2^n fall exactly on it), so a
//!   queue has at most 21 retry queues and every message of one retry queue has the same TTL
//!   (a queue only expires messages at its head).
//!
//! With [`RabbitQueueOptions::quorum`] all of them are quorum queues (`x-queue-type: quorum`)
//! for clusters, and the retry queues dead-letter at least once (`x-dead-letter-strategy`,
//! RabbitMQ 3.10+). Switching an existing queue between classic and quorum fails its
//! declaration (RabbitMQ refuses different arguments): delete the queues first.
//!
//! # Guarantees
//! - Every message is persistent (delivery mode 2) and published `mandatory` on a channel in
//!   confirm mode; `send` and `settle` return only when the broker confirmed every message (a
//!   nack, an unroutable message, a closed channel or [`RabbitQueueOptions::confirm_timeout`]
//!   fail the call, and a failed `send` hands every body back).
//! - `settle` publishes retries and errors (confirmed) first and acknowledges afterwards: a
//!   crash in between duplicates a message, never loses one.
//! - Consumers acknowledge manually; what a consumer received and did not settle is delivered
//!   again when its channel or connection closes (a killed worker loses nothing).
//! - amqprs does not reconnect; this crate does. A background task watches the connection and,
//!   when it drops (a broker restart, a network failure), reconnects with backoff, declares
//!   again what was declared, and consumers are re-created on the next `receive`. Meanwhile
//!   every operation fails with [`QueueError::Unavailable`], which the backend's worker retries.
//!
//! # Not done here
//! No TLS (`amqps`), no management API, no queue pools fanning out to several brokers, no
//! bodies decoded. `depth` cannot see other consumers' unacknowledged messages (AMQP does not
//! report them); see [`RabbitQueue`].
//!
//! Dropping a [`RabbitQueue`] closes its connection (amqprs spawns the close, so drop it inside
//! the Tokio runtime).
//!
//! [amqprs]: https://docs.rs/amqprs
#![deny(missing_docs)]

mod address;
mod channel;
mod topology;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicNackArguments, BasicQosArguments, Channel,
    ExchangeDeclareArguments, ExchangeDeleteArguments, ExchangeType, QueueBindArguments,
    QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use pubsync_queue_extension::{
    Delivery, DeliveryTag, Queue, QueueDepth, QueueError, SendError, Settlement, error_queue_name,
};
use tokio::sync::{oneshot, watch};

pub use address::AmqpAddress;
pub use topology::{MAX_QUEUE_NAME_BYTES, retry_delay_rung, retry_queue_name};

use channel::{ChannelStatus, Consumer, Events, Outgoing, Publisher, channel_failure, lock};
use topology::{
    ERROR_ROUTING_KEY, MAIN_ROUTING_KEY, queue_arguments, retry_queue_arguments, retry_routing_key,
    rung_millis, validate_queue_name,
};

/// Bits of a [`DeliveryTag`] that hold the AMQP delivery tag; the bits above hold the serial
/// number of the consumer channel. A channel delivers 2^40 messages (a year at 30k/s) before
/// it is replaced.
const AMQP_TAG_BITS: u32 = 40;
const AMQP_TAG_MASK: u64 = (1 << AMQP_TAG_BITS) - 1;

/// The first pause before reconnecting; it doubles up to
/// [`RabbitQueueOptions::reconnect_backoff_cap`].
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// What can go wrong in this crate; found as the `source` of a [`QueueError`], or returned by
/// [`AmqpAddress::parse`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitQueueError {
    /// The AMQP URL cannot be used.
    #[error("invalid AMQP URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password replaced by `***`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings cannot be used.
    #[error("invalid RabbitMQ queue options: {0}")]
    InvalidOptions(&'static str),
    /// The connection is closed; a background task is reconnecting.
    #[error("not connected to the broker (reconnecting)")]
    Disconnected,
    /// The broker did not answer in time.
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
        /// How long it waited.
        timeout: Duration,
    },
    /// The broker closed the channel (for example 404 for a missing queue or exchange, 406 for
    /// a queue declared again with different arguments).
    #[error("the broker closed the channel: {code} {text}")]
    ChannelClosed {
        /// AMQP reply code.
        code: u16,
        /// The broker's reason.
        text: String,
    },
    /// The broker refused (nacked) messages.
    #[error("the broker nacked {count} message(s)")]
    Nacked {
        /// How many.
        count: usize,
    },
    /// Messages matched no queue (the queue was deleted, or never declared).
    #[error("{count} message(s) could not be routed to a queue; declare the queue first")]
    Unroutable {
        /// How many.
        count: usize,
    },
    /// Publisher confirms did not all arrive in time.
    #[error("{unconfirmed} message(s) not confirmed within {timeout:?}")]
    ConfirmTimeout {
        /// The confirm timeout.
        timeout: Duration,
        /// How many were still unconfirmed.
        unconfirmed: usize,
    },
    /// An error from amqprs.
    #[error("amqp: {0}")]
    Amqp(#[from] amqprs::error::Error),
}

impl RabbitQueueError {
    /// Whether the connection is the problem (trying again after reconnecting may succeed).
    pub fn is_connection_problem(&self) -> bool {
        match self {
            Self::Disconnected | Self::Timeout { .. } | Self::ConfirmTimeout { .. } => true,
            Self::Amqp(error) => matches!(
                error,
                amqprs::error::Error::NetworkError(_)
                    | amqprs::error::Error::ConnectionOpenError(_)
                    | amqprs::error::Error::ConnectionCloseError(_)
                    | amqprs::error::Error::InternalChannelError(_)
            ),
            // 320 CONNECTION_FORCED: the broker is shutting down.
            Self::ChannelClosed { code, .. } => *code == 320,
            _ => false,
        }
    }
}

/// Settings of a [`RabbitQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitQueueOptions {
    /// How many unacknowledged messages the broker sends ahead to each consumer channel
    /// (`basic.qos` prefetch count). Default 500, like the original's event chunk; set it to
    /// at least the chunk size `receive` is asked for.
    pub prefetch: u16,
    /// Declare quorum queues (`x-queue-type: quorum`), for clusters. Default `false` (classic
    /// queues).
    pub quorum: bool,
    /// The longest pause between two reconnection attempts; they start 100 ms apart and
    /// double. Default 5 s.
    pub reconnect_backoff_cap: Duration,
    /// How long `send` and `settle` wait for publisher confirms. Default 30 s.
    pub confirm_timeout: Duration,
    /// How long connecting and each round trip to the broker (declare, consume, …) may take.
    /// Default 10 s.
    pub operation_timeout: Duration,
    /// AMQP heartbeat: how soon a silent network failure is noticed. Default 30 s; zero turns
    /// heartbeats off.
    pub heartbeat: Duration,
    /// After the first delivery, `receive` keeps taking deliveries that arrive less than this
    /// apart, up to `max`, so a chunk is not cut short by messages still on the wire.
    /// Default 5 ms.
    pub receive_linger: Duration,
}

impl Default for RabbitQueueOptions {
    fn default() -> Self {
        Self {
            prefetch: 500,
            quorum: false,
            reconnect_backoff_cap: Duration::from_secs(5),
            confirm_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(30),
            receive_linger: Duration::from_millis(5),
        }
    }
}

impl RabbitQueueOptions {
    fn validate(&self) -> Result<(), RabbitQueueError> {
        if self.prefetch == 0 {
            return Err(RabbitQueueError::InvalidOptions(
                "prefetch must be at least 1",
            ));
        }
        if self.confirm_timeout.is_zero() || self.operation_timeout.is_zero() {
            return Err(RabbitQueueError::InvalidOptions(
                "confirm_timeout and operation_timeout must be above zero",
            ));
        }
        if self.heartbeat.as_secs() > u64::from(u16::MAX) {
            return Err(RabbitQueueError::InvalidOptions(
                "heartbeat must be at most 65535 s",
            ));
        }
        Ok(())
    }
}

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
pub struct RabbitQueue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("address", &self.inner.address)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

struct Inner {
    address: AmqpAddress,
    options: RabbitQueueOptions,
    /// The live connection and its channels; `None` while reconnecting.
    session: Mutex<Option<Arc<Session>>>,
    /// Queues declared through this instance, declared again after a reconnect.
    declared: Mutex<BTreeSet<String>>,
    /// Retry queues known to exist: queue name → rungs in milliseconds.
    retry_queues: Mutex<BTreeMap<String, BTreeSet<u64>>>,
    consumer_serial: AtomicU64,
    /// Dropped with the last `RabbitQueue`: stops the reconnection task.
    _stop: oneshot::Sender<()>,
}

/// One connection and the channels opened on it.
struct Session {
    connection: Connection,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    admin: tokio::sync::Mutex<Option<AdminChannel>>,
    consumers: Mutex<HashMap<String, Arc<Consumer>>>,
    consumer_creation: tokio::sync::Mutex<()>,
}

/// A channel for declarations and passive declarations (which close it when a queue is
/// missing, so it is reopened as needed).
struct AdminChannel {
    channel: Channel,
    status: Arc<watch::Sender<ChannelStatus>>,
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
            if error.is_connection_problem() {
                inner.unavailable(error)
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

impl Inner {
    fn unavailable(&self, error: RabbitQueueError) -> QueueError {
        QueueError::Unavailable {
            backend: format!("rabbitmq {}", self.address),
            source: Box::new(error),
        }
    }

    fn queue_error(
        &self,
        queue: &str,
        operation: &'static str,
        error: RabbitQueueError,
    ) -> QueueError {
        if error.is_connection_problem() {
            self.unavailable(error)
        } else {
            QueueError::Operation {
                queue: queue.to_owned(),
                operation,
                source: Box::new(error),
            }
        }
    }

    /// The live session, or `Unavailable` while reconnecting.
    fn session(&self) -> Result<Arc<Session>, QueueError> {
        match lock(&self.session).as_ref() {
            Some(session) if session.connection.is_open() => Ok(session.clone()),
            _ => Err(self.unavailable(RabbitQueueError::Disconnected)),
        }
    }

    /// Runs one request to the broker within the operation timeout.
    async fn round_trip<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = Result<T, amqprs::error::Error>>,
    ) -> Result<Result<T, amqprs::error::Error>, RabbitQueueError> {
        let timeout = self.options.operation_timeout;
        tracing::trace!(operation, "round trip");
        let result = tokio::time::timeout(timeout, request)
            .await
            .map_err(|_| RabbitQueueError::Timeout { operation, timeout });
        tracing::trace!(
            operation,
            ok = matches!(result, Ok(Ok(_))),
            "round trip done"
        );
        result
    }

    /// Connects, and declares again what this instance declared before.
    async fn open_session(&self) -> Result<Arc<Session>, RabbitQueueError> {
        let address = &self.address;
        let mut arguments = OpenConnectionArguments::new(
            &address.host,
            address.port,
            &address.user,
            &address.password,
        );
        arguments
            .virtual_host(&address.vhost)
            .heartbeat(u16::try_from(self.options.heartbeat.as_secs()).unwrap_or(u16::MAX))
            .connection_name(&format!("pubsync-{}", std::process::id()));
        let timeout = self.options.operation_timeout;
        let connection = tokio::time::timeout(timeout, Connection::open(&arguments))
            .await
            .map_err(|_| RabbitQueueError::Timeout {
                operation: "connect",
                timeout,
            })?
            .map_err(|error| match error {
                // A refused login is not a connection problem: retrying will not help.
                amqprs::error::Error::ConnectionOpenError(ref text)
                    if text.contains("ACCESS_REFUSED") || text.contains("403") =>
                {
                    RabbitQueueError::Amqp(error)
                }
                other => {
                    RabbitQueueError::Amqp(amqprs::error::Error::NetworkError(other.to_string()))
                }
            })?;
        let session = Arc::new(Session {
            connection,
            publisher: tokio::sync::Mutex::new(None),
            admin: tokio::sync::Mutex::new(None),
            consumers: Mutex::default(),
            consumer_creation: tokio::sync::Mutex::new(()),
        });
        let declared: Vec<String> = lock(&self.declared).iter().cloned().collect();
        let retry_queues: Vec<(String, u64)> = lock(&self.retry_queues)
            .iter()
            .flat_map(|(queue, rungs)| rungs.iter().map(|rung| (queue.clone(), *rung)))
            .collect();
        for queue in &declared {
            if let Err(error) = self.declare_topology(&session, queue).await {
                if error.is_connection_problem() {
                    return Err(error);
                }
                tracing::warn!(queue = %queue, error = %error, "declaring again after reconnecting failed");
            }
        }
        for (queue, rung) in &retry_queues {
            if let Err(error) = self.declare_retry_queue(&session, queue, *rung).await {
                if error.is_connection_problem() {
                    return Err(error);
                }
                tracing::warn!(queue = %queue, error = %error, "declaring a retry queue again failed");
            }
        }
        Ok(session)
    }

    /// The admin channel, opened when missing or closed.
    async fn admin_channel<'a>(
        &self,
        session: &Session,
        admin: &'a mut Option<AdminChannel>,
    ) -> Result<&'a AdminChannel, RabbitQueueError> {
        let usable = admin.as_ref().is_some_and(|admin| {
            admin.channel.is_open() && {
                let status = admin.status.borrow();
                status.closed.is_none() && !status.gone
            }
        });
        if !usable {
            *admin = None;
            if !session.connection.is_open() {
                return Err(RabbitQueueError::Disconnected);
            }
            let channel = self
                .round_trip("channel.open", session.connection.open_channel(None))
                .await??;
            let (events, status) = Events::new();
            channel.register_callback(events).await?;
            *admin = Some(AdminChannel { channel, status });
        }
        Ok(admin.as_ref().expect("opened above"))
    }

    /// Turns the outcome of a request on the admin channel into our error, noting why the
    /// channel closed; a channel that failed is dropped, to be reopened.
    fn admin_result<T>(
        &self,
        session: &Session,
        admin: &mut Option<AdminChannel>,
        result: Result<Result<T, amqprs::error::Error>, RabbitQueueError>,
    ) -> Result<T, RabbitQueueError> {
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => match admin.as_ref() {
                Some(channel) => channel_failure(&session.connection, &channel.status, Some(error)),
                None => RabbitQueueError::Amqp(error),
            },
            Err(error) => error,
        };
        *admin = None;
        Err(error)
    }

    /// Declares the exchange, the queue and its error queue.
    async fn declare_topology(
        &self,
        session: &Session,
        queue: &str,
    ) -> Result<(), RabbitQueueError> {
        let mut admin = session.admin.lock().await;
        let error_queue = error_queue_name(queue);
        let channel = self.admin_channel(session, &mut admin).await?;
        let result = self
            .round_trip(
                "exchange.declare",
                channel.channel.exchange_declare(
                    ExchangeDeclareArguments::of_type(queue, ExchangeType::Direct)
                        .durable(true)
                        .finish(),
                ),
            )
            .await;
        self.admin_result(session, &mut admin, result)?;
        for (name, routing_key) in [(queue, MAIN_ROUTING_KEY), (&error_queue, ERROR_ROUTING_KEY)] {
            let channel = self.admin_channel(session, &mut admin).await?;
            let result = self
                .round_trip(
                    "queue.declare",
                    channel.channel.queue_declare(
                        QueueDeclareArguments::durable_client_named(name)
                            .arguments(queue_arguments(self.options.quorum))
                            .finish(),
                    ),
                )
                .await;
            self.admin_result(session, &mut admin, result)?;
            let channel = self.admin_channel(session, &mut admin).await?;
            let result = self
                .round_trip(
                    "queue.bind",
                    channel
                        .channel
                        .queue_bind(QueueBindArguments::new(name, queue, routing_key)),
                )
                .await;
            self.admin_result(session, &mut admin, result)?;
        }
        Ok(())
    }

    /// Declares the retry queue of `queue` for one rung of the delay ladder.
    async fn declare_retry_queue(
        &self,
        session: &Session,
        queue: &str,
        rung: u64,
    ) -> Result<(), RabbitQueueError> {
        let mut admin = session.admin.lock().await;
        let name = retry_queue_name(queue, Duration::from_millis(rung));
        let channel = self.admin_channel(session, &mut admin).await?;
        let result = self
            .round_trip(
                "queue.declare",
                channel.channel.queue_declare(
                    QueueDeclareArguments::durable_client_named(&name)
                        .arguments(retry_queue_arguments(queue, rung, self.options.quorum))
                        .finish(),
                ),
            )
            .await;
        self.admin_result(session, &mut admin, result)?;
        let channel = self.admin_channel(session, &mut admin).await?;
        let result = self
            .round_trip(
                "queue.bind",
                channel.channel.queue_bind(QueueBindArguments::new(
                    &name,
                    queue,
                    &retry_routing_key(rung),
                )),
            )
            .await;
        self.admin_result(session, &mut admin, result)?;
        Ok(())
    }

    /// The message count of `name` from a passive declare; `None` when it does not exist.
    async fn message_count(
        &self,
        session: &Session,
        admin: &mut Option<AdminChannel>,
        name: &str,
    ) -> Result<Option<u64>, RabbitQueueError> {
        let channel = self.admin_channel(session, admin).await?;
        let result = self
            .round_trip(
                "queue.declare",
                channel
                    .channel
                    .queue_declare(QueueDeclareArguments::new(name).passive(true).finish()),
            )
            .await;
        match self.admin_result(session, admin, result) {
            Ok(Some((_, count, _))) => Ok(Some(u64::from(count))),
            Ok(None) => Ok(Some(0)),
            Err(RabbitQueueError::ChannelClosed { code: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Publishes with confirms on the session's publishing channel, reopening it as needed.
    async fn publish(
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
    async fn consumer(
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

    async fn receive_from(
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
            })
            .collect())
    }

    async fn settle_on(&self, queue: &str, settlement: Settlement) -> Result<(), RabbitQueueError> {
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

    /// Declares the retry queue for `rung` unless this instance knows it exists.
    async fn ensure_retry_queue(
        &self,
        session: &Session,
        queue: &str,
        rung: u64,
    ) -> Result<(), RabbitQueueError> {
        if lock(&self.retry_queues)
            .get(queue)
            .is_some_and(|rungs| rungs.contains(&rung))
        {
            return Ok(());
        }
        self.declare_retry_queue(session, queue, rung).await?;
        lock(&self.retry_queues)
            .entry(queue.to_owned())
            .or_default()
            .insert(rung);
        Ok(())
    }

    async fn depth_of(&self, queue: &str) -> Result<QueueDepth, RabbitQueueError> {
        let session = lock(&self.session)
            .clone()
            .filter(|session| session.connection.is_open())
            .ok_or(RabbitQueueError::Disconnected)?;
        let mut admin = session.admin.lock().await;
        let ready = self
            .message_count(&session, &mut admin, queue)
            .await?
            .ok_or_else(|| RabbitQueueError::ChannelClosed {
                code: 404,
                text: format!("NOT_FOUND - no queue '{queue}'; declare it first"),
            })?;
        let mut pending = 0;
        if let Some(consumer) = lock(&session.consumers).get(queue) {
            let buffer = lock(&consumer.buffer);
            pending += (buffer.ready.len() + buffer.unsettled.len()) as u64;
        }
        // Retry queues other instances declared are found by probing every rung.
        for rung in rung_millis() {
            let name = retry_queue_name(queue, Duration::from_millis(rung));
            if let Some(count) = self.message_count(&session, &mut admin, &name).await? {
                pending += count;
                lock(&self.retry_queues)
                    .entry(queue.to_owned())
                    .or_default()
                    .insert(rung);
            }
        }
        Ok(QueueDepth { ready, pending })
    }
}

/// Watches the connection and reconnects with backoff when it drops, until `stop` fires (the
/// last `RabbitQueue` was dropped).
async fn keep_connected(
    inner: Weak<Inner>,
    mut stop: oneshot::Receiver<()>,
    mut connection: Connection,
) {
    loop {
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = connection.listen_network_io_failure() => break,
                // The failure may have been announced before we listened.
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if !connection.is_open() {
                        break;
                    }
                }
            }
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        tracing::warn!(broker = %strong.address, "connection to RabbitMQ lost, reconnecting");
        let old = lock(&strong.session).take();
        drop(old);
        let cap = strong.options.reconnect_backoff_cap;
        drop(strong);
        let mut backoff = FIRST_RECONNECT_BACKOFF.min(cap);
        connection = loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(backoff) => {}
            }
            let Some(strong) = inner.upgrade() else {
                return;
            };
            match strong.open_session().await {
                Ok(session) => {
                    let connection = session.connection.clone();
                    *lock(&strong.session) = Some(session);
                    tracing::info!(broker = %strong.address, "reconnected to RabbitMQ");
                    break connection;
                }
                Err(error) => {
                    tracing::warn!(broker = %strong.address, error = %error, retry_in_ms = backoff.as_millis() as u64, "reconnecting to RabbitMQ failed");
                    backoff = (backoff * 2).min(cap);
                }
            }
        };
    }
}

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

    #[test]
    fn options_are_validated() {
        assert!(RabbitQueueOptions::default().validate().is_ok());
        let zero_prefetch = RabbitQueueOptions {
            prefetch: 0,
            ..Default::default()
        };
        assert!(zero_prefetch.validate().is_err());
    }
}

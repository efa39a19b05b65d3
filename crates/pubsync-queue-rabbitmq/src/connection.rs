//! The connection to the broker and its upkeep: the session of one connection and its channels
//! (opening one declares again what was declared before), round trips within the operation
//! timeout, the admin channel, and the background task that reconnects with backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use amqprs::channel::Channel;
use amqprs::connection::{Connection, OpenConnectionArguments};
use pubsync_queue_extension::QueueError;
use tokio::sync::{oneshot, watch};

use crate::RabbitQueueError;
use crate::channel::{ChannelStatus, Consumer, Events, Publisher, channel_failure, lock};
use crate::rabbit_queue::Inner;

/// The first pause before reconnecting; it doubles up to
/// [`RabbitQueueOptions::reconnect_backoff_cap`].
///
/// [`RabbitQueueOptions::reconnect_backoff_cap`]: crate::RabbitQueueOptions::reconnect_backoff_cap
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// One connection and the channels opened on it.
pub(crate) struct Session {
    pub(crate) connection: Connection,
    pub(crate) publisher: tokio::sync::Mutex<Option<Publisher>>,
    pub(crate) admin: tokio::sync::Mutex<Option<AdminChannel>>,
    pub(crate) consumers: Mutex<HashMap<String, Arc<Consumer>>>,
    pub(crate) consumer_creation: tokio::sync::Mutex<()>,
}

/// A channel for declarations and passive declarations (which close it when a queue is
/// missing, so it is reopened as needed).
pub(crate) struct AdminChannel {
    pub(crate) channel: Channel,
    pub(crate) status: Arc<watch::Sender<ChannelStatus>>,
}

impl Inner {
    /// The live session, or `Unavailable` while reconnecting.
    pub(crate) fn session(&self) -> Result<Arc<Session>, QueueError> {
        match lock(&self.session).as_ref() {
            Some(session) if session.connection.is_open() => Ok(session.clone()),
            _ => Err(self.unavailable(RabbitQueueError::Disconnected)),
        }
    }

    /// Runs one request to the broker within the operation timeout.
    pub(crate) async fn round_trip<T>(
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
    pub(crate) async fn open_session(&self) -> Result<Arc<Session>, RabbitQueueError> {
        let address = &self.address;
        let mut arguments = OpenConnectionArguments::new(
            &address.host,
            address.port,
            &address.user,
            &address.password,
        );
        if let Some(settings) = &address.tls {
            arguments.tls_adaptor(crate::tls::adaptor(&address.host, settings)?);
        }
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
    pub(crate) async fn admin_channel<'a>(
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
    pub(crate) fn admin_result<T>(
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
}

/// Watches the connection and reconnects with backoff when it drops, until `stop` fires (the
/// last `RabbitQueue` was dropped).
pub(crate) async fn keep_connected(
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
